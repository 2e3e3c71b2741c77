"""generator.manifest: the manifest's counts equal the counts recomputed from the files."""
from __future__ import annotations

import collections

from jobs.ingest.reasons import EVENT_REASONS
from jobs.ingest.schemas import CUSTOMER_COLUMNS
from tests.generator.readers import read_customers, read_events


def test_manifest_event_counts_match_the_files(dataset):
    out, manifest = dataset
    events = read_events(out)
    ev = manifest["events"]
    total = sum(events.lines_per_file.values())
    assert ev["lines"] == total
    assert ev["malformed_by_reason"] == {r: events.reasons.get(r, 0) for r in EVENT_REASONS}
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
