"""The `identity:` config section (what each rule does: jobs.identity.rules), and the identifier type names.

Kept out of jobs/core/config.py (which imports it) so the identity stage owns its schema, and free of
pyspark, numpy and pyarrow: loading a configuration imports this module, and must stay cheap. The
defaults below are the only place they are written (conf/*.yml set only what differs). Validated
at load by `jobs.core.config.build_section`: an unknown key or a bad value is a ConfigError naming
the file and the dotted key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from jobs.core.table_names import CUSTOMER_COLUMNS

# Identifier types (interface §3). `user_id` is one namespace for Segment userIds and customer
# master customer_ids. jobs.identity.identifiers normalizes their values.
USER_ID = "user_id"
ANONYMOUS_ID = "anonymous_id"
EMAIL = "email"
PHONE = "phone"
IDENTIFIER_TYPES = (USER_ID, ANONYMOUS_ID, EMAIL, PHONE)

SURVIVORSHIP_STRATEGIES = ("most_recent", "oldest", "most_frequent")

# Phones written without a country code are read in this region (jobs.identity.phones).
DEFAULT_PHONE_REGION = "US"
# Connected components (jobs.identity.graph): up to this many edges the graph is finished on the
# driver with scipy: 16 bytes an edge as Arrow; bench B1 measured 18 s end to end and 2.1 GB peak
# driver (Python) memory at 10M edges.
DEFAULT_LOCAL_THRESHOLD = 12_000_000
DEFAULT_MAX_ROUNDS = 200
# Distributed path: edges per bucket of a contraction round, i.e. what one Python worker holds and
# hands to scipy at once (about 0.6 GB at 4M edges; bench B1). More per bucket, fewer rounds.
DEFAULT_PARTITION_EDGES = 4_000_000
# How stitch materialises intermediate results and graph rounds: "local" = Dataset.localCheckpoint
# (executor storage, spilling to disk; measured ~1.6x faster end to end on the 1M-edge bench graph;
# a night whose intermediate results outgrow a share of that storage writes them as files,
# jobs.identity.stitch.Scratch)
# or "parquet" = written under the checkpoint folder and read back (survives executor loss: prefer
# it on clusters with preemptible executors).
CHECKPOINT_MODES = ("local", "parquet")

DEFAULT_BLOCKED_VALUES = (
    "null", "none", "nil", "undefined", "unknown", "anonymous", "n/a", "na", "-", "0", "-1",
    "[object object]", "test", "test@test.com", "test@example.com", "email@example.com",
    "user@example.com", "example@example.com", "noemail@noemail.com", "none@none.com",
)
DEFAULT_BLOCKED_PATTERNS = {
    EMAIL: [r"^(noemail|no-email|no\.email|noreply|no-reply|donotreply|do-not-reply)@.*"],
    # On the E.164 form (+<country code><national number>): a national number of one repeated digit
    # or 1234567890, placeholders typed into phone fields.
    # (+1 and +7 are the one-digit country codes; the others have two or three digits.)
    PHONE: [r"^\+[17](\d)\1{6,}$", r"^\+[2-9]\d{1,2}(\d)\1{6,}$", r"^\+11234567890$"],
}


def is_known_region(region: str) -> bool:
    """A region code phonenumbers can read numbers in (ISO 3166, e.g. US, GB, DE)."""
    import phonenumbers

    return region in phonenumbers.SUPPORTED_REGIONS


@dataclass(frozen=True)
class IdentitySettings:
    """The `identity:` config section (see jobs.identity.rules for what each rule does)."""

    # Highest priority first; every identifier type exactly once.
    priority: list[str] = field(default_factory=lambda: [USER_ID, EMAIL, PHONE, ANONYMOUS_ID])
    # Max identifiers of a type per customer; types not listed are unlimited.
    limits: dict[str, int] = field(default_factory=lambda: {USER_ID: 1})
    # Hub cap: a non-user_id identifier linked to more user ids than this is shared, not identity.
    max_linked_user_ids: int = 20
    # Compared lower-cased with every identifier's normalized value, whatever its type.
    blocked_values: list[str] = field(default_factory=lambda: list(DEFAULT_BLOCKED_VALUES))
    # Java regexes per identifier type, matched against the normalized value.
    blocked_patterns: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_BLOCKED_PATTERNS.items()}
    )
    # Phones without a country code are read in this region (ISO 3166 code, jobs.identity.phones).
    default_phone_region: str = DEFAULT_PHONE_REGION
    # silver/customers: strategy per customer column; columns not listed use the default.
    survivorship_default: str = "most_recent"
    survivorship: dict[str, str] = field(default_factory=dict)
    # Connected components: graphs with at most this many edges are finished on the driver (0 = never).
    local_threshold: int = DEFAULT_LOCAL_THRESHOLD
    max_rounds: int = DEFAULT_MAX_ROUNDS
    # Distributed path: edges a contraction round gives one bucket (one Python worker) at most.
    partition_edges: int = DEFAULT_PARTITION_EDGES
    # How stitch keeps its intermediate results and the graph's rounds (one of CHECKPOINT_MODES).
    checkpoints: str = "local"
    # `c360 identity explain` collects one customer's evidence to the driver up to this size.
    explain_max_identifiers: int = 50_000

    def validate(self, key: str) -> None:
        if sorted(self.priority) != sorted(IDENTIFIER_TYPES):
            raise ValueError(f"'{key}.priority' must list each of {', '.join(IDENTIFIER_TYPES)} exactly once")
        for name, limit in self.limits.items():
            if name not in IDENTIFIER_TYPES:
                raise ValueError(f"'{key}.limits.{name}' is not an identifier type ({', '.join(IDENTIFIER_TYPES)})")
            if limit < 1:
                raise ValueError(f"'{key}.limits.{name}' must be at least 1")
        if self.max_linked_user_ids < 1:
            raise ValueError(f"'{key}.max_linked_user_ids' must be at least 1")
        for name, patterns in self.blocked_patterns.items():
            if name not in IDENTIFIER_TYPES:
                raise ValueError(f"'{key}.blocked_patterns.{name}' is not an identifier type")
            for i, pattern in enumerate(patterns):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"'{key}.blocked_patterns.{name}[{i}]' is not a valid regex: {exc}") from None
        if not is_known_region(self.default_phone_region):
            raise ValueError(f"'{key}.default_phone_region' must be an ISO 3166 region code that phonenumbers "
                             f"knows (e.g. US, GB, DE), not {self.default_phone_region!r}")
        for name, strategy in {"survivorship_default": self.survivorship_default, **self.survivorship}.items():
            if strategy not in SURVIVORSHIP_STRATEGIES:
                raise ValueError(f"'{key}.survivorship.{name}' must be one of {', '.join(SURVIVORSHIP_STRATEGIES)}")
        for name in self.survivorship:
            if name not in CUSTOMER_COLUMNS or name == "customer_id":
                raise ValueError(f"'{key}.survivorship.{name}' is not a customer column")
        if self.local_threshold < 0 or self.max_rounds < 1 or self.explain_max_identifiers < 1:
            raise ValueError(f"'{key}': local_threshold must be >= 0, max_rounds and explain_max_identifiers >= 1")
        if self.checkpoints not in CHECKPOINT_MODES:
            raise ValueError(f"'{key}.checkpoints' must be one of {', '.join(CHECKPOINT_MODES)}, "
                             f"not {self.checkpoints!r}")
        if self.partition_edges < 1:
            raise ValueError(f"'{key}.partition_edges' must be at least 1")

    def rank(self, identifier_type: str) -> int:
        """1 = highest priority."""
        return self.priority.index(identifier_type) + 1
