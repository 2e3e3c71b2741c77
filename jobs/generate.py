"""`c360 generate`: a deterministic synthetic raw input set (interface §3) with the hard cases of real data.

Output under `--out DIR`:
  events/part-NNNNN.jsonl[.gz]  one Segment message per line; one file per chunk of profiles
  customers/part-NNNNN.csv      customer master rows, header = jobs.schemas.CUSTOMER_COLUMNS
  _manifest.json                the exact planted counts, so tests can check ingest independently
  _truth/people.csv             with --truth: person_id, identifier_type, identifier_value (normalized)
  _truth/group_members.csv      with --truth: group_id, person_id

Determinism. Profiles are generated in chunks of `chunk_size`; chunk i uses its own random stream
seeded from (seed, i) and only integer/IEEE arithmetic (no libm functions), so the same arguments
give byte-identical files on any machine, with any number of worker processes. (With --gzip the
decompressed bytes are identical; the compressed bytes also depend on the zlib build.) A chunk hands
its late events, cross-file replays and repeated/updated customer rows to the NEXT chunk's file
(the last chunk keeps them at the end of its own file), so these arrive after their originals.

Event window: UTC days run_date-days+1 .. run_date. Timestamps are ISO-8601 with milliseconds,
mostly `Z`, a share (`Rates.offset_timestamp`) written in a local offset such as `+05:30`; the
instant is the same either way. Each events file is in timestamp order apart from malformed
lines (random positions), replays and the late events appended at its end.

Identities (ground truth = one person per profile):
- known profile: userId `C0000042` (= customer_id in the master), 1-4 devices (anonymousIds, uuid
  form); each device first sends events with only its anonymousId (including pre-login orders),
  then identifies (userId + anonymousId + traits) and sends both ids from then on. Every email and
  phone of a person appears in at least one identify with the person's userId.
- anonymous-only profile (`Rates.anonymous_only`): one device, never identifies, may order.
- alias profile (`Rates.alias`): userId was a legacy id `L0000042` before a random moment; an
  alias call {previousId: legacy, userId} links them (previousId a former userId).
- login-alias profile (`Rates.login_alias`, the most common Segment pattern): the first device
  browses (and may order) under its anonymousId only; at login an alias call {previousId:
  anonymousId, userId} is the only message linking them, and from then on that device sends the
  userId alone. So the anonymous history reaches the customer only through the alias.
- chain profile (`Rates.chains_per_chunk`): anonymous devices linked only through `chain_hops`
  hops: identify(anon1, email1), identify(anon2, email1), identify(anon2, email2), ..., finally
  identify(userId, email_k). Its orders come from anon1, the far end of the chain.
- junk identifiers (`Rates.junk_email`, `Rates.junk_phone`): `test@test.com`, `none@none.com` and
  phone `0000000000` each appear in an identify of many unrelated persons. They are not in _truth.
  Every alias previousId is in _truth with the type it was seen under (user_id for a legacy id,
  anonymous_id for a device).
- emails are written with random case / surrounding spaces, phones as `+1 555 123 4567`,
  `(555) 123-4567`, `555-123-4567`, `15551234567`, ... (US numbers, with or without the country
  code; _truth lists each in E.164, `+1` and the 10 national digits).
- households / accounts of 2-5 known members: the holder sends a `group` call whose traits carry
  the holder's own email/phone (so group traits never link two persons); other members join by a
  `group` call without contact traits or by an identify with a top-level groupId. Members send
  group events: track events with `groupId` at the top level or in `context.groupId`.

Orders: `Order Placed` one message per line, order_id `O<chunk:4><seq:6>-<line>`; `Rates.reject`
of lines get an `Order Rejected`, `Rates.invoice` an `Order Invoiced`, 0..10 days later (never past
the window's end), with the same identity as the placed line; the rest stay pending.

Bad input: replayed lines (identical bytes, same messageId; some in the next file), late events,
malformed lines (`Rates.malformed`, at least one of every reason in MALFORMED_REASONS per chunk;
each line has exactly one defect), customer rows repeated identically or updated (same
customer_id, newer status/address/consent) in a later file, and rows with an empty customer_id.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime as dt
import gzip
import hashlib
import io
import json
import multiprocessing
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.errors import InputError

if TYPE_CHECKING:
    from jobs.context import JobContext, StageResult

HELP = "write a deterministic synthetic raw input set (events JSONL + customers CSV) with hard cases"
NEEDS_SPARK = False

DEFAULT_PROFILES = 10_000
DEFAULT_DAYS = 60
DEFAULT_SEED = 1
DEFAULT_CHUNK_SIZE = 5_000
DEFAULT_WORKERS = 2

EVENTS_DIR = "events"
CUSTOMERS_DIR = "customers"
TRUTH_DIR = "_truth"
MANIFEST = "_manifest.json"
OUTPUTS = (EVENTS_DIR, CUSTOMERS_DIR, TRUTH_DIR, MANIFEST)

# Quarantine reasons (the names jobs.ingest uses), one planted defect each.
MALFORMED_REASONS = (
    "invalid_json", "not_an_object", "missing_message_id", "missing_type", "unknown_type",
    "missing_timestamp", "bad_timestamp", "missing_identity", "missing_event", "missing_group_id",
    "missing_previous_id",
)
JUNK_EMAILS = ("test@test.com", "none@none.com")
JUNK_PHONE = "0000000000"

DAY_MS = 86_400_000
MAX_REF_DELAY_MS = 10 * DAY_MS          # rejected / invoiced lines follow the placed line by 0..10 days
TIMESTAMP_OFFSETS_MIN = (330, -240, 60, -420, 540, -300, 120, -210, 600)


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
    # Filled by generate(): jobs.schemas.CUSTOMER_COLUMNS (workers do not import pyspark).
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


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (events/, customers/, _manifest.json)")
    parser.add_argument("--profiles", type=int, default=DEFAULT_PROFILES, help="number of persons (default %(default)s)")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="days of events up to --run-date (default %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default %(default)s)")
    parser.add_argument("--gzip", action="store_true", help="write events as .jsonl.gz")
    parser.add_argument("--force", action="store_true", help="replace earlier output in a non-empty --out")
    parser.add_argument("--truth", action="store_true", help="also write _truth/ (ground-truth identities, small N)")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                        help="profiles per output file; part of the output's identity (default %(default)s)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help="worker processes; never changes the output (default %(default)s)")
    parser.add_argument("--rate", action="append", default=[], metavar="NAME=VALUE",
                        help=f"override a planted-case rate ({', '.join(f.name for f in dataclasses.fields(Rates))})")


def parse_rates(items: list[str]) -> Rates:
    known = {f.name: f for f in dataclasses.fields(Rates)}
    values: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or name not in known:
            raise InputError(f"--rate {item!r}: expected NAME=VALUE with NAME one of {', '.join(known)}")
        try:
            values[name] = int(text) if known[name].type == "int" else float(text)
        except ValueError:
            raise InputError(f"--rate {item!r}: {text!r} is not a {known[name].type}") from None
    return Rates(**values)


def run(ctx: JobContext, args: argparse.Namespace) -> StageResult:
    from jobs.context import StageResult

    params = GenerateParams(
        out=Path(args.out), profiles=args.profiles, days=args.days, seed=args.seed, run_date=ctx.run_date,
        chunk_size=args.chunk_size, workers=args.workers, gzip=args.gzip, truth=args.truth, force=args.force,
        rates=parse_rates(args.rate),
    )
    manifest = generate(params)
    ev, cu = manifest["events"], manifest["customers"]
    return StageResult(
        metrics={
            "profiles": params.profiles, "files": manifest["chunks"], "event_lines": ev["lines"],
            "replayed": ev["replayed_lines"], "malformed": ev["malformed_lines"], "customer_rows": cu["rows"],
            "bytes": manifest["bytes"],
        },
        notes=[f"wrote {params.out} (window {manifest['window_start']} .. {manifest['run_date']})"],
    )


# ----------------------------------------------------------------------------------------------
# Orchestration: chunks in worker processes, carries appended in chunk order
# ----------------------------------------------------------------------------------------------


def generate(params: GenerateParams) -> dict[str, Any]:
    """Write the data set described by `params`; returns the manifest (also written to _manifest.json)."""
    from jobs.schemas import CUSTOMER_COLUMNS

    if params.profiles < 1 or params.days < 1 or params.chunk_size < 1 or params.workers < 1:
        raise InputError("--profiles, --days, --chunk-size and --workers must be at least 1")
    params.rates.validate()
    params = dataclasses.replace(params, customer_columns=tuple(CUSTOMER_COLUMNS))
    prepare_output(params.out, force=params.force)
    (params.out / EVENTS_DIR).mkdir(parents=True)
    (params.out / CUSTOMERS_DIR).mkdir(parents=True)

    totals = ChunkCounts()
    per_file: list[dict[str, Any]] = []
    previous: ChunkOutput | None = None
    jobs = [(params, i) for i in range(params.chunks)]
    with contextlib.ExitStack() as stack:
        truth = open_truth(params.out, stack) if params.truth else None
        for result in _map_in_order(_generate_chunk, jobs, min(params.workers, params.chunks)):
            if previous is not None:
                _append_carry(params, previous, into=result.index)
            totals.add(result.counts)
            per_file.append({"events": result.events_file, "event_lines": result.event_lines,
                             "customers": result.customers_file, "customer_rows": result.customer_rows})
            if truth is not None:
                truth[0].writerows(result.truth_people)
                truth[1].writerows(result.truth_groups)
            previous = result
    assert previous is not None
    _append_carry(params, previous, into=previous.index)
    # Each chunk's carry went into the next file; the last chunk kept its own.
    for i, entry in enumerate(per_file):
        if i > 0:
            entry["event_lines"] += totals.carry_lines[i - 1]
            entry["customer_rows"] += totals.carry_rows[i - 1]
    per_file[-1]["event_lines"] += totals.carry_lines[len(per_file) - 1]
    per_file[-1]["customer_rows"] += totals.carry_rows[len(per_file) - 1]
    manifest = build_manifest(params, totals, per_file)
    tmp = params.out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(params.out / MANIFEST)
    return manifest


def prepare_output(out: Path, *, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise InputError(f"--out {out} is not empty; pass --force to replace the generated data in it")
        for name in OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def open_truth(out: Path, stack: contextlib.ExitStack):
    """CSV writers for _truth/people.csv and _truth/group_members.csv, closed with `stack`."""
    (out / TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    writers = []
    for name, header in (("people.csv", ("person_id", "identifier_type", "identifier_value")),
                         ("group_members.csv", ("group_id", "person_id"))):
        writer = csv.writer(stack.enter_context(open(out / TRUTH_DIR / name, "w", newline="")), lineterminator="\n")
        writer.writerow(header)
        writers.append(writer)
    return writers


def _map_in_order(func, jobs: list, workers: int):
    """Results in job order; worker processes (spawned: safe next to a running JVM) when workers > 1."""
    if workers <= 1:
        yield from map(func, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(func, jobs, chunksize=1)


def _append_carry(params: GenerateParams, source: ChunkOutput, *, into: int) -> None:
    with open(params.out / EVENTS_DIR / event_file_name(into, params.gzip), "ab") as fh:
        fh.write(source.events_carry)
    with open(params.out / CUSTOMERS_DIR / customer_file_name(into), "ab") as fh:
        fh.write(source.customers_carry)


def event_file_name(index: int, compressed: bool) -> str:
    return f"part-{index:05d}.jsonl" + (".gz" if compressed else "")


def customer_file_name(index: int) -> str:
    return f"part-{index:05d}.csv"


# ----------------------------------------------------------------------------------------------
# Counts and manifest
# ----------------------------------------------------------------------------------------------


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
            "malformed_by_reason": {r: totals.by_reason.get(r, 0) for r in MALFORMED_REASONS},
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


# ----------------------------------------------------------------------------------------------
# One chunk (runs in a worker process)
# ----------------------------------------------------------------------------------------------


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


def chunk_seed(seed: int, index: int) -> int:
    """A stable integer seed for chunk `index` (not Python's salted hash)."""
    return int.from_bytes(hashlib.sha256(f"c360-generate:{seed}:{index}".encode()).digest()[:8], "big")


def dataset_tag(params: GenerateParams) -> str:
    """8 hex digits naming the data set: messageIds of data sets generated with other arguments
    (e.g. the next run date) never collide, so ingest does not mistake them for replays."""
    identity = (params.seed, params.profiles, params.days, params.run_date.isoformat(), params.chunk_size,
                dataclasses.astuple(params.rates))
    return hashlib.sha256(repr(identity).encode()).hexdigest()[:8]


def _generate_chunk(job: tuple[GenerateParams, int]) -> ChunkOutput:
    params, index = job
    return ChunkWriter(params, index).write()


class Person:
    __slots__ = ("idx", "pid", "user_id", "legacy_id", "alias_ms", "devices", "emails", "phones", "first",
                 "last", "mult", "chain", "group", "pref_hour", "alias_device")

    def __init__(self, idx: int):
        self.idx = idx
        self.pid = f"P{idx:07d}"
        self.user_id: str | None = None
        self.legacy_id: str | None = None
        self.alias_ms = 0
        self.devices: list[list[Any]] = []     # [anonymousId, library, login_ms or None]
        self.emails: list[str] = []            # canonical (normalized) form
        self.phones: list[str] = []            # 10 national digits
        self.first = ""
        self.last = ""
        self.mult = 1.0
        self.chain = False
        self.group: str | None = None
        self.pref_hour: dict[str, int] = {}
        # The device linked to the user only by alias(previousId=its anonymousId) at its login.
        self.alias_device: str | None = None

    def uid_at(self, ts: int) -> str | None:
        if self.legacy_id is not None and ts < self.alias_ms:
            return self.legacy_id
        return self.user_id

    def ident(self, device: list[Any], ts: int) -> tuple[str | None, str | None]:
        login = device[2]
        if login is not None and ts >= login:
            return self.uid_at(ts), (None if device[0] == self.alias_device else device[0])
        return None, device[0]


class ChunkWriter:
    """Generates one chunk's persons and messages and writes its two files."""

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

    # -- persons ----------------------------------------------------------------------------

    def make_persons(self) -> list[Person]:
        rng, r = self.rng, self.r
        first_idx = self.index * self.p.chunk_size
        count = min(self.p.chunk_size, self.p.profiles - first_idx)
        persons = []
        for k in range(count):
            person = Person(first_idx + k)
            person.first, person.last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            person.mult = rng.choices(ACTIVITY_LEVELS, ACTIVITY_WEIGHTS)[0]
            person.chain = k < r.chains_per_chunk and count > r.chains_per_chunk
            known = person.chain or rng.random() >= r.anonymous_only
            libraries = ("analytics.js", "analytics-ios", "analytics-android")
            n_devices = 1 if not known or person.chain else rng.choices((1, 2, 3, 4), (50, 30, 15, 5))[0]
            for d in range(n_devices):
                anon = uuid_from(rng.getrandbits(128))
                person.devices.append([anon, rng.choice(libraries), None])
            if known:
                person.user_id = f"C{person.idx:07d}"
                if person.chain:
                    self.make_chain_identity(person)
                else:
                    n_emails = rng.choices((1, 2, 3), (70, 25, 5))[0]
                    person.emails = [email_for(person, e) for e in range(n_emails)]
                    n_phones = rng.choices((0, 1, 2), (30, 55, 15))[0]
                    person.phones = [phone_for(person.idx, f) for f in range(n_phones)]
                    for d, device in enumerate(person.devices):
                        # The first device logs in early; later devices at any time in the window.
                        reach = self.span * 3 // 10 if d == 0 else self.span
                        device[2] = self.start + int(rng.random() * reach)
                    if rng.random() < r.alias:
                        person.legacy_id = f"L{person.idx:07d}"
                        person.alias_ms = self.rand_ts()
                        self.counts.bump("alias")
                    if rng.random() < r.login_alias:
                        person.alias_device = person.devices[0][0]
                        self.counts.bump("login_alias")
                self.counts.bump("known")
            else:
                self.counts.bump("anonymous_only")
            for email in person.emails:
                person.pref_hour[email] = rng.randrange(24)
            self.counts.bump("devices", len(person.devices))
            persons.append(person)
        return persons

    def make_chain_identity(self, person: Person) -> None:
        pairs = self.r.chain_hops // 2
        person.devices = [[uuid_from(self.rng.getrandbits(128)), "analytics.js", None] for _ in range(pairs)]
        person.emails = [f"{person.first}.{person.last}.c{j}.{person.idx}@chainmail.example".lower()
                         for j in range(pairs)]

    # -- event families ---------------------------------------------------------------------

    def person_events(self, person: Person) -> None:
        rng, m = self.rng, person.mult
        if person.chain:
            self.chain_events(person)
        elif person.user_id is not None:
            self.identify_events(person)
        for _ in range(max(1, count_about(rng, 5.5 * m))):   # everyone is seen at least once
            self.view_event(person)
        for name, mean in (("Product Viewed", 2.5), ("Cart Viewed", 1.0), ("Products Searched", 1.0)):
            for _ in range(count_about(rng, mean * m)):
                self.browse_event(person, name)
        if person.user_id is not None and person.emails:
            for _ in range(count_about(rng, 1.5 * m)):
                self.email_opened(person)
        for _ in range(count_about(rng, 1.0 * m)):
            self.order(person)

    def identify_events(self, person: Person) -> None:
        rng = self.rng
        traits_base = {"firstName": person.first.title(), "lastName": person.last.title()}
        for n, device in enumerate(person.devices):
            ts = device[2]
            traits = {"email": self.fmt_email(person.emails[n % len(person.emails)]), **traits_base}
            if person.phones and rng.random() < 0.5:
                traits["phone"] = self.fmt_phone(person.phones[0])
            self.emit(ts, "identify", person, person.ident(device, ts), {"traits": traits},
                      {"library": {"name": device[1]}})
        # Server-side identifies so that every email and phone is tied to the userId at least once.
        for email in person.emails:
            ts = self.rand_ts()
            self.emit(ts, "identify", person, (person.uid_at(ts), None),
                      {"traits": {"email": self.fmt_email(email), **traits_base}})
        for phone in person.phones:
            ts = self.rand_ts()
            self.emit(ts, "identify", person, (person.uid_at(ts), None),
                      {"traits": {"phone": self.fmt_phone(phone), **traits_base}})
        for _ in range(count_about(rng, 0.5)):
            device = rng.choice(person.devices)
            ts = device[2] + int(rng.random() * (self.end - device[2]))
            traits = {"email": self.fmt_email(rng.choice(person.emails)), "plan": rng.choice(PLANS)}
            self.emit(ts, "identify", person, person.ident(device, ts), {"traits": traits},
                      {"library": {"name": device[1]}})
        if person.legacy_id is not None:
            self.emit(person.alias_ms, "alias", person, (person.user_id, None), {"previousId": person.legacy_id})
        if person.alias_device is not None:
            login = person.devices[0][2]
            self.emit(login, "alias", person, (person.uid_at(login), None), {"previousId": person.alias_device})

    def chain_events(self, person: Person) -> None:
        """identify(anon_j, email_j) and identify(anon_j+1, email_j): each link in its own message."""
        devices, emails = person.devices, person.emails
        for j, email in enumerate(emails):
            for device in (devices[j], devices[j + 1]) if j + 1 < len(devices) else (devices[j],):
                ts = self.rand_ts()
                self.emit(ts, "identify", person, (None, device[0]), {"traits": {"email": self.fmt_email(email)}},
                          {"library": {"name": device[1]}})
        ts = self.rand_ts()
        self.emit(ts, "identify", person, (person.user_id, None),
                  {"traits": {"email": self.fmt_email(emails[-1]), "firstName": person.first.title()}})
        # Orders and views come from the far end of the chain.
        person.devices = devices[:1]
        self.counts.chains.append({"person_id": person.pid, "first_anonymous_id": devices[0][0],
                                   "user_id": person.user_id, "hops": 2 * len(emails)})

    def view_event(self, person: Person) -> None:
        device = self.rng.choice(person.devices)
        ts = self.rand_ts()
        ident = person.ident(device, ts)
        page = self.rng.choice(PAGES)
        if device[1] == "analytics.js":
            body = {"name": page, "properties": {"path": "/" + page.lower().replace(" ", "-"), "title": page}}
            self.emit(ts, "page", person, ident, body, self.device_context(person, device, ident))
        else:
            body = {"name": page, "properties": {"name": page}}
            self.emit(ts, "screen", person, ident, body, self.device_context(person, device, ident))

    def browse_event(self, person: Person, name: str) -> None:
        rng = self.rng
        device = rng.choice(person.devices)
        ts = self.rand_ts()
        ident = person.ident(device, ts)
        if name == "Product Viewed":
            product = rng.choice(self.catalog)
            props: dict[str, Any] = {"product_id": product[0], "brand_name": product[1], "product_category": product[3]}
        elif name == "Cart Viewed":
            props = {"item_count": rng.randint(1, 12)}
        else:
            props = {"query": rng.choice(BRANDS).lower()}
        self.emit(ts, "track", person, ident, {"event": name, "properties": props},
                  self.device_context(person, device, ident))

    def email_opened(self, person: Person) -> None:
        rng = self.rng
        email = rng.choice(person.emails)
        hour = person.pref_hour[email]
        if rng.random() < 0.2:
            hour = (hour + rng.choice((-1, 1))) % 24
        day = rng.randrange(self.p.days)
        ts = self.start + day * DAY_MS + hour * 3_600_000 + rng.randrange(3_600_000)
        props = {"email_address": email, "campaign_id": f"cmp-{rng.randrange(1, 40):03d}"}
        self.emit(ts, "track", person, (person.uid_at(ts), None), {"event": "Email Opened", "properties": props})

    def order(self, person: Person) -> None:
        rng, r = self.rng, self.r
        device = rng.choice(person.devices)
        ts = self.rand_ts()
        ident = person.ident(device, ts)
        self.order_seq += 1
        if self.order_seq >= 1_000_000:
            raise InputError("--chunk-size too large: more than 999,999 orders in one chunk")
        order_no = f"O{self.index:04d}{self.order_seq:06d}"
        delivery = epoch_day_to_date((ts // DAY_MS) + rng.randint(1, 7))
        self.counts.bump("orders")
        # Placed before this device identified; a later identify on the same anonymousId links it.
        pre_login = ident[0] is None and person.user_id is not None and not person.chain
        for line in range(1, rng.choices((1, 2, 3, 4), (30, 30, 25, 15))[0] + 1):
            product = rng.choice(self.catalog)
            cases, bottles = rng.randint(0, 10), rng.randint(0, 24)
            if cases == 0 and bottles == 0:
                cases = 1
            cents = cases * product[5] + bottles * product[6]
            props = {
                "order_id": f"{order_no}-{line}", "product_id": product[0], "brand_name": product[1],
                "supplier_name": product[2], "product_category": product[3], "product_classification": product[4],
                "cases": cases, "bottles": bottles, "order_value": cents / 100, "request_delivery_date": delivery,
            }
            self.emit(ts, "track", person, ident, {"event": "Order Placed", "properties": props},
                      self.device_context(person, device, ident))
            self.counts.bump("placed_lines")
            if pre_login:
                self.counts.bump("pre_login_placed_lines")
            roll = rng.random()
            # 0..10 days later, but inside the window so the planted shares hold near its end too.
            later = ts + rng.randint(0, min(MAX_REF_DELAY_MS, self.end - 1 - ts))
            if roll < r.reject + r.invoice:
                server = {"library": {"name": "analytics-python"}}
                if roll < r.reject:
                    rejected = {**props, "order_reject_code": rng.choice(REJECT_CODES),
                                "order_status_code": "RJ", "order_delivery_status": rng.choice(DELIVERY_STATUSES)}
                    self.emit(later, "track", person, ident, {"event": "Order Rejected", "properties": rejected}, server)
                    self.counts.bump("rejected_lines")
                else:
                    self.emit(later, "track", person, ident, {"event": "Order Invoiced", "properties": props}, server)
                    self.counts.bump("invoiced_lines")
        if pre_login:
            self.counts.bump("pre_login_orders")

    # -- planted identity cases ----------------------------------------------------------------

    def junk_identifiers(self, persons: list[Person]) -> None:
        rng = self.rng
        eligible = [p for p in persons if p.user_id is not None and not p.chain]
        plans = [(email, self.r.junk_email) for email in JUNK_EMAILS] + [(JUNK_PHONE, self.r.junk_phone)]
        for junk, rate in plans:
            n = min(len(eligible), max(1, round(rate * len(persons)))) if rate > 0 else 0
            for person in rng.sample(eligible, n):
                ts = self.rand_ts()
                if junk == JUNK_PHONE:
                    traits = {"phone": rng.choice((JUNK_PHONE, "000-000-0000", "(000) 000-0000"))}
                else:
                    traits = {"email": rng.choice((junk, junk.upper(), f" {junk}"))}
                device = rng.choice(person.devices)
                ident = person.ident(device, ts)
                if ident[0] is None:
                    ident = (person.uid_at(ts), None)
                self.emit(ts, "identify", person, ident, {"traits": traits}, {"library": {"name": device[1]}})
                self.counts.junk[junk] = self.counts.junk.get(junk, 0) + 1

    def households(self, persons: list[Person]) -> None:
        rng = self.rng
        eligible = [p for p in persons if p.user_id is not None and not p.chain]
        rng.shuffle(eligible)
        members_left = int(len(eligible) * self.r.household_member)
        pos, number = 0, 0
        while members_left >= 2 and pos + 2 <= len(eligible):
            size = min(rng.randint(2, 5), members_left, len(eligible) - pos)
            if size < 2:
                break
            members = eligible[pos:pos + size]
            pos += size
            members_left -= size
            number += 1
            kind = rng.choice(("hh", "acct"))
            group_id = f"{kind}_{self.index:05d}_{number:04d}"
            self.household(group_id, kind, members)

    def household(self, group_id: str, kind: str, members: list[Person]) -> None:
        rng = self.rng
        holder = members[0]
        name = f"{holder.last.title()} {'household' if kind == 'hh' else rng.choice(ACCOUNT_SUFFIXES)}"
        plan = rng.choice(PLANS)
        shared = {"name": name, "plan": plan}
        if kind == "hh":
            shared["household_income"] = rng.randrange(30, 250) * 1000
        self.counts.bump("households")
        self.counts.bump("household_members", len(members))
        for n, member in enumerate(members):
            member.group = group_id
            self.truth_groups.append((group_id, member.pid))
            ts = self.rand_ts()
            if n == 0:
                traits = {**shared, "firstName": holder.first.title(), "lastName": holder.last.title()}
                if holder.emails:
                    traits["email"] = self.fmt_email(holder.emails[0])
                if holder.phones:
                    traits["phone"] = self.fmt_phone(holder.phones[0])
                self.emit(ts, "group", member, (member.uid_at(ts), None), {"groupId": group_id, "traits": traits})
                self.counts.bump("group_calls")
            elif rng.random() < 0.7:
                self.emit(ts, "group", member, (member.uid_at(ts), None), {"groupId": group_id, "traits": dict(shared)})
                self.counts.bump("group_calls")
            else:
                traits = {"firstName": member.first.title(), "lastName": member.last.title()}
                self.emit(ts, "identify", member, (member.uid_at(ts), None), {"groupId": group_id, "traits": traits})
                self.counts.bump("identify_with_group_id")
        for _ in range(count_about(rng, 4.0)):
            member = rng.choice(members)
            ts = self.rand_ts()
            event = rng.choice(GROUP_EVENTS)
            props: dict[str, Any] = {"plan": plan}
            if event == "Invoice Paid":
                props["amount"] = rng.randrange(2000, 90000) / 100
            if rng.random() < 0.5:
                self.emit(ts, "track", member, (member.uid_at(ts), None),
                          {"event": event, "groupId": group_id, "properties": props})
            else:
                self.emit(ts, "track", member, (member.uid_at(ts), None), {"event": event, "properties": props},
                          {"library": {"name": "analytics-python"}, "groupId": group_id})
            self.counts.bump("group_events")

    # -- malformed lines ------------------------------------------------------------------------

    def malformed_lines(self, persons: list[Person], valid: int) -> list[str]:
        rate = self.r.malformed
        if rate <= 0:
            return []
        known = [p for p in persons if p.user_id is not None] or persons
        n = max(len(MALFORMED_REASONS), round(rate * valid))
        out = []
        for k in range(n):
            reason = MALFORMED_REASONS[k % len(MALFORMED_REASONS)]
            ts = self.rand_ts()
            person = self.rng.choice(known)
            self.seq += 1
            out.append(self.malformed_line(reason, person, f"{self.mid_prefix}{self.seq:08d}", ts))
            self.counts.by_reason[reason] = self.counts.by_reason.get(reason, 0) + 1
        return out

    def malformed_line(self, reason: str, person: Person, message_id: str, ts: int) -> str:
        rng = self.rng
        stamp = format_timestamp(ts, 0)
        uid = person.user_id or None
        base: dict[str, Any] = {"messageId": message_id, "type": "track", "timestamp": stamp}
        if uid:
            base["userId"] = uid
        else:
            base["anonymousId"] = person.devices[0][0]
        base["event"] = "Product Viewed"
        base["properties"] = {"product_id": rng.choice(self.catalog)[0]}
        if reason == "invalid_json":
            text = self.dumps(base)
            return rng.choice((text[: len(text) // 2], "{'messageId': '" + message_id + "'}",
                               text[:-1] + ",}", "not json at all"))
        if reason == "not_an_object":
            return rng.choice(("[1,2]", '"' + message_id + '"', "42", "null", "[]"))
        if reason == "missing_message_id":
            del base["messageId"]
        elif reason == "missing_type":
            del base["type"]
        elif reason == "unknown_type":
            base["type"] = rng.choice(("purchase", "pageview", "event", "batch"))
        elif reason == "missing_timestamp":
            del base["timestamp"]
        elif reason == "bad_timestamp":
            base["timestamp"] = rng.choice(("yesterday", stamp.replace("-", "/")[:10] + " 10:00",
                                            stamp[:5] + "13" + stamp[7:], "2026-02-30T10:00:00Z"))
        elif reason == "missing_identity":
            base.pop("userId", None)
            base.pop("anonymousId", None)
        elif reason == "missing_event":
            del base["event"]
        elif reason == "missing_group_id":
            base["type"] = "group"
            del base["event"], base["properties"]
            base["traits"] = {"name": f"{person.last.title()} household"}
        elif reason == "missing_previous_id":
            base = {"messageId": message_id, "type": "alias", "timestamp": stamp,
                    "userId": uid or person.devices[0][0]}
        return self.dumps(base)

    # -- customer master ------------------------------------------------------------------------

    def customer_rows(self, persons: list[Person]) -> tuple[list[list[str]], list[list[str]]]:
        """(rows of this chunk's file, rows carried to the next file)."""
        rng, r = self.rng, self.r
        columns = self.p.customer_columns
        own: list[list[str]] = []
        carry: list[list[str]] = []
        for person in persons:
            if person.user_id is None or rng.random() >= r.master_row:
                continue
            row = self.customer_record(person)
            own.append([row[c] for c in columns])
            self.counts.bump("master_customers")
            roll = rng.random()
            if roll < r.duplicate_row:
                carry.append([row[c] for c in columns])
                self.counts.bump("duplicate_rows")
            elif roll < r.duplicate_row + r.updated_row:
                newer = dict(row, status=rng.choice(("inactive", "suspended", "active")),
                             address=street_address(rng), consent="no" if row["consent"] == "yes" else "yes")
                carry.append([newer[c] for c in columns])
                self.counts.bump("updated_rows")
            if self.truth is not None:
                self.truth.add((person.pid, "user_id", person.user_id))
                self.add_contact_truth(person, row["email"], row["phone_number"])
        if r.missing_customer_id > 0 and own:
            for _ in range(max(1, round(r.missing_customer_id * len(own)))):
                broken = list(rng.choice(own))
                broken[columns.index("customer_id")] = ""
                own.insert(rng.randrange(len(own) + 1), broken)
                self.counts.bump("missing_customer_id")
        return own, carry

    def customer_record(self, person: Person) -> dict[str, str]:
        rng = self.rng
        site, state, county, zip3, division = rng.choice(SITES)
        premise = rng.choice(("on prem", "off prem"))
        channel_code, channel_name = rng.choice(ON_PREM_CHANNELS if premise == "on prem" else OFF_PREM_CHANNELS)
        kind = "On-Sale" if premise == "on prem" else "Off-Sale"
        email = person.emails[-1] if person.chain else (person.emails[0] if person.emails else "")
        return {
            "customer_id": person.user_id or "",
            "customer_name": f"{person.first.title()} {person.last.title()}",
            "email": self.fmt_email(email) if email else "",
            "phone_number": self.fmt_phone(person.phones[0]) if person.phones else "",
            "address": street_address(rng),
            "customer_no": f"{person.idx % 1_000_000:06d}",
            "site": site,
            "state": state,
            "county_name": county,
            "zip": f"{zip3}{rng.randrange(100):02d}",
            "premise_code": premise,
            "status": rng.choices(("active", "inactive", "suspended"), (80, 15, 5))[0],
            "license_classification": rng.choice(("A", "B", "C")),
            "license_type": f"{kind} {rng.choice(('General', 'Beer & Wine'))}",
            "channel_code": channel_code,
            "channel_name": channel_name,
            "selling_division_name": division,
            "consent": "yes" if rng.random() < 0.65 else "no",
        }

    # -- assembly -------------------------------------------------------------------------------

    def write(self) -> ChunkOutput:
        persons = self.make_persons()
        for person in persons:
            self.person_events(person)
        self.households(persons)
        self.junk_identifiers(persons)
        lines, carry_lines = self.arrange_lines(persons)
        events_name = event_file_name(self.index, self.p.gzip)
        write_text(self.p.out / EVENTS_DIR / events_name, lines, self.p.gzip)

        own_rows, carry_rows = self.customer_rows(persons)
        customers_name = customer_file_name(self.index)
        with open(self.p.out / CUSTOMERS_DIR / customers_name, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(self.p.customer_columns)
            writer.writerows(own_rows)
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(carry_rows)

        self.counts.bump("event_lines", len(lines) + len(carry_lines))
        self.counts.bump("customer_rows", len(own_rows) + len(carry_rows))
        self.counts.carry_lines[self.index] = len(carry_lines)
        self.counts.carry_rows[self.index] = len(carry_rows)
        self.counts.carry_replays.setdefault(self.index, 0)
        return ChunkOutput(
            index=self.index, events_file=f"{EVENTS_DIR}/{events_name}", customers_file=f"{CUSTOMERS_DIR}/{customers_name}",
            event_lines=len(lines), customer_rows=len(own_rows),
            events_carry=encode_lines(carry_lines, self.p.gzip), customers_carry=buffer.getvalue().encode("utf-8"),
            counts=self.counts, truth_people=sorted(self.truth) if self.truth is not None else [],
            truth_groups=self.truth_groups,
        )

    def arrange_lines(self, persons: list[Person]) -> tuple[list[str], list[str]]:
        """(this file's lines, lines carried to the next file): timestamp order, then the planted disorder."""
        rng, r = self.rng, self.r
        records = sorted(self.records)
        self.records = []
        valid = len(records)
        self.counts.bump("valid_messages", valid)

        # Late events leave this file for the end of the next one; replays are chosen among the rest.
        # Late ones come from the oldest 90%, so each is older than the newest line of the file it lands in.
        late_idx = set(rng.sample(range(valid * 9 // 10), min(valid * 9 // 10, round(r.late * valid))))
        stay = [rec for i, rec in enumerate(records) if i not in late_idx]
        late = [records[i] for i in sorted(late_idx)]
        replay_idx = sorted(rng.sample(range(len(stay)), round(r.replay * len(stay)))) if stay else []
        inserted_after: dict[int, list[str]] = {}
        carry = list(late)
        for i in replay_idx:
            if rng.random() < r.replay_next_file:
                carry.append(stay[i])
                self.counts.bump("replayed_next_file")
                self.counts.carry_replays[self.index] = self.counts.carry_replays.get(self.index, 0) + 1
            else:
                inserted_after.setdefault(rng.randrange(i, len(stay)), []).append(stay[i][2])
        self.counts.bump("replayed_lines", len(replay_idx))
        self.counts.bump("late_lines", len(late))

        bad_at: dict[int, list[str]] = {}
        for line in self.malformed_lines(persons, valid):
            bad_at.setdefault(rng.randrange(len(stay) + 1), []).append(line)
        lines: list[str] = []
        for i, rec in enumerate(stay):
            lines.extend(bad_at.get(i, ()))
            lines.append(rec[2])
            lines.extend(inserted_after.get(i, ()))
        lines.extend(bad_at.get(len(stay), ()))
        carry.sort()
        return lines, [rec[2] for rec in carry]


def write_text(path: Path, lines: list[str], compressed: bool) -> None:
    with open(path, "wb") as raw:
        if compressed:
            # filename="" and mtime=0: the gzip header carries nothing that varies between runs.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as fh:
                for start in range(0, len(lines), 10_000):
                    fh.write(("\n".join(lines[start:start + 10_000]) + "\n").encode("utf-8"))
        else:
            for start in range(0, len(lines), 10_000):
                raw.write(("\n".join(lines[start:start + 10_000]) + "\n").encode("utf-8"))


def encode_lines(lines: list[str], compressed: bool) -> bytes:
    """Bytes to append to a file; a separate gzip member when compressed (gzip readers concatenate members)."""
    if not lines:
        return b""
    data = ("\n".join(lines) + "\n").encode("utf-8")
    return gzip.compress(data, compresslevel=6, mtime=0) if compressed else data


# ----------------------------------------------------------------------------------------------
# Small pure helpers (integer arithmetic only, so results do not depend on the platform's libm)
# ----------------------------------------------------------------------------------------------

_DATE_CACHE: dict[int, str] = {}


def epoch_day_to_date(day: int) -> str:
    text = _DATE_CACHE.get(day)
    if text is None:
        text = _DATE_CACHE[day] = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()
    return text


def format_timestamp(ts_ms: int, offset_minutes: int) -> str:
    """ISO-8601 of the instant `ts_ms` (epoch milliseconds, UTC) written in the given UTC offset."""
    local = ts_ms + offset_minutes * 60_000
    day, ms = divmod(local, DAY_MS)
    seconds, millis = divmod(ms, 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if offset_minutes == 0:
        zone = "Z"
    else:
        sign = "+" if offset_minutes > 0 else "-"
        oh, om = divmod(abs(offset_minutes), 60)
        zone = f"{sign}{oh:02d}:{om:02d}"
    return f"{epoch_day_to_date(day)}T{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}{zone}"


def count_about(rng: random.Random, mean: float) -> int:
    """A count with the given mean (uniform on 0..2*mean), using only random() and multiplication."""
    return int(rng.random() * (2 * mean + 1))


def uuid_from(bits: int) -> str:
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


def email_for(person: Person, n: int) -> str:
    # The person's index ends the local part and names hold no digits, so emails never collide.
    stem = (f"{person.first}.{person.last}", f"{person.first[0]}{person.last}", f"{person.last}.{person.first}")[n]
    return f"{stem}{person.idx}@{EMAIL_DOMAINS[(person.idx + n) % len(EMAIL_DOMAINS)]}"


def phone_for(idx: int, n: int) -> str:
    """10 national digits, unique per (person, n) for up to 3.3M persons: a bijection on 0..10^7-1."""
    subscriber = ((idx * 3 + n) * 7919 + 1_234_567) % 10_000_000
    return f"{AREA_CODES[(idx + n) % len(AREA_CODES)]}{subscriber:07d}"


def street_address(rng: random.Random) -> str:
    return f"{rng.randint(1, 9999)} {rng.choice(STREETS)}, {rng.choice(CITIES)}"


def product_catalog(seed: int) -> list[tuple[str, str, str, str, str, int, int]]:
    """(product_id, brand, supplier, category, classification, case cents, bottle cents), from the seed only."""
    rng = random.Random(chunk_seed(seed, -2))
    products = []
    for n in range(1, 301):
        brand = rng.choice(BRANDS)
        bottle = rng.randrange(300, 6000)
        products.append((f"SKU{n:05d}", brand, SUPPLIERS[BRANDS.index(brand) % len(SUPPLIERS)],
                         rng.choice(CATEGORIES), rng.choice(CLASSIFICATIONS), bottle * 12 - rng.randrange(0, 1200), bottle))
    return products


ACTIVITY_LEVELS = (0.15, 0.4, 0.8, 1.2, 2.0, 3.5)
ACTIVITY_WEIGHTS = (15, 20, 25, 20, 13, 7)
FIRST_NAMES = ("ann", "ben", "carla", "dev", "elena", "farid", "grace", "hiro", "ines", "jamal", "kate", "li",
               "maria", "noah", "olga", "pedro", "quinn", "rosa", "sam", "tara", "umar", "vera", "wei", "xenia",
               "yusuf", "zoe", "aisha", "bruno", "chloe", "diego")
LAST_NAMES = ("smith", "garcia", "chen", "patel", "kim", "nguyen", "johnson", "lopez", "muller", "rossi",
              "okafor", "silva", "haddad", "novak", "tanaka", "brown", "singh", "cohen", "ivanova", "dubois",
              "walker", "murphy", "yilmaz", "khan", "santos")
EMAIL_DOMAINS = ("example.com", "mail.example", "inbox.example", "corp.example")
AREA_CODES = ("212", "213", "305", "312", "404", "415", "512", "602", "617", "702", "713", "206", "303", "503")
STREETS = ("Main St", "Oak Ave", "Pine Rd", "Maple Dr", "Cedar Ln", "Elm St", "Harbor Blvd", "Sunset Ave",
           "Lake Shore Dr", "Mill Rd")
CITIES = ("Springfield", "Riverside", "Fairview", "Franklin", "Greenville", "Madison", "Clinton", "Georgetown")
SITES = (("101", "CA", "Los Angeles", "900", "West Division"), ("102", "CA", "San Diego", "921", "West Division"),
         ("201", "TX", "Harris", "770", "South Division"), ("202", "TX", "Dallas", "752", "South Division"),
         ("301", "NY", "Kings", "112", "East Division"), ("302", "NY", "New York", "100", "East Division"),
         ("401", "FL", "Miami-Dade", "331", "South Division"), ("501", "IL", "Cook", "606", "Central Division"),
         ("601", "WA", "King", "981", "West Division"), ("701", "GA", "Fulton", "303", "South Division"),
         ("801", "AZ", "Maricopa", "850", "West Division"), ("901", "CO", "Denver", "802", "Central Division"))
ON_PREM_CHANNELS = (("BAR", "Bar / Tavern"), ("RST", "Restaurant"), ("HTL", "Hotel"))
OFF_PREM_CHANNELS = (("GRO", "Grocery"), ("CNV", "Convenience"), ("LIQ", "Liquor Store"))
BRANDS = ("Northwind", "Blue Ridge", "Copper Kettle", "Old Harbor", "Sierra Vista", "Red Barn", "Golden Gate",
          "Iron Horse", "Silver Lake", "Stone Mill", "Wild Fern", "Twin Peaks")
SUPPLIERS = ("Atlas Beverage Co", "Summit Distillers", "Valley Vineyards", "Harbor Brewing Group")
CATEGORIES = ("Beer", "Wine", "Spirits", "Cider", "Non-Alcoholic")
CLASSIFICATIONS = ("Core", "Premium", "Craft", "Seasonal", "Import")
REJECT_CODES = ("R01-CREDIT", "R02-OUT-OF-STOCK", "R03-LICENSE", "R04-ADDRESS", "R05-CUSTOMER")
DELIVERY_STATUSES = ("not shipped", "returned", "cancelled")
PAGES = ("Home", "Catalog", "Product", "Cart", "Checkout", "Account", "Promotions", "Order History")
PLANS = ("basic", "plus", "premium")
ACCOUNT_SUFFIXES = ("Holdings", "Hospitality", "Markets", "Group")
GROUP_EVENTS = ("Invoice Paid", "Statement Viewed", "Plan Changed", "Delivery Scheduled")
