"""What to generate: the planted-case rates and the arguments of one data set."""
# `from __future__ import annotations` is load-bearing: Rates.validate and cli.parse_rates compare
# dataclass field types with the strings "float" / "int".
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from generator.values import DAY_MS
from jobs.core.errors import InputError

DEFAULT_PROFILES = 10_000
DEFAULT_DAYS = 60
DEFAULT_SEED = 1
DEFAULT_CHUNK_SIZE = 5_000
DEFAULT_WORKERS = 2


@dataclass(frozen=True)
class Rates:
    """Shares of planted cases. Defaults are the documented rates; tests override them."""

    anonymous_only: float = 0.15      # profiles that never identify
    master_row: float = 0.70          # known customers with a customer master row
    duplicate_row: float = 0.03       # master rows repeated identically in a later file
    updated_row: float = 0.02         # master rows repeated with newer values in a later file
    missing_customer_id: float = 0.001  # extra master rows with an empty customer_id (>= 1 per chunk)
    household_member: float = 0.12   # known profiles living in a household / account of 2-5
    junk_email: float = 0.006         # per junk email: share of profiles that used it (>= 1 per chunk)
    junk_phone: float = 0.006
    alias: float = 0.03               # known profiles with a legacy userId and an alias call
    login_alias: float = 0.15         # known profiles whose first device is linked by alias(anonymousId) only
    chains_per_chunk: int = 1         # profiles linked only through a long chain, per chunk
    chain_hops: int = 60              # hops from the chain's first anonymousId to its userId (even)
    context_traits: float = 0.10      # identified track events that also carry context.traits
    offset_timestamp: float = 0.10    # timestamps written with a non-UTC offset
    reject: float = 0.15              # placed lines that get rejected
    invoice: float = 0.70             # placed lines that get invoiced
    replay: float = 0.01              # valid lines written twice (same messageId, same bytes)
    replay_next_file: float = 0.5     # share of replays written into the next file
    late: float = 0.01                # valid lines moved to the end of the next file
    malformed: float = 0.003          # malformed lines per valid line (>= one per reason per chunk)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value < 0:
                raise InputError(f"rate {f.name} must not be negative, got {value}")
            if f.type == "float" and f.name != "malformed" and value > 1:
                raise InputError(f"rate {f.name} is a share and must be at most 1, got {value}")
        if self.reject + self.invoice > 1:
            raise InputError("rates reject + invoice must be at most 1 (a line is rejected or invoiced, not both)")
        if self.chain_hops < 2 or self.chain_hops % 2:
            raise InputError(f"rate chain_hops must be an even number >= 2, got {self.chain_hops}")


@dataclass(frozen=True)
class GenerateParams:
    out: Path
    profiles: int = DEFAULT_PROFILES
    days: int = DEFAULT_DAYS
    seed: int = DEFAULT_SEED
    run_date: dt.date = dt.date(2026, 1, 31)
    chunk_size: int = DEFAULT_CHUNK_SIZE
    workers: int = DEFAULT_WORKERS
    gzip: bool = False
    truth: bool = False
    force: bool = False
    rates: Rates = field(default_factory=Rates)
    # Filled by generate(): jobs.ingest.schemas.CUSTOMER_COLUMNS (workers do not import pyspark).
    customer_columns: tuple[str, ...] = ()

    @property
    def chunks(self) -> int:
        return -(-self.profiles // self.chunk_size)

    @property
    def window_start_ms(self) -> int:
        first_day = self.run_date - dt.timedelta(days=self.days - 1)
        return (first_day - dt.date(1970, 1, 1)).days * DAY_MS

    @property
    def window_end_ms(self) -> int:
        """Exclusive: midnight UTC after the run date."""
        return ((self.run_date - dt.date(1970, 1, 1)).days + 1) * DAY_MS
