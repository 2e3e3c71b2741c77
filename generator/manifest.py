"""Exact planted counts: per chunk (ChunkCounts, summed over chunks) and the data set's _manifest.json."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator.files import CUSTOMERS_DIR, EVENTS_DIR, MANIFEST
from generator.values import JUNK_EMAILS, JUNK_PHONE
from jobs.ingest.reasons import EVENT_REASONS

if TYPE_CHECKING:
    from generator.params import GenerateParams


@dataclass
class ChunkCounts:
    """Exact planted counts of one chunk (or, summed, of the data set)."""

    values: dict[str, int] = field(default_factory=dict)
    by_type: dict[str, int] = field(default_factory=dict)
    by_event: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    junk: dict[str, int] = field(default_factory=dict)
    chains: list[dict[str, Any]] = field(default_factory=list)
    carry_lines: dict[int, int] = field(default_factory=dict)
    carry_rows: dict[int, int] = field(default_factory=dict)
    carry_replays: dict[int, int] = field(default_factory=dict)

    def bump(self, key: str, n: int = 1) -> None:
        self.values[key] = self.values.get(key, 0) + n

    def add(self, other: ChunkCounts) -> None:
        for mine, theirs in ((self.values, other.values), (self.by_type, other.by_type),
                             (self.by_event, other.by_event), (self.by_reason, other.by_reason),
                             (self.junk, other.junk)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        self.chains.extend(other.chains)
        self.carry_lines.update(other.carry_lines)
        self.carry_rows.update(other.carry_rows)
        self.carry_replays.update(other.carry_replays)


def build_manifest(params: GenerateParams, totals: ChunkCounts, per_file: list[dict[str, Any]]) -> dict[str, Any]:
    v = totals.values.get
    files = sorted(p for p in params.out.rglob("*") if p.is_file() and p.name != MANIFEST + ".tmp")
    first_day = params.run_date - dt.timedelta(days=params.days - 1)
    return {
        "generator": "c360 generate",
        "seed": params.seed,
        "profiles": params.profiles,
        "days": params.days,
        "run_date": params.run_date.isoformat(),
        "window_start": first_day.isoformat(),
        "chunk_size": params.chunk_size,
        "chunks": params.chunks,
        "gzip": params.gzip,
        "rates": dataclasses.asdict(params.rates),
        "events": {
            # lines = unique valid messages + replayed_lines + malformed_lines
            "lines": v("event_lines", 0),
            "unique_valid_messages": v("valid_messages", 0),
            "replayed_lines": v("replayed_lines", 0),
            # the last chunk's carried replays stay in its own file
            "replayed_lines_in_later_file": v("replayed_next_file", 0) - totals.carry_replays[params.chunks - 1],
            "late_lines": v("late_lines", 0),
            "malformed_lines": sum(totals.by_reason.values()),
            "malformed_by_reason": {r: totals.by_reason.get(r, 0) for r in EVENT_REASONS},
            "offset_timestamps": v("offset_timestamps", 0),
            "by_type": dict(sorted(totals.by_type.items())),
            "track_by_event": dict(sorted(totals.by_event.items())),
        },
        "customers": {
            # rows = distinct rows + duplicate_rows + missing_customer_id
            "rows": v("customer_rows", 0),
            "distinct_customer_ids": v("master_customers", 0),
            "duplicate_rows": v("duplicate_rows", 0),
            "updated_rows": v("updated_rows", 0),
            "missing_customer_id": v("missing_customer_id", 0),
        },
        "persons": {
            "profiles": params.profiles,
            "known": v("known", 0),
            "anonymous_only": v("anonymous_only", 0),
            "devices": v("devices", 0),
            "with_alias": v("alias", 0),
            "with_login_alias": v("login_alias", 0),
            "junk_identifier_users": {k: totals.junk.get(k, 0) for k in (*JUNK_EMAILS, JUNK_PHONE)},
            "chains": totals.chains,
        },
        "groups": {"households": v("households", 0), "members": v("household_members", 0),
                   "group_calls": v("group_calls", 0), "group_events": v("group_events", 0),
                   "identify_with_group_id": v("identify_with_group_id", 0)},
        "orders": {"orders": v("orders", 0), "placed_lines": v("placed_lines", 0),
                   "rejected_lines": v("rejected_lines", 0), "invoiced_lines": v("invoiced_lines", 0),
                   "pre_login_orders": v("pre_login_orders", 0),
                   "pre_login_placed_lines": v("pre_login_placed_lines", 0)},
        "files": per_file,
        "bytes": sum(p.stat().st_size for p in files if EVENTS_DIR in p.parts or CUSTOMERS_DIR in p.parts),
    }


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """_manifest.json, written last, through a temporary file."""
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(out / MANIFEST)
