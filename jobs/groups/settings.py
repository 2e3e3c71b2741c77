"""The `groups:` config section: how a membership of a customer group ends (docs/levels.md, "Leaving a group").

Kept out of jobs/core/config.py (which imports it), so this module must not import jobs.core.config.
The Segment spec has no "leave group" call, so by default a membership never ends; either way can be
switched on, and both together.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GroupSettings:
    # A group call whose traits set this key to true (`{removed: true}`) ends the caller's
    # membership of that group on the call's date; the key is not kept as a group trait.
    leave_trait: str | None = None
    # A membership not reconfirmed (a group call, or an identify with the groupId) within this many
    # days after its latest confirmation ends: the customer is no member as of day latest + N + 1.
    membership_days: int | None = None

    def validate(self, key: str) -> None:
        if self.leave_trait is not None and not self.leave_trait.strip():
            raise ValueError(f"'{key}.leave_trait' must be a trait name, or null for no leave call")
        if self.membership_days is not None and self.membership_days < 1:
            raise ValueError(f"'{key}.membership_days' must be at least 1 (days), or null for memberships that never lapse")

