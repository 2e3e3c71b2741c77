"""generator.bad_lines: malformed lines (one per quarantine reason ingest checks), replays, late events."""
from __future__ import annotations

import pytest

from generator.bad_lines import malformed_line
from generator.chunk import Chunk
from generator.people import make_persons
from jobs.ingest.reasons import EVENT_REASONS
from tests.generator.readers import classify, parse_instant, read_events, small_params


def test_every_quarantine_reason_is_planted_and_named_as_ingest_names_it(dataset):
    out, manifest = dataset
    events = read_events(out)
    assert set(events.reasons) == set(EVENT_REASONS)
    assert all(n >= 3 for n in manifest["events"]["malformed_by_reason"].values())   # one per reason per chunk
    assert list(manifest["events"]["malformed_by_reason"]) == list(EVENT_REASONS)
    from jobs.ingest import stage

    # The generator plants the reasons ingest checks, in ingest's order.
    assert tuple(stage.EVENT_REASONS) == EVENT_REASONS


@pytest.mark.parametrize("reason", EVENT_REASONS)
def test_each_malformed_line_fails_exactly_its_reason(tmp_path, reason):
    chunk = Chunk(small_params(tmp_path), 0)
    persons = make_persons(chunk)
    anonymous = [p for p in persons if p.user_id is None]
    for n in range(40):   # every variant of the defect, for known and anonymous persons
        person = anonymous[0] if n % 4 == 0 else persons[n]
        line = malformed_line(chunk, reason, person, f"mid-{n}", chunk.rand_ts())
        assert classify(line)[0] == reason, line


def test_a_reason_without_a_planted_defect_is_refused(tmp_path):
    chunk = Chunk(small_params(tmp_path), 0)
    person = make_persons(chunk)[0]
    with pytest.raises(ValueError, match="no planted defect"):
        malformed_line(chunk, "missing_something_new", person, "mid-1", chunk.rand_ts())


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
