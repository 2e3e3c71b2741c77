"""The `rfm:` config section (jobs.rfm.stage, jobs.rfm.retention). Validated at load by
jobs.core.config.build_section; this module must not import jobs.core.config (which imports it)."""
from __future__ import annotations

from dataclasses import dataclass

# About 13 months of runs: this month can be compared with the same month a year before.
DEFAULT_HISTORY_DAYS = 400


@dataclass(frozen=True)
class RfmSettings:
    # gold/rfm_history keeps the runs of the last this-many days before the run date (null: every run)
    history_days: int | None = DEFAULT_HISTORY_DAYS

    def validate(self, key: str) -> None:
        if self.history_days is not None and self.history_days < 1:
            raise ValueError(f"'{key}.history_days' must be at least 1 (or null to keep every run), "
                             f"got {self.history_days}")
