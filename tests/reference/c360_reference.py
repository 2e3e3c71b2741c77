"""A plain-Python reference of the c360 contract, written from the contract alone.

Sources: `../shared/spec/interface.md` (§3 input, §4 tables, §5 definitions), the Segment spec
(identify / track / group / alias / page / screen), `docs/rfm.md`, `docs/activities.md`,
`docs/levels.md`, `lens/README.md`, `lens/customer_360.yml`, `lens/queries/*.yml` and the
`identity:` section of `conf/local.yml` (passed in as an `IdentityRules`). It never imports the
repo's `jobs` or `lens` packages and uses nothing but the standard library and `phonenumbers`, so a
bug shared by the pipeline and the data generator does not hide here.

Everything is small-data, in-memory, slow and obvious. A customer is identified by the frozenset
of its `(identifier_type, identifier_value)` pairs (not by an id), so results can be compared with
the pipeline's by identifiers.

Public API (see each docstring):

- `read_input(dir, default_region="US") -> IngestResult` — validation, dedup, counts (§3)
- `normalize_email`, `normalize_phone`, `parse_timestamp`, `snake_case`
- `IdentityRules` (`IdentityRules.from_config(conf["identity"])`)
- `build_observations(ingest, run_date) -> list[Observation]`
- `resolve_identities(observations, rules) -> IdentityResult` — blocked, hub cap, components,
  constrained Kruskal; `stitch(ingest, run_date, rules)` = both steps
- `customer_index(partition) -> {identifier: customer}`
- `attribute(event, customer_of)`, `group_members(events, customer_of)`,
  `activity_stream(events, customer_of, members) -> list[Activity]`
- `order_placed_lines`, `rfm_table`, `quintile_scores`, `rfm_segment`
- lens questions: `lens_rfm`, `lens_order_outcomes`, `lens_days_to_invoice`,
  `lens_rejections_above_average`
- `customer_states(customer_rows, customer_of)` — the `state` values a customer's master rows carry
- `Reference.compute(dir, run_date, rules, partition=None)` — the whole chain in one object
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import itertools
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import phonenumbers

USER_ID = "user_id"
ANONYMOUS_ID = "anonymous_id"
EMAIL = "email"
PHONE = "phone"
IDENTIFIER_TYPES = (USER_ID, EMAIL, PHONE, ANONYMOUS_ID)  # highest priority first

EVENT_TYPES = frozenset({"identify", "track", "group", "alias", "page", "screen"})
ACTIVITY_TYPES = frozenset({"track", "page", "screen"})

CUSTOMER_COLUMNS = (
    "customer_id", "customer_name", "email", "phone_number", "address", "customer_no", "site",
    "state", "county_name", "zip", "premise_code", "status", "license_classification",
    "license_type", "channel_code", "channel_name", "selling_division_name", "consent",
)

Identifier = tuple  # (identifier_type, identifier_value)
Customer = frozenset  # frozenset of Identifier


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------

def _text(value: Any) -> str | None:
    """A scalar as trimmed text; None, empty text, booleans, objects and arrays are absent."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, (int, Decimal, float)):
        return str(value)
    return None


def _feature_text(value: Any) -> str | None:
    """A property as the activity stream's text feature (untrimmed; the lens model trims)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def _trim(value: str | None) -> str | None:
    return None if value is None else value.strip()


def _number(value: Any) -> Decimal | None:
    """order_value as an exact number; text that is not a number is absent."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def normalize_email(value: Any) -> str | None:
    """Trimmed and lower-cased; empty = absent."""
    text = _text(value) if isinstance(value, str) else None
    return text.lower() if text else None


def normalize_phone(value: Any, region: str = "US") -> str | None:
    """E.164 via phonenumbers (numbers without a country code read in `region`).

    Unparseable or not a possible number: None (not an identifier at all).
    """
    text = _text(value)
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)",
    re.IGNORECASE,
)


def parse_timestamp(value: Any) -> dt.datetime | None:
    """ISO-8601 with `Z` or an offset -> aware UTC datetime (microseconds); else None."""
    if not isinstance(value, str):
        return None
    match = _TIMESTAMP.fullmatch(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        if zone.upper() == "Z":
            tz = dt.timezone.utc
        else:
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            tz = dt.timezone(sign * offset)
        stamp = dt.datetime(int(year), int(month), int(day), int(hour), int(minute),
                            int(second or 0), micro, tzinfo=tz)
    except ValueError:
        return None
    return stamp.astimezone(dt.timezone.utc)


def snake_case(name: str) -> str:
    """Event name -> activity name: `Order Placed` -> order_placed, `checkoutStarted` -> checkout_started."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", spaced)
    words = re.sub(r"[^A-Za-z0-9]+", "_", spaced).strip("_").lower()
    return words or "unnamed_event"


def order_number(order_id: str | None) -> str | None:
    """split_part(order_id, '-', 1)."""
    return None if order_id is None else order_id.split("-", 1)[0]


def midnight_utc(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


# --------------------------------------------------------------------------------------------
# Input (interface §3)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    message_id: str
    type: str
    ts: dt.datetime
    user_id: str | None
    anonymous_id: str | None
    previous_id: str | None
    group_id: str | None
    event: str | None
    properties: Mapping[str, Any]
    emails: tuple[str, ...]  # normalized, identity evidence of the sender
    phones: tuple[str, ...]  # E.164, identity evidence of the sender
    source: str = ""
    line_no: int = 0

    def identifiers(self) -> set[Identifier]:
        """The sender's own identifiers (alias previousId not included: see build_observations)."""
        ids: set[Identifier] = set()
        if self.user_id:
            ids.add((USER_ID, self.user_id))
        if self.anonymous_id:
            ids.add((ANONYMOUS_ID, self.anonymous_id))
        ids.update((EMAIL, e) for e in self.emails)
        ids.update((PHONE, p) for p in self.phones)
        return ids


@dataclass(frozen=True)
class CustomerRow:
    customer_id: str
    email: str | None
    phone: str | None
    columns: Mapping[str, str | None]
    source: str = ""
    line_no: int = 0


@dataclass
class IngestResult:
    events: list[Event]  # accepted, first copy of each messageId, in read order
    customers: list[CustomerRow]
    lines_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantine_reasons: Counter = field(default_factory=Counter)
    customer_rows_read: int = 0
    customer_rows_quarantined: int = 0


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def parse_event_line(line: str, default_region: str = "US") -> tuple[Event | None, str | None]:
    """One raw line -> (event, None) or (None, quarantine reason)."""
    try:
        obj = json.loads(line, parse_float=Decimal)
    except ValueError:
        return None, "invalid_json"
    if not isinstance(obj, dict):
        return None, "not_an_object"
    message_id = _text(obj.get("messageId"))
    if message_id is None:
        return None, "missing_message_id"
    kind = _text(obj.get("type"))
    if kind is None:
        return None, "missing_type"
    if kind not in EVENT_TYPES:
        return None, "unknown_type"
    if _text(obj.get("timestamp")) is None:
        return None, "missing_timestamp"
    ts = parse_timestamp(obj.get("timestamp"))
    if ts is None:
        return None, "bad_timestamp"
    context = _dict(obj.get("context"))
    user_id = _text(obj.get("userId"))
    anonymous_id = _text(obj.get("anonymousId"))
    previous_id = _text(obj.get("previousId"))
    group_id = _text(obj.get("groupId")) or _text(context.get("groupId"))
    event_name = _text(obj.get("event"))
    if kind == "alias":
        if previous_id is None:
            return None, "missing_previous_id"
        if user_id is None:
            return None, "missing_identity"
    elif user_id is None and anonymous_id is None and not (kind == "track" and group_id):
        return None, "missing_identity"
    if kind == "track" and event_name is None:
        return None, "missing_event"
    if kind == "group" and group_id is None:
        return None, "missing_group_id"

    traits = _dict(obj.get("traits"))
    context_traits = _dict(context.get("traits"))
    emails, phones = [], []
    if kind == "identify":  # a group call's traits describe the group, not the caller
        emails.append(normalize_email(traits.get("email")))
        phones.append(normalize_phone(traits.get("phone"), default_region))
    emails.append(normalize_email(context_traits.get("email")))
    phones.append(normalize_phone(context_traits.get("phone"), default_region))
    return Event(
        message_id=message_id, type=kind, ts=ts, user_id=user_id, anonymous_id=anonymous_id,
        previous_id=previous_id if kind == "alias" else None, group_id=group_id,
        event=event_name, properties=_dict(obj.get("properties")),
        emails=tuple(sorted({e for e in emails if e})), phones=tuple(sorted({p for p in phones if p})),
    ), None


def _event_files(root: Path) -> list[Path]:
    files = [p for p in root.rglob("*") if p.is_file() and p.name.endswith((".jsonl", ".jsonl.gz"))]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _lines(path: Path) -> Iterable[str]:
    raw = gzip.open(path, "rb").read() if path.name.endswith(".gz") else path.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if line.strip():  # blank lines (e.g. the final newline) are not lines of input
            yield line


def read_input(input_dir: str | Path, default_region: str = "US") -> IngestResult:
    """DIR/events/**/*.jsonl[.gz] and DIR/customers/**/*.csv -> accepted events and customer rows.

    Files are read in path order; the first copy of a messageId is kept, later ones are duplicates.
    lines_read = accepted + duplicates + quarantined.
    """
    root = Path(input_dir)
    result = IngestResult(events=[], customers=[])
    seen: set[str] = set()
    events_root = root / "events"
    for path in _event_files(events_root) if events_root.is_dir() else []:
        source = path.relative_to(root).as_posix()
        for line_no, line in enumerate(_lines(path), 1):
            result.lines_read += 1
            event, reason = parse_event_line(line, default_region)
            if event is None:
                result.quarantined += 1
                result.quarantine_reasons[reason] += 1
                continue
            if event.message_id in seen:
                result.duplicates += 1
                continue
            seen.add(event.message_id)
            result.accepted += 1
            result.events.append(dataclasses.replace(event, source=source, line_no=line_no))

    customers_root = root / "customers"
    csv_files = sorted((p for p in customers_root.rglob("*.csv") if p.is_file()),
                       key=lambda p: p.relative_to(root).as_posix()) if customers_root.is_dir() else []
    for path in csv_files:
        source = path.relative_to(root).as_posix()
        with path.open(newline="", encoding="utf-8") as handle:
            for line_no, row in enumerate(csv.DictReader(handle), 2):
                result.customer_rows_read += 1
                columns = {name: _text(row.get(name)) for name in CUSTOMER_COLUMNS}
                if columns["customer_id"] is None:
                    result.customer_rows_quarantined += 1
                    continue
                result.customers.append(CustomerRow(
                    customer_id=columns["customer_id"],
                    email=normalize_email(row.get("email")),
                    phone=normalize_phone(row.get("phone_number"), default_region),
                    columns=columns, source=source, line_no=line_no,
                ))
    return result


# --------------------------------------------------------------------------------------------
# Identity (interface §3, conf identity:)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IdentityRules:
    blocked_values: frozenset = frozenset()
    blocked_patterns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_linked_user_ids: int = 20
    person_limit: int = 1  # identity.limits.user_id: persons (sets of aliased user ids) per customer
    priority: tuple[str, ...] = IDENTIFIER_TYPES
    junk_phone_numbers: bool = True  # national number all one digit, or 1234567890, is blocked
    default_region: str = "US"  # phones without a country code

    @classmethod
    def from_config(cls, identity: Mapping[str, Any]) -> "IdentityRules":
        """From the `identity:` mapping of conf/local.yml (already parsed YAML)."""
        return cls(
            blocked_values=frozenset(str(v).lower() for v in identity.get("blocked_values") or ()),
            blocked_patterns={k: tuple(v or ()) for k, v in (identity.get("blocked_patterns") or {}).items()},
            max_linked_user_ids=int(identity.get("max_linked_user_ids", 20)),
            person_limit=int((identity.get("limits") or {}).get(USER_ID, 1)),
            priority=tuple(identity.get("priority") or IDENTIFIER_TYPES),
            default_region=str(identity.get("default_phone_region") or "US"),
        )

    def rank(self, kind: str) -> int:
        return self.priority.index(kind) + 1

    def is_blocked(self, identifier: Identifier) -> bool:
        kind, value = identifier
        if value.lower() in self.blocked_values:
            return True
        if any(re.search(p, value) for p in self.blocked_patterns.get(kind, ())):
            return True
        return kind == PHONE and self.junk_phone_numbers and is_junk_phone(value)


def is_junk_phone(e164: str) -> bool:
    """National number (E.164 without the country calling code) all one digit, or 1234567890."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return False
    national = e164[1 + len(str(number.country_code)):]
    return len(set(national)) == 1 or national == "1234567890"


@dataclass(frozen=True)
class Observation:
    identifiers: frozenset
    ts: dt.datetime
    source: str = ""


def build_observations(ingest: IngestResult, run_date: dt.date) -> list[Observation]:
    """One observation per accepted message / customer row, alias previousIds resolved.

    alias(previousId=P, userId=U): P is an anonymous_id if P was seen as an anonymousId anywhere,
    a user_id if seen as a userId / customer_id anywhere (both if both), else an anonymous_id.
    Customer rows are observed at midnight UTC of the run date.
    """
    known_users = {e.user_id for e in ingest.events if e.user_id}
    known_users |= {c.customer_id for c in ingest.customers}
    known_anonymous = {e.anonymous_id for e in ingest.events if e.anonymous_id}
    observations = []
    for event in ingest.events:
        ids = event.identifiers()
        if event.type == "alias" and event.previous_id:
            previous = event.previous_id
            if previous in known_anonymous or previous not in known_users:
                ids.add((ANONYMOUS_ID, previous))
            if previous in known_users:
                ids.add((USER_ID, previous))
        if ids:
            observations.append(Observation(frozenset(ids), event.ts, event.message_id))
    row_time = midnight_utc(run_date)
    for row in ingest.customers:
        ids = {(USER_ID, row.customer_id)}
        if row.email:
            ids.add((EMAIL, row.email))
        if row.phone:
            ids.add((PHONE, row.phone))
        observations.append(Observation(frozenset(ids), row_time, f"{row.source}:{row.line_no}"))
    return observations


class _UnionFind:
    def __init__(self, items: Iterable = ()):
        self.parent = {x: x for x in items}

    def find(self, x):
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
        return ra

    def groups(self) -> list[frozenset]:
        out = defaultdict(set)
        for x in self.parent:
            out[self.find(x)].add(x)
        return [frozenset(g) for g in out.values()]


def _label(identifier: Identifier) -> str:
    return f"{identifier[0]}:{identifier[1]}"


@dataclass
class IdentityResult:
    partition: set  # set of frozensets of identifiers: the customers
    customer_of: dict  # identifier -> its customer (frozenset)
    removed: dict  # identifier -> "blocked" | "hub"
    edges: dict  # (a, b) with a < b -> first_seen
    person_of: dict  # user_id identifier -> person (frozenset of user_id identifiers)
    reclustered_components: int = 0
    rejected_edges: list = field(default_factory=list)


def edge_order_key(a: Identifier, b: Identifier, first_seen: dt.datetime,
                   rules: IdentityRules) -> tuple:
    """(rank of weaker end, rank of stronger end, first_seen, weaker "type:value", stronger "type:value")."""
    ra, rb = rules.rank(a[0]), rules.rank(b[0])
    if ra > rb or (ra == rb and _label(a) > _label(b)):
        weak, strong = a, b
    else:
        weak, strong = b, a
    return (rules.rank(weak[0]), rules.rank(strong[0]), first_seen, _label(weak), _label(strong))


def resolve_identities(observations: Iterable[Observation], rules: IdentityRules) -> IdentityResult:
    nodes: set[Identifier] = set()
    edges: dict[tuple, dt.datetime] = {}
    for obs in observations:
        nodes |= obs.identifiers
        for a, b in itertools.combinations(sorted(obs.identifiers), 2):
            if (a, b) not in edges or obs.ts < edges[(a, b)]:
                edges[(a, b)] = obs.ts

    removed = {n: "blocked" for n in nodes if rules.is_blocked(n)}
    live = {e: t for e, t in edges.items() if e[0] not in removed and e[1] not in removed}

    # persons: user ids joined by user_id-user_id (alias) edges
    persons = _UnionFind(n for n in nodes if n[0] == USER_ID and n not in removed)
    for a, b in live:
        if a[0] == USER_ID and b[0] == USER_ID:
            persons.union(a, b)
    person_of = {}
    for group in persons.groups():
        for n in group:
            person_of[n] = group

    # hub cap: a non-user_id identifier linked to too many persons
    linked = defaultdict(set)
    for a, b in live:
        if a[0] == USER_ID and b[0] != USER_ID:
            linked[b].add(person_of[a])
        elif b[0] == USER_ID and a[0] != USER_ID:
            linked[a].add(person_of[b])
    for n, ps in linked.items():
        if len(ps) > rules.max_linked_user_ids:
            removed[n] = "hub"
    live = {e: t for e, t in live.items() if e[0] not in removed and e[1] not in removed}
    remaining = {n for n in nodes if n not in removed}

    components = _UnionFind(remaining)
    for a, b in live:
        components.union(a, b)
    comp_edges = defaultdict(list)
    for (a, b), t in live.items():
        comp_edges[components.find(a)].append((a, b, t))

    partition: set[frozenset] = set()
    reclustered = 0
    rejected = []
    for comp in components.groups():
        comp_persons = {person_of[n] for n in comp if n[0] == USER_ID}
        if len(comp_persons) <= rules.person_limit:
            partition.add(comp)
            continue
        reclustered += 1
        clusters = _UnionFind(comp)
        holds = {n: ({person_of[n]} if n[0] == USER_ID else set()) for n in comp}
        edges_here = comp_edges[components.find(next(iter(comp)))]
        alias_edges = [(a, b) for a, b, _ in edges_here if a[0] == USER_ID and b[0] == USER_ID]
        other_edges = sorted(((a, b, t) for a, b, t in edges_here if not (a[0] == USER_ID and b[0] == USER_ID)),
                             key=lambda e: edge_order_key(e[0], e[1], e[2], rules))

        def join(a, b):
            ra, rb = clusters.find(a), clusters.find(b)
            root = clusters.union(ra, rb)
            other = rb if root == ra else ra
            holds[root] = holds[root] | holds.pop(other, set())

        for a, b in alias_edges:
            if clusters.find(a) != clusters.find(b):
                join(a, b)
        for a, b, t in other_edges:
            ra, rb = clusters.find(a), clusters.find(b)
            if ra == rb:
                continue
            if len(holds[ra] | holds[rb]) > rules.person_limit:
                rejected.append((a, b, t))
                continue
            join(a, b)
        partition.update(clusters.groups())

    return IdentityResult(partition=partition, customer_of=customer_index(partition), removed=removed,
                          edges=edges, person_of=person_of, reclustered_components=reclustered,
                          rejected_edges=rejected)


def stitch(ingest: IngestResult, run_date: dt.date, rules: IdentityRules) -> IdentityResult:
    return resolve_identities(build_observations(ingest, run_date), rules)


def customer_index(partition: Iterable[frozenset]) -> dict:
    """identifier -> the customer (frozenset) that holds it."""
    return {n: customer for customer in partition for n in customer}


# --------------------------------------------------------------------------------------------
# Attribution, groups, activity stream (docs/activities.md)
# --------------------------------------------------------------------------------------------

def attribute(event: Event, customer_of: Mapping) -> frozenset | None:
    """The customer of the event's userId if stitched, else of its anonymousId, else None."""
    if event.user_id and (USER_ID, event.user_id) in customer_of:
        return customer_of[(USER_ID, event.user_id)]
    if event.anonymous_id and (ANONYMOUS_ID, event.anonymous_id) in customer_of:
        return customer_of[(ANONYMOUS_ID, event.anonymous_id)]
    return None


def group_members(events: Iterable[Event], customer_of: Mapping) -> dict[str, frozenset]:
    """group_id -> its member customers: callers of `group`, senders of an `identify` with a groupId."""
    members = defaultdict(set)
    for event in events:
        if event.group_id and event.type in ("group", "identify"):
            customer = attribute(event, customer_of)
            if customer is not None:
                members[event.group_id].add(customer)
    return {g: frozenset(m) for g, m in members.items()}


@dataclass(frozen=True)
class Activity:
    message_id: str
    entity: frozenset | None
    activity: str
    ts: dt.datetime
    properties: Mapping[str, Any]
    group_id: str | None

    def feature(self, prop: str) -> str | None:
        return _feature_text(self.properties.get(prop))

    @property
    def order_id(self) -> str | None:  # trim(feature1)
        return _trim(self.feature("order_id"))

    @property
    def order_no(self) -> str | None:  # entity-scoped order number; None when either is null
        return order_number(self.order_id)

    @property
    def product_category(self) -> str | None:  # trim(feature5) of placed / invoiced lines
        return _trim(self.feature("product_category"))

    @property
    def order_value(self) -> Decimal | None:
        return _number(self.properties.get("order_value"))


def activity_name(event: Event) -> str | None:
    if event.type == "track":
        return snake_case(event.event or "")
    if event.type == "page":
        return "viewed_page"
    if event.type == "screen":
        return "viewed_screen"
    return None


def activity_stream(events: Iterable[Event], customer_of: Mapping,
                    members: Mapping[str, frozenset]) -> list[Activity]:
    """One row per (activity, entity): a group event (track/page/screen with a groupId) reaches every
    member of the group and the sender when not a member; anything that reaches nobody is one row
    with entity None (unresolved)."""
    rows = []
    for event in events:
        name = activity_name(event)
        if name is None:
            continue
        sender = attribute(event, customer_of)
        if event.group_id:
            entities = set(members.get(event.group_id, ()))
            if sender is not None:
                entities.add(sender)
            if not entities:
                entities = {None}
        else:
            entities = {sender}
        for entity in entities:
            rows.append(Activity(event.message_id, entity, name, event.ts, event.properties, event.group_id))
    return rows


def as_of(rows: Iterable[Activity], run_date: dt.date) -> list[Activity]:
    """Activities dated (UTC) on or before the run date."""
    return [r for r in rows if r.ts.date() <= run_date]


# --------------------------------------------------------------------------------------------
# Group traits (docs/traits.md "Group traits", docs/levels.md): a household's measures
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GroupTraits:
    last_order: dt.datetime | None     # household_last_order_date
    orders: int                        # household_orders: distinct orders (naming customer, order number)
    spend: Decimal                     # household_lifetime_value: order values, each event once
    members_ordered_30_days: int       # members_ordered_last_30_days


def group_traits(rows: Iterable[Activity], members: Mapping[str, frozenset], run_date: dt.date,
                 sort_key, groups: Iterable[str] | None = None) -> dict:
    """group -> GroupTraits, as of the run date, for every group of `groups` (gold/groups: the groups
    a group call or an identify named), or without them every group with members or events. A
    group's activities: its own events (group_id = the group), whoever they reached, even nobody
    yet, and its members' events that carry no group_id; each event once (by message_id), named by
    the customer first by `sort_key` among those the event reached for the group, or by the group
    itself when it reached nobody. A member "ordered" in the 30 days ending on D when an
    order_placed of theirs that is the group's falls in them."""
    events = defaultdict(list)  # (group, message_id) -> the rows of the event that are the group's
    for r in as_of(rows, run_date):
        if r.entity is None and not r.group_id:
            continue
        groups_of_row = [r.group_id] if r.group_id else [g for g, m in members.items() if r.entity in m]
        for g in groups_of_row:
            events[(g, r.message_id)].append(r)
    first_day = run_date - dt.timedelta(days=29)
    measured = {*members, *(g for g, _ in events)} if groups is None else set(groups)
    events = {key: event_rows for key, event_rows in events.items() if key[0] in measured}
    out = {g: GroupTraits(None, 0, Decimal(0), 0) for g in measured}
    orders, active = defaultdict(set), defaultdict(set)
    for (g, _), event_rows in events.items():
        for r in event_rows:
            if r.activity == "order_placed" and first_day <= r.ts.date() and r.entity in members.get(g, ()):
                active[g].add(r.entity)
        reached = [r for r in event_rows if r.entity is not None]
        named = min(reached, key=lambda r: sort_key(r.entity)) if reached else event_rows[0]
        if named.activity != "order_placed":
            continue
        now = out[g]
        if named.order_no is not None:
            orders[g].add((sort_key(named.entity) if reached else ("the group", g), named.order_no))
        last = named.ts if now.last_order is None else max(now.last_order, named.ts)
        out[g] = GroupTraits(last, 0, now.spend + (named.order_value or Decimal(0)), 0)
    return {g: GroupTraits(t.last_order, len(orders[g]), t.spend, len(active[g])) for g, t in out.items()}


# --------------------------------------------------------------------------------------------
# Leaving a group (docs/levels.md "Leaving a group"): membership stints
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MembershipCall:
    group_id: str
    customer: Any
    ts: dt.datetime
    message_id: str
    source: str            # group | identify
    leaves: bool           # a group call with the leave trait set to true


def membership_stints(calls: Iterable[MembershipCall], run_date: dt.date,
                      membership_days: int | None) -> set[tuple]:
    """{(group, customer, joined_on, joined_at, left_on, left_by, source)}: walk each customer's calls for a
    group in order (time, then message id). A joining call opens a stint when none is open; a leave
    call closes the open one on its date; a stint whose latest joining call, on day d, is not followed
    by another joining call within N days closes on d + N + 1, a day on which that comes first
    (ties included) ending it as not_reconfirmed, checked before each call and as of the run date.
    Every call given has arrived: one stamped after the run date is taken on the run date."""
    by_member = defaultdict(list)
    for call in calls:
        by_member[(call.group_id, call.customer)].append(call)
    stints = set()
    for (group, customer), member_calls in by_member.items():
        stint = None  # [joined_on, last joining day, source, the first call's time]
        for call in sorted(member_calls, key=lambda c: (c.ts, c.message_id)):
            day = min(call.ts.date(), run_date)
            if stint and not call.leaves and call.ts == stint[3] and call.source == "group":
                stint[2] = "group"  # a group call wins a tie with an identify
            if stint and membership_days is not None and (day - stint[1]).days > membership_days:
                stints.add((group, customer, stint[0], stint[3], stint[1] + dt.timedelta(days=membership_days + 1),
                            "not_reconfirmed", stint[2]))
                stint = None
            if call.leaves:
                if stint:
                    stints.add((group, customer, stint[0], stint[3], day, "leave_call", stint[2]))
                    stint = None
            elif stint:
                stint[1] = day
            else:
                stint = [day, day, call.source, call.ts]
        if stint:
            lapse = None if membership_days is None else stint[1] + dt.timedelta(days=membership_days + 1)
            if lapse is not None and lapse <= run_date:
                stints.add((group, customer, stint[0], stint[3], lapse, "not_reconfirmed", stint[2]))
            else:
                stints.add((group, customer, stint[0], stint[3], None, None, stint[2]))
    return stints


# --------------------------------------------------------------------------------------------
# Sequences (docs/traits.md "Sequences"): "added to cart and no purchase within 4 hours"
# --------------------------------------------------------------------------------------------

def not_followed_by(rows: Iterable[Activity], activity: str, followed_by: str, within: dt.timedelta,
                    run_date: dt.date, first_day: dt.date | None = None) -> dict:
    """customer -> how many of its `activity` events (by message) dated first_day..run_date had no
    `followed_by` of the same customer at a time t with event <= t <= event + within, counting only
    events whose `within` ended before the day after the run date began (what follows later is not
    known yet). Customers with none are left out."""
    rows = [r for r in as_of(rows, run_date) if r.entity is not None]
    end = midnight_utc(run_date + dt.timedelta(days=1))
    counted = defaultdict(set)
    for a in rows:
        if a.activity != activity or (first_day is not None and a.ts.date() < first_day) or a.ts + within >= end:
            continue
        if not any(b.entity == a.entity and b.activity == followed_by and a.ts <= b.ts <= a.ts + within
                   for b in rows):
            counted[a.entity].add(a.message_id)
    return {entity: len(messages) for entity, messages in counted.items()}


# --------------------------------------------------------------------------------------------
# Orders and RFM (interface §5, docs/rfm.md)
# --------------------------------------------------------------------------------------------

def order_placed_lines(rows: Iterable[Activity], run_date: dt.date | None = None) -> dict:
    """customer -> (number of order_placed rows, frozenset of their order_id values)."""
    count = Counter()
    ids = defaultdict(set)
    for r in rows:
        if r.activity == "order_placed" and r.entity is not None and (run_date is None or r.ts.date() <= run_date):
            count[r.entity] += 1
            ids[r.entity].add(r.order_id)
    return {c: (n, frozenset(ids[c])) for c, n in count.items()}


SEGMENT_GRID = {
    5: {1: "New Customers", 2: "Potential Loyalists", 3: "Potential Loyalists", 4: "Champions", 5: "Champions"},
    4: {1: "Promising", 2: "Potential Loyalists", 3: "Potential Loyalists", 4: "Loyal Customers", 5: "Loyal Customers"},
    3: {1: "About to Sleep", 2: "About to Sleep", 3: "Need Attention", 4: "Loyal Customers", 5: "Loyal Customers"},
    2: {1: "Hibernating", 2: "Hibernating", 3: "At Risk", 4: "At Risk", 5: "Can't Lose Them"},
    1: {1: "Lost", 2: "Lost", 3: "At Risk", 4: "At Risk", 5: "Can't Lose Them"},
}


def rfm_segment(r_score: int, f_score: int, m_score: int) -> str:
    return SEGMENT_GRID[r_score][(f_score + m_score) // 2]


def quintile_scores(values: Mapping, higher_is_better: bool) -> dict:
    """1 + (5 x customers with a strictly worse value) div (customers - 1), capped at 5; lone customer 1."""
    n = len(values)
    counts = Counter(values.values())
    scores = {}
    for key, value in values.items():
        if n == 1:
            scores[key] = 1
            continue
        worse = sum(c for v, c in counts.items() if (v < value if higher_is_better else v > value))
        scores[key] = min(5, 1 + (5 * worse) // (n - 1))
    return scores


@dataclass(frozen=True)
class RfmRow:
    recency_days: int
    frequency: int
    monetary: Decimal
    r_score: int
    f_score: int
    m_score: int
    rfm_segment: str


def rfm_table(rows: Iterable[Activity], run_date: dt.date) -> dict:
    """customer -> RfmRow, for customers with at least one order_placed on or before the run date."""
    recency, orders, money = {}, defaultdict(set), {}
    for r in as_of(rows, run_date):
        if r.activity != "order_placed" or r.entity is None:
            continue
        days = (run_date - r.ts.date()).days
        recency[r.entity] = min(days, recency.get(r.entity, days))
        if r.order_no is not None:
            orders[r.entity].add(r.order_no)
        money[r.entity] = money.get(r.entity, Decimal(0)) + (r.order_value or Decimal(0))
    frequency = {c: len(orders[c]) for c in recency}
    r_scores = quintile_scores(recency, higher_is_better=False)
    f_scores = quintile_scores(frequency, higher_is_better=True)
    m_scores = quintile_scores(money, higher_is_better=True)
    return {
        c: RfmRow(recency[c], frequency[c], money[c], r_scores[c], f_scores[c], m_scores[c],
                  rfm_segment(r_scores[c], f_scores[c], m_scores[c]))
        for c in recency
    }


# --------------------------------------------------------------------------------------------
# Retention (docs/rfm.md, "Retention"): migration between two runs, repurchase rate, order cohorts
# --------------------------------------------------------------------------------------------

NOT_SCORED = "(not scored)"


def rfm_migration(previous: Mapping, current: Mapping) -> dict:
    """(from_segment, to_segment) -> customers; `previous` / `current`: customer -> segment. A customer
    in one run only comes from, or goes to, "(not scored)"."""
    moves = Counter()
    for c in set(previous) | set(current):
        moves[(previous.get(c, NOT_SCORED), current.get(c, NOT_SCORED))] += 1
    return dict(moves)


def repurchase_rate(table: Mapping) -> Fraction | None:
    """Customers with more than one distinct order / customers with an order (rfm_table rows)."""
    if not table:
        return None
    return Fraction(sum(1 for r in table.values() if r.frequency > 1), len(table))


def cohort_retention(rows: Iterable[Activity], run_date: dt.date) -> dict:
    """(cohort month, months since) -> (cohort customers, active customers), for every month from the
    cohort's to the run date's: the cohort is the (UTC) month of a customer's first order_placed on or
    before the run date, active = placed an order in that month."""
    months = defaultdict(set)
    for r in as_of(rows, run_date):
        if r.activity == "order_placed" and r.entity is not None:
            months[r.entity].add((r.ts.year, r.ts.month))
    cohorts = defaultdict(list)
    for customer, active in months.items():
        cohorts[min(active)].append(active)
    last = run_date.year * 12 + run_date.month - 1
    out = {}
    for (year, month), members in cohorts.items():
        start = year * 12 + month - 1
        for since in range(last - start + 1):
            index = start + since
            out[(dt.date(year, month, 1), since)] = (
                len(members), sum(1 for m in members if (index // 12, index % 12 + 1) in m))
    return out


# --------------------------------------------------------------------------------------------
# The saved lens questions (lens/queries/*.yml on lens/customer_360.yml)
# --------------------------------------------------------------------------------------------

def lens_rfm(rows: Iterable[Activity], run_date: dt.date) -> dict:
    """rfm.yml: entity -> (recency_days, frequency, monetary); monetary None when no line has a value."""
    out = {}
    for r in as_of(rows, run_date):
        if r.activity != "order_placed" or r.entity is None:
            continue
        days = (run_date - r.ts.date()).days
        recency, orders, money = out.get(r.entity, (days, set(), None))
        if r.order_no is not None:
            orders.add(r.order_no)
        if r.order_value is not None:
            money = (money or Decimal(0)) + r.order_value
        out[r.entity] = (min(recency, days), orders, money)
    return {c: (rec, len(orders), money) for c, (rec, orders, money) in out.items()}


@dataclass(frozen=True)
class OrderOutcome:
    placed: int
    rejected: int
    invoiced: int
    percentage_rejected: Fraction | None
    percentage_invoiced: Fraction | None


def _pct(part: int, whole: int) -> Fraction | None:
    return None if whole == 0 else Fraction(100 * part, whole)


def lens_order_outcomes(rows: Iterable[Activity], run_date: dt.date, by: str | None = None,
                        state_of: Callable[[frozenset], str | None] | None = None) -> dict:
    """order_outcomes.yml: {dimension value: OrderOutcome}; key () without a dimension.

    by="state": customer.state of each row's own entity (None for no entity / no state);
    by="product_category": the placed line's category; rejected / invoiced rows reach it through
    placed lines with order_id = ref_order_id (None when there is none). Every row makes its group
    exist, even when its order_no is null; counts of an entity without rows in a group are 0.
    """
    rows = as_of(rows, run_date)
    placed_categories = defaultdict(set)
    for r in rows:
        if r.activity == "order_placed" and r.order_id is not None:
            placed_categories[r.order_id].add(r.product_category)

    def keys(r: Activity) -> Iterable:
        if by is None:
            return [()]
        if by == "state":
            return [state_of(r.entity) if r.entity is not None else None]
        if by == "product_category":
            if r.activity == "order_placed":
                return [r.product_category]
            if r.order_id is None:
                return [None]
            return placed_categories.get(r.order_id) or [None]
        raise ValueError(by)

    measures = {"order_placed": "placed", "order_rejected": "rejected", "order_invoiced": "invoiced"}
    groups = defaultdict(lambda: {"placed": set(), "rejected": set(), "invoiced": set()})
    for r in rows:
        name = measures.get(r.activity)
        if name is None:
            continue
        for key in keys(r):
            bucket = groups[key][name]
            if r.entity is not None and r.order_no is not None:
                bucket.add((r.entity, r.order_no))
    if by is None and () not in groups:
        groups[()]  # a query without dimensions always has its one row
    out = {}
    for key, g in groups.items():
        placed, rejected, invoiced = len(g["placed"]), len(g["rejected"]), len(g["invoiced"])
        out[key] = OrderOutcome(placed, rejected, invoiced, _pct(rejected, placed), _pct(invoiced, placed))
    return out


def lens_days_to_invoice(rows: Iterable[Activity], run_date: dt.date, by_product_category: bool = False) -> dict:
    """days_to_invoice.yml: {() or product_category: mean of datediff(invoiced date, placed date)}
    over every (placed row, invoiced row) pair with the same order_id (activity-stream rows, so a
    group order fanned out to k members counts k x k times), both on or before the run date."""
    rows = as_of(rows, run_date)
    placed = defaultdict(list)
    for r in rows:
        if r.activity == "order_placed" and r.order_id is not None:
            placed[r.order_id].append(r)
    lags = defaultdict(list)
    for inv in rows:
        if inv.activity != "order_invoiced" or inv.order_id is None:
            continue
        for p in placed.get(inv.order_id, ()):
            key = p.product_category if by_product_category else ()
            lags[key].append((inv.ts.date() - p.ts.date()).days)
    if not by_product_category and () not in lags:
        return {(): None}
    return {k: Fraction(sum(v), len(v)) for k, v in lags.items()}


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def lens_rejections_above_average(rows: Iterable[Activity], run_date: dt.date) -> dict:
    """rejections_above_average.yml: entity -> (rejected orders last month, monthly average over the
    12 calendar months before the run date's month), for entities where last month > average."""
    month_start = run_date.replace(day=1)
    last_month_start = _add_months(month_start, -1)
    year_start = _add_months(month_start, -12)
    last_month, last_year = defaultdict(set), defaultdict(set)
    for r in rows:
        if r.activity != "order_rejected" or r.entity is None or r.order_no is None:
            continue
        day = r.ts.date()
        if year_start <= day < month_start:
            last_year[r.entity].add(r.order_no)
            if day >= last_month_start:
                last_month[r.entity].add(r.order_no)
    out = {}
    for entity, orders in last_year.items():
        recent = len(last_month.get(entity, ()))
        average = Fraction(len(orders), 12)
        if recent - average > 0:
            out[entity] = (recent, average)
    return out


def customer_states(customer_rows: Iterable[CustomerRow], customer_of: Mapping) -> dict:
    """customer -> set of non-empty `state` values on its customer master rows."""
    states = defaultdict(set)
    for row in customer_rows:
        customer = customer_of.get((USER_ID, row.customer_id))
        if customer is not None and row.columns.get("state"):
            states[customer].add(row.columns["state"])
    return dict(states)


# --------------------------------------------------------------------------------------------
# Everything together
# --------------------------------------------------------------------------------------------

@dataclass
class Reference:
    run_date: dt.date
    ingest: IngestResult
    identity: IdentityResult | None  # None when a partition was given
    partition: set
    customer_of: dict
    members: dict  # group_id -> frozenset of customers
    activities: list

    @classmethod
    def compute(cls, input_dir: str | Path, run_date: dt.date, rules: IdentityRules,
                partition: Iterable[frozenset] | None = None,
                ingest: IngestResult | None = None) -> "Reference":
        """Read, stitch (or take `partition` as given, e.g. the pipeline's) and attribute."""
        ingest = ingest or read_input(input_dir, rules.default_region)
        identity = None
        if partition is None:
            identity = stitch(ingest, run_date, rules)
            partition = identity.partition
        partition = set(partition)
        customer_of = customer_index(partition)
        members = group_members(ingest.events, customer_of)
        return cls(run_date, ingest, identity, partition, customer_of, members,
                   activity_stream(ingest.events, customer_of, members))

    def order_placed_lines(self, as_of_run_date: bool = False) -> dict:
        return order_placed_lines(self.activities, self.run_date if as_of_run_date else None)

    def rfm(self) -> dict:
        return rfm_table(self.activities, self.run_date)

    def group_traits(self, sort_key) -> dict:
        """For the groups of gold/groups: those a group call or an identify with a groupId named
        (docs/levels.md), members or not."""
        named = {e.group_id for e in self.ingest.events if e.type in ("group", "identify") and e.group_id}
        return group_traits(self.activities, self.members, self.run_date, sort_key, named)

    def lens_rfm(self) -> dict:
        return lens_rfm(self.activities, self.run_date)

    def cohort_retention(self) -> dict:
        return cohort_retention(self.activities, self.run_date)

    def order_outcomes(self, by: str | None = None, state_of=None) -> dict:
        return lens_order_outcomes(self.activities, self.run_date, by, state_of)

    def days_to_invoice(self, by_product_category: bool = False) -> dict:
        return lens_days_to_invoice(self.activities, self.run_date, by_product_category)

    def rejections_above_average(self) -> dict:
        return lens_rejections_above_average(self.activities, self.run_date)

    def customer_states(self) -> dict:
        return customer_states(self.ingest.customers, self.customer_of)
