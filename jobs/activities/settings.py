"""The `activities:` config section: how events become activity-stream rows.

Kept out of jobs/core/config.py (which imports it) so the activities stage owns its own schema; this
module must not import jobs.core.config. Validated at load by `jobs.core.config.build_section`: an unknown
key or a bad value is a ConfigError naming the file and the dotted key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# identifier types an activity may be attributed to for identifier-level rollups
from jobs.identity.settings import IDENTIFIER_TYPES

FEATURE_SLOTS = tuple(f"feature{i}" for i in range(1, 11))
SNAKE_CASE = re.compile(r"^[a-z0-9][a-z0-9_]*$")  # what activities.activity_name yields
# How a track event's name becomes its activity's: a word boundary inside camelCase gets an
# underscore, then lower case, every run of other characters one underscore, none at the ends
# (jobs.activities.stage.activity_name does the same in Spark with these patterns).
CAMEL_BOUNDARY = r"([a-z0-9])([A-Z])"
NOT_WORD = r"[^a-z0-9]+"
EDGE_UNDERSCORES = r"^_+|_+$"


def snake_case(event: str) -> str:
    """"Order Completed" and "orderCompleted" -> order_completed (empty for a name without letters
    or digits)."""
    words = re.sub(CAMEL_BOUNDARY, r"\1_\2", event)
    return re.sub(EDGE_UNDERSCORES, "", re.sub(NOT_WORD, "_", words.lower()))

# The seed model's SQL (customer_360.lens.yml) reads these properties from these slots.
_ORDER_LINE = {
    "feature1": "order_id",
    "feature2": "product_id",
    "feature3": "brand_name",
    "feature4": "supplier_name",
    "feature5": "product_category",
    "feature6": "product_classification",
    "feature7": "cases",
    "feature8": "bottles",
    "feature9": "order_value",
    "feature10": "request_delivery_date",
}
_ORDER_REJECTION = {
    **_ORDER_LINE,
    "feature3": "order_reject_code",
    "feature4": "order_status_code",
    "feature5": "order_delivery_status",
}
del _ORDER_REJECTION["feature6"]


@dataclass(frozen=True)
class ActivityMapping:
    """One activity: which property fills which feature slot, its revenue, its identifier."""

    # feature1..feature10 -> property name in the event's `properties`
    features: dict[str, str] = field(default_factory=dict)
    # property whose numeric value is the activity's revenue_impact (null when unset)
    revenue_property: str | None = None
    # Identifier-level attribution: the activity belongs to this identifier (e.g. the email
    # address an `Email Opened` was opened on) instead of the user/anonymous id it arrived with.
    identifier_type: str | None = None
    identifier_property: str | None = None

    def validate(self, key: str) -> None:
        for slot, prop in self.features.items():
            if slot not in FEATURE_SLOTS:
                raise ValueError(f"'{key}.features.{slot}' is not a feature slot (use feature1 … feature10)")
            if not prop:
                raise ValueError(f"'{key}.features.{slot}' must name a property")
        if (self.identifier_type is None) != (self.identifier_property is None):
            raise ValueError(f"'{key}': set both identifier_type and identifier_property, or neither")
        if self.identifier_type is not None and self.identifier_type not in IDENTIFIER_TYPES:
            raise ValueError(
                f"'{key}.identifier_type' must be one of {', '.join(IDENTIFIER_TYPES)}, got {self.identifier_type!r}"
            )


@dataclass(frozen=True)
class TransactionKey:
    """A group transaction (Blueshift's transaction configuration): events of the activity carrying
    a groupId whose `id_attributes` properties have the same values are one transaction; a version
    sent later (by timestamp, then messageId) replaces the earlier ones in place. The values are
    compared one by one, not joined into one text (Blueshift's transacton_id_delimiter), so
    `1-2` + `3` and `1` + `2-3` stay two transactions."""

    id_attributes: list[str] = field(default_factory=list)

    def validate(self, key: str) -> None:
        if not self.id_attributes:
            raise ValueError(f"'{key}.id_attributes' must list at least one property (e.g. [lead_id])")
        for i, name in enumerate(self.id_attributes):
            if not name.strip():
                raise ValueError(f"'{key}.id_attributes[{i}]' must name a property")
        if len(set(self.id_attributes)) != len(self.id_attributes):
            raise ValueError(f"'{key}.id_attributes' names a property twice")


def default_mappings() -> dict[str, ActivityMapping]:
    return {
        "order_placed": ActivityMapping(features=dict(_ORDER_LINE), revenue_property="order_value"),
        "order_rejected": ActivityMapping(features=dict(_ORDER_REJECTION)),
        "order_invoiced": ActivityMapping(features=dict(_ORDER_LINE)),
        "email_opened": ActivityMapping(identifier_type="email", identifier_property="email_address"),
        "viewed_page": ActivityMapping(features={"feature1": "url", "feature2": "path", "feature3": "title",
                                                 "feature4": "referrer"}),
    }


@dataclass(frozen=True)
class ActivitySettings:
    """Names of non-track activities and the per-activity mapping (replaces, not merges, the defaults)."""

    page_activity: str = "viewed_page"
    screen_activity: str = "viewed_screen"
    # Track events recorded as another activity than their name's: event name -> activity, e.g.
    # {"Order Completed": order_placed} for data following Segment's e-commerce spec, so RFM, the
    # traits and the lens's order measures read them. Names match as their snake_case does
    # ("Order Completed", "order_completed" and "orderCompleted" are one event).
    event_activities: dict[str, str] = field(default_factory=dict)
    mappings: dict[str, ActivityMapping] = field(default_factory=default_mappings)
    # An incremental run with more new activities than this share of the stream's rows rebuilds
    # the table instead of merging (the result is the same; a merge touching most rows is slower).
    rebuild_above_new_share: float = 0.2
    # Group transactions updated in place: activity -> the properties that name a transaction
    # (docs/activities.md, "Group transactions"); none by default.
    transactions: dict[str, TransactionKey] = field(default_factory=dict)

    def validate(self, key: str) -> None:
        if not 0 <= self.rebuild_above_new_share <= 1:
            raise ValueError(
                f"'{key}.rebuild_above_new_share' must be between 0 and 1, got {self.rebuild_above_new_share}"
            )
        for name in ("page_activity", "screen_activity"):
            if not SNAKE_CASE.match(getattr(self, name)):
                raise ValueError(f"'{key}.{name}' must be a snake_case name, got {getattr(self, name)!r}")
        for event, activity in self.event_activities.items():
            if not snake_case(event):
                raise ValueError(f"'{key}.event_activities.{event}' is not an event name (no letter or digit)")
            if not isinstance(activity, str) or not SNAKE_CASE.match(activity):
                raise ValueError(f"'{key}.event_activities.{event}' must be a snake_case activity name "
                                 f"(e.g. order_placed), got {activity!r}")
        for activity in self.transactions:
            if not SNAKE_CASE.match(activity):
                raise ValueError(f"'{key}.transactions.{activity}' is not an activity name: activities are snake_case "
                                 "event names (e.g. lead_initial for \"Lead Initial\")")
        for activity in self.mappings:
            if not SNAKE_CASE.match(activity):
                raise ValueError(
                    f"'{key}.mappings.{activity}' is not an activity name: activities are snake_case "
                    "event names (e.g. order_placed for \"Order Placed\")"
                )
