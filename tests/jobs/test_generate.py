"""c360 generate: determinism, planted counts recomputed independently from the files, hard cases.

Pure Python (no Spark). Every check re-reads the written files with json/csv and applies the
interface §3 rules itself, so it does not trust the generator's own bookkeeping.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import datetime as dt
import gzip
import json
from pathlib import Path

import pytest

from jobs import cli
from jobs.generate import (
    JUNK_EMAILS,
    JUNK_PHONE,
    MALFORMED_REASONS,
    TIMESTAMP_OFFSETS_MIN,
    GenerateParams,
    Rates,
    format_timestamp,
    generate,
)
from jobs.schemas import CUSTOMER_COLUMNS

RUN_DATE = dt.date(2026, 1, 31)
DAYS = 30
# Interface §3: the message types and the order of the checks a line must pass.
SPEC_TYPES = {"identify", "track", "group", "alias", "page", "screen"}
ORDER_EVENTS = ("Order Placed", "Order Rejected", "Order Invoiced")


def small_params(out: Path, **changes) -> GenerateParams:
    base = GenerateParams(out=out, profiles=240, days=DAYS, seed=5, run_date=RUN_DATE, chunk_size=80, workers=1,
                          truth=True, rates=Rates(chain_hops=20))
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "raw"
    manifest = generate(small_params(out))
    return out, manifest


# ----------------------------------------------------------------------------------------------
# Independent readers
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Determinism and output layout
# ----------------------------------------------------------------------------------------------


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_arguments_give_identical_bytes_with_any_number_of_workers(dataset, tmp_path):
    out, _ = dataset
    again = tmp_path / "again"
    generate(small_params(again, workers=2))
    first, second = tree_bytes(out), tree_bytes(again)
    assert sorted(first) == sorted(second)
    assert all(first[name] == second[name] for name in first)
    assert len([n for n in first if n.startswith("events/")]) == 3   # 240 profiles / 80 per chunk


def test_a_different_seed_gives_different_events(dataset, tmp_path):
    out, _ = dataset
    other = tmp_path / "other"
    generate(small_params(other, seed=6))
    assert read_lines(event_files(out)[0]) != read_lines(event_files(other)[0])


def test_data_sets_for_other_arguments_never_reuse_message_ids(dataset, tmp_path):
    out, _ = dataset
    next_day = tmp_path / "next-day"
    generate(small_params(next_day, run_date=RUN_DATE + dt.timedelta(days=1)))
    ids = set(read_events(out).file_of)
    assert ids and ids.isdisjoint(read_events(next_day).file_of)


def test_gzip_output_decompresses_to_the_plain_output(dataset, tmp_path):
    out, _ = dataset
    packed = tmp_path / "packed"
    manifest = generate(small_params(packed, gzip=True, workers=2))
    names = [p.name for p in event_files(packed)]
    assert names == ["part-00000.jsonl.gz", "part-00001.jsonl.gz", "part-00002.jsonl.gz"]
    for plain, compressed in zip(event_files(out), event_files(packed)):
        assert read_lines(compressed) == read_lines(plain)
    assert manifest["gzip"] is True


def test_customer_files_have_the_seed_model_columns(dataset):
    out, _ = dataset
    headers, rows, _ = read_customers(out)
    assert headers and all(h == list(CUSTOMER_COLUMNS) for h in headers)
    col = {name: n for n, name in enumerate(CUSTOMER_COLUMNS)}
    assert {r[col["premise_code"]] for r in rows} == {"on prem", "off prem"}
    assert {r[col["status"]] for r in rows} <= {"active", "inactive", "suspended"}
    assert {r[col["consent"]] for r in rows} == {"yes", "no"}
    assert any("," in r[col["address"]] for r in rows)     # quoted fields survive the CSV round trip


# ----------------------------------------------------------------------------------------------
# Manifest = counts recomputed from the files
# ----------------------------------------------------------------------------------------------


def test_manifest_event_counts_match_the_files(dataset):
    out, manifest = dataset
    events = read_events(out)
    ev = manifest["events"]
    total = sum(events.lines_per_file.values())
    assert ev["lines"] == total
    assert ev["malformed_by_reason"] == {r: events.reasons.get(r, 0) for r in MALFORMED_REASONS}
    assert ev["malformed_lines"] == sum(events.reasons.values())
    assert ev["replayed_lines"] == len(events.replays)
    assert ev["unique_valid_messages"] == len(events.messages)
    assert total == len(events.messages) + len(events.replays) + sum(events.reasons.values())
    assert {f["events"]: f["event_lines"] for f in manifest["files"]} == events.lines_per_file
    by_type = collections.Counter(m["type"] for m in events.messages)
    assert ev["by_type"] == dict(by_type)
    by_event = collections.Counter(m["event"] for m in events.messages if m["type"] == "track")
    assert ev["track_by_event"] == dict(by_event)
    offsets = sum(1 for m in events.messages if not m["timestamp"].endswith("Z"))
    assert ev["offset_timestamps"] == offsets
    assert 0.05 < offsets / len(events.messages) < 0.15


def test_every_quarantine_reason_is_planted_and_named_as_ingest_names_it(dataset):
    out, manifest = dataset
    events = read_events(out)
    assert set(events.reasons) == set(MALFORMED_REASONS)
    assert all(n >= 3 for n in manifest["events"]["malformed_by_reason"].values())   # one per reason per chunk
    from jobs.ingest import EVENT_REASONS

    assert set(MALFORMED_REASONS) == set(EVENT_REASONS)


def test_replays_are_identical_lines_some_in_a_later_file(dataset):
    out, manifest = dataset
    events = read_events(out)
    assert events.replay_bytes_equal
    later_file = [r for r in events.replays if r[2] > r[1]]
    assert len(later_file) == manifest["events"]["replayed_lines_in_later_file"] > 0
    assert all(r[2] >= r[1] for r in events.replays)      # a replay never arrives before its original


def test_late_events_arrive_after_newer_ones(dataset):
    out, manifest = dataset
    events = read_events(out)
    late, newest = 0, {}
    for msg in events.messages:
        name = events.file_of[msg["messageId"]]
        instant = parse_instant(msg["timestamp"])
        if name in newest and instant < newest[name]:
            late += 1
        newest[name] = max(newest.get(name, instant), instant)
    assert late == manifest["events"]["late_lines"] > 0


def test_manifest_customer_counts_match_the_files(dataset):
    out, manifest = dataset
    _, rows, per_file = read_customers(out)
    col = {name: n for n, name in enumerate(CUSTOMER_COLUMNS)}
    missing = [r for r in rows if not r[col["customer_id"]]]
    seen_rows, seen_ids, duplicates, updated = set(), {}, 0, 0
    for row in rows:
        cid = row[col["customer_id"]]
        if not cid:
            continue
        if tuple(row) in seen_rows:
            duplicates += 1
        elif cid in seen_ids:
            updated += 1
        seen_rows.add(tuple(row))
        seen_ids[cid] = row
    cu = manifest["customers"]
    assert cu["rows"] == len(rows)
    assert cu["missing_customer_id"] == len(missing) >= 3
    assert cu["duplicate_rows"] == duplicates > 0
    assert cu["updated_rows"] == updated > 0
    assert cu["distinct_customer_ids"] == len(seen_ids)
    assert {f["customers"]: f["customer_rows"] for f in manifest["files"]} == per_file
    known = manifest["persons"]["known"]
    assert 0.6 < len(seen_ids) / known < 0.8
    user_ids = {m.get("userId") for m in read_events(out).messages}
    assert set(seen_ids) <= user_ids                    # customer_id and userId are one namespace


# ----------------------------------------------------------------------------------------------
# Time
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", TIMESTAMP_OFFSETS_MIN + (0,))
def test_formatted_timestamps_parse_to_the_intended_instant(offset):
    for instant in (dt.datetime(2026, 1, 1, 0, 0, 0, 1000, tzinfo=dt.timezone.utc),
                    dt.datetime(2025, 12, 31, 23, 59, 59, 999000, tzinfo=dt.timezone.utc),
                    dt.datetime(2024, 2, 29, 12, 30, 15, 250000, tzinfo=dt.timezone.utc)):
        ms = int(instant.timestamp()) * 1000 + instant.microsecond // 1000
        text = format_timestamp(ms, offset)
        parsed = dt.datetime.fromisoformat(text)
        assert parsed == instant
        assert parsed.utcoffset() == dt.timedelta(minutes=offset)
        assert text.endswith("Z") == (offset == 0)


def test_all_valid_timestamps_lie_in_the_window(dataset):
    out, _ = dataset
    start = dt.datetime.combine(RUN_DATE - dt.timedelta(days=DAYS - 1), dt.time(), dt.timezone.utc)
    end = dt.datetime.combine(RUN_DATE + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    instants = [parse_instant(m["timestamp"]) for m in read_events(out).messages]
    assert all(start <= t < end for t in instants)
    assert min(instants) < start + dt.timedelta(days=1) and max(instants) >= end - dt.timedelta(days=1)


# ----------------------------------------------------------------------------------------------
# Orders
# ----------------------------------------------------------------------------------------------


def test_order_lines_reference_existing_placed_lines(dataset):
    out, manifest = dataset
    messages = read_events(out).messages
    placed = {}
    outcomes = collections.Counter()
    for m in messages:
        if m["type"] == "track" and m["event"] == "Order Placed":
            order_id = m["properties"]["order_id"]
            assert order_id not in placed
            placed[order_id] = m
    for m in messages:
        if m["type"] == "track" and m["event"] in ORDER_EVENTS[1:]:
            props = m["properties"]
            ref = placed[props["order_id"]]
            outcomes[props["order_id"]] += 1
            delay = parse_instant(m["timestamp"]) - parse_instant(ref["timestamp"])
            assert dt.timedelta(0) <= delay <= dt.timedelta(days=10)
            assert (m.get("userId"), m.get("anonymousId")) == (ref.get("userId"), ref.get("anonymousId"))
            assert props["product_id"] == ref["properties"]["product_id"]
            if m["event"] == "Order Rejected":
                assert props["order_reject_code"] and props["order_status_code"] and props["order_delivery_status"]
    assert max(outcomes.values()) == 1                   # a line is rejected or invoiced, not both
    # Lines of one order: numbered 1..n, one identity and one timestamp; order numbers never reused.
    orders = collections.defaultdict(list)
    for order_id, m in placed.items():
        number, line = order_id.split("-")
        orders[number].append((int(line), m.get("userId"), m.get("anonymousId"), parse_instant(m["timestamp"])))
    for lines in orders.values():
        assert sorted(n for n, *_ in lines) == list(range(1, len(lines) + 1))
        assert len({tuple(rest) for _, *rest in lines}) == 1
    o = manifest["orders"]
    assert (o["orders"], o["placed_lines"]) == (len(orders), len(placed))
    rejected = sum(1 for m in messages if m["type"] == "track" and m["event"] == "Order Rejected")
    invoiced = sum(1 for m in messages if m["type"] == "track" and m["event"] == "Order Invoiced")
    assert (o["rejected_lines"], o["invoiced_lines"]) == (rejected, invoiced)
    assert 0.10 < rejected / len(placed) < 0.20 and 0.62 < invoiced / len(placed) < 0.78
    sample = next(iter(placed.values()))["properties"]
    assert isinstance(sample["order_value"], float) and dt.date.fromisoformat(sample["request_delivery_date"])


def test_pre_login_orders_are_linked_later_by_an_identify_or_an_alias_on_the_same_device(dataset):
    out, manifest = dataset
    messages = read_events(out).messages
    identified_devices = {m["anonymousId"] for m in messages
                          if m["type"] == "identify" and m.get("userId") and m.get("anonymousId")}
    aliased_devices = {m["previousId"] for m in messages if m["type"] == "alias"} - {
        m["userId"] for m in messages if m.get("userId")}

    def pre_login(devices):
        return {m["properties"]["order_id"].split("-")[0] for m in messages
                if m["type"] == "track" and m["event"] == "Order Placed" and not m.get("userId")
                and m["anonymousId"] in devices}

    # Login-alias devices are linked by the alias alone: never in an identify with the userId.
    assert not aliased_devices & identified_devices
    assert len(aliased_devices) == manifest["persons"]["with_login_alias"] > 0
    assert len(pre_login(identified_devices | aliased_devices)) == manifest["orders"]["pre_login_orders"]
    assert pre_login(identified_devices) and pre_login(aliased_devices)


# ----------------------------------------------------------------------------------------------
# Identities: truth is exactly what the evidence links; chains, junk, formats
# ----------------------------------------------------------------------------------------------


def test_truth_partition_equals_the_components_of_the_evidence(dataset):
    out, _ = dataset
    events = read_events(out)
    uf = UnionFind()
    for ids in identity_edges(out, events):
        if ids:
            uf.union(ids)
    with open(out / "_truth" / "people.csv", newline="") as fh:
        truth = list(csv.DictReader(fh))
    people = collections.defaultdict(set)
    for row in truth:
        people[row["person_id"]].add((row["identifier_type"], row["identifier_value"]))
    truth_partition = {frozenset(ids) for ids in people.values()}
    components = collections.defaultdict(set)
    for node in list(uf.parent):
        components[uf.find(node)].add(node)
    assert truth_partition == {frozenset(c) for c in components.values()}
    kinds = collections.Counter(row["identifier_type"] for row in truth)
    assert set(kinds) == {"user_id", "anonymous_id", "email", "phone"}


def test_long_chains_link_only_through_the_planted_number_of_hops(dataset):
    out, manifest = dataset
    events = read_events(out)
    neighbours = collections.defaultdict(set)
    for ids in identity_edges(out, events):
        for a in ids:
            neighbours[a].update(b for b in ids if b != a)
    chains = manifest["persons"]["chains"]
    assert len(chains) == 3 and all(c["hops"] == 20 for c in chains)
    for chain in chains:
        start, goal = ("anonymous_id", chain["first_anonymous_id"]), ("user_id", chain["user_id"])
        distance, frontier, seen = 0, {start}, {start}
        while goal not in frontier:
            frontier = {n for node in frontier for n in neighbours[node]} - seen
            seen |= frontier
            distance += 1
            assert frontier, "chain is broken"
        assert distance == chain["hops"]


def test_junk_identifiers_are_shared_by_many_persons(dataset):
    out, manifest = dataset
    users = collections.defaultdict(set)
    for m in read_events(out).messages:
        for kind, value in identifiers_of(m):
            if (kind, value) in JUNK and m.get("userId"):
                users[value].add(m["userId"])
    expected = manifest["persons"]["junk_identifier_users"]
    assert {v: len(u) for v, u in users.items()} == {
        "test@test.com": expected["test@test.com"], "none@none.com": expected["none@none.com"],
        "+10000000000": expected["0000000000"],
    }
    assert min(expected.values()) >= 3          # at least one per chunk


def test_junk_share_scales_to_at_least_50_users_at_s_scale():
    rates = Rates()
    per_chunk = max(1, round(rates.junk_email * 5_000))
    assert per_chunk * 2 >= 50 and max(1, round(rates.junk_phone * 5_000)) * 2 >= 50


def test_identifiers_are_formatted_inconsistently(dataset):
    out, manifest = dataset
    raw_emails, raw_phones, devices = set(), set(), collections.defaultdict(set)
    for m in read_events(out).messages:
        traits = m.get("traits") or {}
        if traits.get("email"):
            raw_emails.add(traits["email"])
        if traits.get("phone"):
            raw_phones.add(traits["phone"])
        if m.get("userId") and m.get("anonymousId"):
            devices[m["userId"]].add(m["anonymousId"])
    assert any(e != e.strip() for e in raw_emails) and any(e.strip() != e.strip().lower() for e in raw_emails)
    assert any(p.startswith("(") for p in raw_phones) and any(p.startswith("+") for p in raw_phones)
    assert any("-" in p for p in raw_phones) and any(p.isdigit() for p in raw_phones)
    assert len({norm_email(e) for e in raw_emails}) < len(raw_emails)
    assert max(len(d) for d in devices.values()) >= 3        # several devices per customer
    assert manifest["persons"]["anonymous_only"] > 0


def test_households_have_group_calls_members_and_group_events(dataset):
    out, manifest = dataset
    messages = read_events(out).messages
    with open(out / "_truth" / "group_members.csv", newline="") as fh:
        members = collections.Counter(row["group_id"] for row in csv.DictReader(fh))
    assert members and all(2 <= n <= 5 for n in members.values())
    joined = collections.defaultdict(set)
    for m in messages:
        if m["type"] == "group" or (m["type"] == "identify" and m.get("groupId")):
            joined[m["groupId"]].add(m["userId"])
    assert {g: len(u) for g, u in joined.items()} == dict(members)
    top_level = [m for m in messages if m["type"] == "track" and m.get("groupId")]
    in_context = [m for m in messages if m["type"] == "track" and m["context"].get("groupId")]
    assert top_level and in_context
    assert len(top_level) + len(in_context) == manifest["groups"]["group_events"]
    assert len(members) == manifest["groups"]["households"]
    holder_calls = [m for m in messages if m["type"] == "group" and "email" in m["traits"]]
    assert holder_calls and all({"name", "plan"} <= set(m["traits"]) for m in holder_calls)


def test_alias_calls_link_a_legacy_user_id_or_a_device_anonymous_id(dataset):
    out, manifest = dataset
    messages = read_events(out).messages
    aliases = [m for m in messages if m["type"] == "alias"]
    user_ids = {m["userId"] for m in messages if m.get("userId") and m["type"] != "alias"}
    anonymous_ids = {m["anonymousId"] for m in messages if m.get("anonymousId")}
    legacy = [m for m in aliases if m["previousId"] in user_ids]
    device = [m for m in aliases if m["previousId"] not in user_ids]
    assert len(legacy) == manifest["persons"]["with_alias"] > 0
    assert len(device) == manifest["persons"]["with_login_alias"] > 0
    # Most devices browsed before login; one that did not has its anonymousId only in the alias.
    browsed = [m for m in device if m["previousId"] in anonymous_ids]
    assert 0 < len(browsed) < len(device)
    assert all(m["previousId"] != m["userId"] and "anonymousId" not in m for m in aliases)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def run_cli(out: Path, *extra: str) -> int:
    return cli.main(["generate", "--out", str(out), "--profiles", "60", "--days", "5", "--run-date", "2026-01-31",
                     "--workers", "1", *extra])


def test_cli_refuses_a_non_empty_folder_unless_forced(tmp_path, capsys):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert run_cli(out) == 2
    assert "--force" in capsys.readouterr().err
    assert not (out / "events").exists()

    assert run_cli(out, "--force", "--chunk-size", "20") == 0
    assert len(list((out / "events").iterdir())) == 3
    assert run_cli(out) == 2
    assert run_cli(out, "--force") == 0                   # earlier parts are wiped, other files kept
    assert [p.name for p in (out / "events").iterdir()] == ["part-00000.jsonl"]
    assert (out / "notes.txt").read_text() == "keep me"
    manifest = json.loads((out / "_manifest.json").read_text())
    assert (manifest["profiles"], manifest["days"], manifest["run_date"]) == (60, 5, "2026-01-31")


def test_cli_rejects_bad_options_with_exit_2(tmp_path, capsys):
    assert run_cli(tmp_path / "a", "--rate", "nonsense=1") == 2
    assert "nonsense" in capsys.readouterr().err
    assert run_cli(tmp_path / "b", "--rate", "replay=2") == 2
    assert run_cli(tmp_path / "c", "--profiles", "0") == 2
    assert run_cli(tmp_path / "d", "--rate", "malformed=0", "--rate", "late=0") == 0
    manifest = json.loads((tmp_path / "d" / "_manifest.json").read_text())
    assert manifest["events"]["malformed_lines"] == 0 and manifest["events"]["late_lines"] == 0
