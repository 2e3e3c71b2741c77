"""One chunk of profiles: its state while its messages are generated, and what it hands back.

A chunk runs in a worker process (cli.generate_chunk). Everything random comes from `Chunk.rng`,
seeded from (seed, chunk index), in a fixed order of calls.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from generator.manifest import ChunkCounts
from generator.values import (
    JUNK_EMAILS,
    JUNK_PHONE,
    TIMESTAMP_OFFSETS_MIN,
    chunk_seed,
    format_timestamp,
    product_catalog,
)

if TYPE_CHECKING:
    from generator.params import GenerateParams
    from generator.people import Person


@dataclass
class ChunkOutput:
    index: int
    events_file: str
    customers_file: str
    event_lines: int                  # lines written to this chunk's own file (before carries)
    customer_rows: int
    events_carry: bytes               # appended to the next file (gzip member when compressed)
    customers_carry: bytes
    counts: ChunkCounts
    truth_people: list[tuple[str, str, str]]
    truth_groups: list[tuple[str, str]]


def dataset_tag(params: GenerateParams) -> str:
    """8 hex digits naming the data set: messageIds of data sets generated with other arguments
    (e.g. the next run date) never collide, so ingest does not mistake them for replays."""
    identity = (params.seed, params.profiles, params.days, params.run_date.isoformat(), params.chunk_size,
                dataclasses.astuple(params.rates))
    return hashlib.sha256(repr(identity).encode()).hexdigest()[:8]


class Chunk:
    """One chunk's state, shared by the message families (people, events, groups, customers,
    bad_lines): its random stream, the messages emitted so far, counts and ground truth."""

    def __init__(self, params: GenerateParams, index: int):
        self.p = params
        self.r = params.rates
        self.index = index
        self.rng = random.Random(chunk_seed(params.seed, index))
        self.start = params.window_start_ms
        self.end = params.window_end_ms
        self.span = self.end - self.start
        self.records: list[tuple[int, int, str]] = []     # (timestamp ms, sequence, line)
        self.seq = 0
        self.order_seq = 0
        self.counts = ChunkCounts()
        self.truth: set[tuple[str, str, str]] | None = set() if params.truth else None
        self.truth_groups: list[tuple[str, str]] = []
        self.catalog = product_catalog(params.seed)
        self.dumps = json.JSONEncoder(separators=(",", ":")).encode
        self.mid_prefix = f"{dataset_tag(params)}-{index:05d}-"

    # -- messages ---------------------------------------------------------------------------

    def rand_ts(self) -> int:
        return self.start + int(self.rng.random() * self.span)

    def emit(self, ts: int, mtype: str, person: Person, ident: tuple[str | None, str | None],
             body: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
        user_id, anon = ident
        self.seq += 1
        msg: dict[str, Any] = {"messageId": f"{self.mid_prefix}{self.seq:08d}", "type": mtype,
                               "timestamp": self.format_ts(ts)}
        if user_id is not None:
            msg["userId"] = user_id
        if anon is not None:
            msg["anonymousId"] = anon
        msg.update(body)
        msg["context"] = context if context is not None else {"library": {"name": "analytics-python"}}
        self.records.append((ts, self.seq, self.dumps(msg)))
        self.counts.by_type[mtype] = self.counts.by_type.get(mtype, 0) + 1
        if mtype == "track":
            self.counts.by_event[body["event"]] = self.counts.by_event.get(body["event"], 0) + 1
        if self.truth is not None:
            self.record_truth(person, msg)
        return msg

    def format_ts(self, ts: int) -> str:
        if self.rng.random() < self.r.offset_timestamp:
            self.counts.bump("offset_timestamps")
            return format_timestamp(ts, self.rng.choice(TIMESTAMP_OFFSETS_MIN))
        return format_timestamp(ts, 0)

    # -- ground truth (--truth) ---------------------------------------------------------------

    def record_truth(self, person: Person, msg: dict[str, Any]) -> None:
        add = self.truth.add
        if "userId" in msg:
            add((person.pid, "user_id", msg["userId"]))
        if "previousId" in msg:
            add((person.pid, "user_id" if msg["previousId"] == person.legacy_id else "anonymous_id", msg["previousId"]))
        if "anonymousId" in msg:
            add((person.pid, "anonymous_id", msg["anonymousId"]))
        for traits in (msg.get("traits"), msg["context"].get("traits")):
            if traits:
                self.add_contact_truth(person, traits.get("email"), traits.get("phone"))

    def add_contact_truth(self, person: Person, email: str | None, phone: str | None) -> None:
        if email:
            value = email.strip().lower()
            if value not in JUNK_EMAILS:
                self.truth.add((person.pid, "email", value))
        if phone:
            digits = "".join(ch for ch in phone if ch.isdigit())
            if digits and digits != JUNK_PHONE:
                self.truth.add((person.pid, "phone", "+1" + digits[-10:]))  # every planted number is US

    # -- contexts and identifier formatting ---------------------------------------------------

    def device_context(self, person: Person, device: list[Any], ident, extra: dict[str, Any] | None = None):
        context: dict[str, Any] = {"library": {"name": device[1]}}
        if ident[0] is not None and person.emails and self.rng.random() < self.r.context_traits:
            context["traits"] = {"email": self.fmt_email(person.emails[0])}
        if extra:
            context.update(extra)
        return context

    def fmt_email(self, email: str) -> str:
        roll = self.rng.random()
        if roll < 0.55:
            return email
        if roll < 0.70:
            return email.upper()
        if roll < 0.85:
            local, _, domain = email.partition("@")
            return f"{local.title()}@{domain.capitalize()}"
        return f"  {email} " if roll < 0.93 else f"{email.capitalize()} "

    def fmt_phone(self, national: str) -> str:
        a, e, s = national[:3], national[3:6], national[6:]
        return self.rng.choice((
            f"+1{national}", f"+1 {a} {e} {s}", f"({a}) {e}-{s}", f"{a}-{e}-{s}", f"1{national}",
            f"{a}.{e}.{s}", f"+1-{a}-{e}-{s}", national,
        ))
