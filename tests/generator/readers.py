"""Independent readers of a generated data set: they re-read the written files with json/csv and
apply the interface §3 rules themselves (generator code only for the parameters and the junk
values), so the tests do not trust the generator's own bookkeeping."""
from __future__ import annotations

import collections
import csv
import dataclasses
import datetime as dt
import gzip
import json
from pathlib import Path

from generator.params import GenerateParams, Rates
from generator.values import JUNK_EMAILS, JUNK_PHONE

RUN_DATE = dt.date(2026, 1, 31)
DAYS = 30
# Interface §3: the message types and the order of the checks a line must pass.
SPEC_TYPES = {"identify", "track", "group", "alias", "page", "screen"}
ORDER_EVENTS = ("Order Placed", "Order Rejected", "Order Invoiced")


def small_params(out: Path, **changes) -> GenerateParams:
    """240 profiles in 3 chunks of 80, with truth; chains of 20 hops."""
    base = GenerateParams(out=out, profiles=240, days=DAYS, seed=5, run_date=RUN_DATE, chunk_size=80, workers=1,
                          truth=True, rates=Rates(chain_hops=20))
    return dataclasses.replace(base, **changes)


def parse_instant(text):
    try:
        value = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo is not None else None


def classify(line: str) -> tuple[str | None, dict | None]:
    """(quarantine reason or None, the message) following interface §3."""
    try:
        msg = json.loads(line)
    except ValueError:
        return "invalid_json", None
    if not isinstance(msg, dict):
        return "not_an_object", None
    if not msg.get("messageId"):
        return "missing_message_id", msg
    if not msg.get("type"):
        return "missing_type", msg
    if msg["type"] not in SPEC_TYPES:
        return "unknown_type", msg
    if not msg.get("timestamp"):
        return "missing_timestamp", msg
    if parse_instant(msg["timestamp"]) is None:
        return "bad_timestamp", msg
    if msg["type"] == "alias":
        if not msg.get("userId"):
            return "missing_identity", msg
        if not msg.get("previousId"):
            return "missing_previous_id", msg
    elif not msg.get("userId") and not msg.get("anonymousId"):
        return "missing_identity", msg
    if msg["type"] == "track" and not msg.get("event"):
        return "missing_event", msg
    if msg["type"] == "group" and not msg.get("groupId"):
        return "missing_group_id", msg
    return None, msg


def event_files(out: Path) -> list[Path]:
    return sorted((out / "events").iterdir())


def read_lines(path: Path) -> list[str]:
    data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    return data.decode("utf-8").splitlines()


@dataclasses.dataclass
class Events:
    lines_per_file: dict[str, int]
    reasons: collections.Counter
    messages: list[dict]                 # first occurrence of every valid messageId, in file order
    file_of: dict[str, str]              # messageId -> file of its first occurrence
    replays: list[tuple[str, str, str]]  # (messageId, file of original, file of replay)
    replay_bytes_equal: bool


def read_events(out: Path) -> Events:
    lines_per_file, reasons, messages, file_of, first_line, replays = {}, collections.Counter(), [], {}, {}, []
    equal = True
    for path in event_files(out):
        lines = read_lines(path)
        lines_per_file[f"events/{path.name}"] = len(lines)
        for line in lines:
            reason, msg = classify(line)
            if reason is not None:
                reasons[reason] += 1
                continue
            mid = msg["messageId"]
            if mid in file_of:
                replays.append((mid, file_of[mid], path.name))
                equal = equal and first_line[mid] == line
                continue
            file_of[mid], first_line[mid] = path.name, line
            messages.append(msg)
    return Events(lines_per_file, reasons, messages, file_of, replays, equal)


def read_customers(out: Path) -> tuple[list[str], list[list[str]], dict[str, int]]:
    headers, rows, per_file = [], [], {}
    for path in sorted((out / "customers").iterdir()):
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            headers.append(next(reader))
            file_rows = list(reader)
        per_file[f"customers/{path.name}"] = len(file_rows)
        rows.extend(file_rows)
    return headers, rows, per_file


def norm_email(value: str) -> str:
    return value.strip().lower()


def norm_phone(value: str) -> str:
    """E.164 of the generator's US numbers (with or without the country code)."""
    digits = "".join(ch for ch in value if ch.isdigit())
    return "+1" + digits[-10:] if digits else ""


def identifiers_of(msg: dict, seen: set[tuple[str, str]] = frozenset()) -> list[tuple[str, str]]:
    """The identifiers one message ties together (interface §3), normalized. An alias previousId
    is each of user_id / anonymous_id it is `seen` as elsewhere, else an anonymous_id."""
    ids = []
    for key, kind in (("userId", "user_id"), ("anonymousId", "anonymous_id")):
        if msg.get(key):
            ids.append((kind, msg[key]))
    if msg.get("previousId"):
        previous = [(kind, msg["previousId"]) for kind in ("user_id", "anonymous_id") if (kind, msg["previousId"]) in seen]
        ids.extend(previous or [("anonymous_id", msg["previousId"])])
    for traits in (msg.get("traits") or {}, (msg.get("context") or {}).get("traits") or {}):
        if traits.get("email"):
            ids.append(("email", norm_email(traits["email"])))
        if traits.get("phone"):
            ids.append(("phone", norm_phone(traits["phone"])))
    return ids


JUNK = {("email", e) for e in JUNK_EMAILS} | {("phone", "+1" + JUNK_PHONE)}


class UnionFind:
    def __init__(self):
        self.parent = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, items):
        items = list(items)
        for item in items:
            self.find(item)
        for other in items[1:]:
            self.parent[self.find(other)] = self.find(items[0])


def identity_edges(out: Path, events: Events) -> list[list[tuple[str, str]]]:
    """Every message / customer row as the list of non-junk identifiers it links."""
    header, rows, _ = read_customers(out)
    col = {name: n for n, name in enumerate(header[0])}
    seen = {(kind, m[key]) for m in events.messages
            for key, kind in (("userId", "user_id"), ("anonymousId", "anonymous_id")) if m.get(key)}
    seen |= {("user_id", row[col["customer_id"]]) for row in rows if row[col["customer_id"]]}
    groups = [[i for i in identifiers_of(m, seen) if i not in JUNK] for m in events.messages]
    for row in rows:
        if not row[col["customer_id"]]:
            continue
        ids = [("user_id", row[col["customer_id"]])]
        if row[col["email"]]:
            ids.append(("email", norm_email(row[col["email"]])))
        if row[col["phone_number"]]:
            ids.append(("phone", norm_phone(row[col["phone_number"]])))
        groups.append([i for i in ids if i not in JUNK])
    return groups


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
