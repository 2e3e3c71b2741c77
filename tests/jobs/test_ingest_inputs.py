"""jobs.ingest.inputs: a night reads only the files an earlier night has not landed (the manifest
_control/input_files), names what it skipped, takes its input from any Hadoop location, and keeps
events older than the late window out of history once the first night is in."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from pathlib import Path

from chispa import assert_df_equality

from jobs.core import tables
from jobs.core.config import IngestSettings
from jobs.core.context import RunParams
from jobs.core.storage import FileEntry
from jobs.ingest import inputs
from jobs.ingest import stage as ingest

DAY1, DAY2, DAY3 = dt.date(2026, 1, 10), dt.date(2026, 1, 11), dt.date(2026, 1, 12)


def _line(mid: str, when: str = "2026-01-10T08:00:00Z") -> str:
    return json.dumps({"messageId": mid, "type": "track", "event": "Product Viewed", "userId": "u1", "timestamp": when})


def _write(path: Path, lines: list[str], mtime_s: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    if mtime_s is not None:
        os.utime(path, (mtime_s, mtime_s))
    return path


def _entry(path: str, size: int = 10, modified_ms: int = 1000) -> FileEntry:
    return FileEntry(path, size, modified_ms)


def _landed(path: str, run_date: dt.date, size: int = 10, modified_ms: int = 1000, sha: str = "h1") -> inputs.LandedFile:
    return inputs.LandedFile(path, size, modified_ms, sha, run_date)


# ----------------------------------------------------------------------------------------------
# pure
# ----------------------------------------------------------------------------------------------


def test_a_file_is_skipped_only_when_an_earlier_date_landed_it_or_its_bytes():
    a = _entry("file:/in/events/a.jsonl")
    landed = [_landed("file:/in/events/a.jsonl", DAY2), _landed("file:/in/events/a.jsonl", DAY1)]
    assert inputs.landed_before(a, landed, DAY3) == inputs.Skipped(a, landed[1], inputs.SAME_FILE)
    # the same date, or a later one, landing it does not count: a re-run of a date reads its files again
    assert inputs.landed_before(a, landed[:1], DAY2) is None
    assert inputs.landed_before(a, landed, DAY1) is None
    # grown or touched: another file, unless its bytes are those of a landed file
    for changed in (_entry(a.path, size=11), _entry(a.path, modified_ms=2000)):
        assert inputs.landed_before(changed, landed, DAY3) is None
        assert inputs.landed_before(changed, landed, DAY3, sha256="h2") is None
        assert inputs.landed_before(changed, landed, DAY3, sha256="h1") == inputs.Skipped(changed, landed[1], inputs.SAME_CONTENT)
    renamed = _entry("file:/in/events/copy of a.jsonl", size=99)
    assert inputs.landed_before(renamed, landed, DAY3, sha256="h1").why == inputs.SAME_CONTENT


def test_the_late_window_starts_after_the_first_night():
    assert inputs.late_window_start(DAY3, 2, has_history=True) == DAY1
    assert inputs.late_window_start(DAY3, 0, has_history=True) == DAY3
    assert inputs.late_window_start(DAY3, 2, has_history=False) is None
    assert inputs.late_window_start(DAY3, None, has_history=True) is None


def test_the_note_names_the_first_skipped_files_and_counts_the_rest():
    landed = _landed("file:/in/events/a.jsonl", DAY1)
    skips = [inputs.Skipped(_entry(f"file:/in/events/{n}.jsonl"), landed, inputs.SAME_FILE) for n in "abcd"]
    skips[1] = inputs.Skipped(_entry("file:/in/events/b.jsonl"), landed, inputs.SAME_CONTENT)
    assert inputs.skipped_note([]) is None
    assert inputs.skipped_note(skips) == (
        "skipped 4 input file(s) an earlier night landed: a.jsonl (landed 2026-01-10), "
        "b.jsonl (same content as a.jsonl, landed 2026-01-10), c.jsonl (landed 2026-01-10) and 1 more")


# ----------------------------------------------------------------------------------------------
# nights on a warehouse
# ----------------------------------------------------------------------------------------------


def test_a_landing_folder_that_grows_night_by_night(spark, make_ctx, tmp_path):
    drop = tmp_path / "drop"
    a = _write(drop / "events" / "a.jsonl", [_line("m1"), _line("m2")], mtime_s=1_700_000_000)
    c = _write(drop / "customers" / "c.csv", ["customer_id,customer_name", "u1,Acme"], mtime_s=1_700_000_000)
    first = ingest.run(make_ctx(DAY1), RunParams(input_dir=drop))
    assert (first.metrics["files_read"], first.metrics["files_skipped"], first.metrics["accepted"]) == (2, 0, 2)
    assert not first.notes

    # Night 2: the same folder, plus a new file, a renamed copy of a.jsonl, and c.csv touched.
    _write(drop / "events" / "b.jsonl", [_line("m3"), _line("m1")])
    shutil.copyfile(a, drop / "events" / "a-resent.jsonl")
    os.utime(c, (1_800_000_000, 1_800_000_000))
    ctx = make_ctx(DAY2)
    second = ingest.run(ctx, RunParams(input_dir=drop))
    m = second.metrics
    assert (m["files_read"], m["files_skipped"]) == (1, 3)
    assert (m["lines_read"], m["accepted"], m["duplicates"], m["quarantined"]) == (2, 1, 1, 0)
    assert "customer_rows_read" not in m
    assert second.notes == [
        "skipped 3 input file(s) an earlier night landed: c.csv (same content, landed 2026-01-10), "
        "a-resent.jsonl (same content as a.jsonl, landed 2026-01-10), a.jsonl (landed 2026-01-10)"]

    # Night 2 again (a re-run of the date): its own file is read again, its replays change nothing.
    again = ingest.run(make_ctx(DAY2), RunParams(input_dir=drop))
    assert (again.metrics["files_read"], again.metrics["accepted"], again.metrics["duplicates"]) == (1, 0, 2)

    # Night 3: a.jsonl rewritten with one more line: read, its old lines are duplicates.
    _write(a, [_line("m1"), _line("m2"), _line("m4")])
    third = ingest.run(make_ctx(DAY3), RunParams(input_dir=f"file://{drop}"))
    assert (third.metrics["files_read"], third.metrics["accepted"], third.metrics["duplicates"]) == (1, 1, 2)

    wh = ctx.warehouse
    assert sorted(r["message_id"] for r in wh.read(spark, tables.BRONZE_EVENTS).collect()) == ["m1", "m2", "m3", "m4"]

    def manifest_row(path: Path, kind: str, run_date: dt.date, content: bytes, mtime_s: float):
        return (f"file:{path}", kind, len(content), dt.datetime.fromtimestamp(mtime_s, dt.timezone.utc).replace(tzinfo=None),
                hashlib.sha256(content).hexdigest(), run_date)

    b = drop / "events" / "b.jsonl"
    a_day1 = ("".join(f"{x}\n" for x in (_line("m1"), _line("m2")))).encode()
    expected = spark.createDataFrame([
        manifest_row(a, "events", DAY1, a_day1, 1_700_000_000),
        manifest_row(c, "customers", DAY1, b"customer_id,customer_name\nu1,Acme\n", 1_700_000_000),
        manifest_row(b, "events", DAY2, b.read_bytes(), b.stat().st_mtime_ns // 1_000_000 / 1000),
        manifest_row(a, "events", DAY3, a.read_bytes(), a.stat().st_mtime_ns // 1_000_000 / 1000),
    ], inputs.INPUT_FILES_SCHEMA)
    assert_df_equality(wh.read(spark, inputs.INPUT_FILES_TABLE), expected, ignore_row_order=True, ignore_nullable=True)


def test_events_before_the_late_window_are_quarantined_after_the_first_night(spark, make_ctx, tmp_path):
    settings = IngestSettings(late_window_days=3)
    # The first night is a backfill: a year-old event lands.
    first = _write(tmp_path / "n1" / "events" / "a.jsonl", [_line("old", "2025-01-10T08:00:00Z"), _line("m1")])
    ingest.run(make_ctx(DAY1, ingest=settings), RunParams(input_dir=first.parent.parent))
    # Night of the 12th: the window starts on the 9th (UTC).
    late = [_line("before", "2026-01-08T23:59:59Z"), _line("edge", "2026-01-09T00:00:00Z"),
            _line("offset", "2026-01-09T01:00:00+02:00"), _line("new", "2026-01-12T10:00:00Z"), "not json"]
    second = _write(tmp_path / "n2" / "events" / "b.jsonl", late)
    ctx = make_ctx(DAY3, ingest=settings)
    m = ingest.run(ctx, RunParams(input_dir=second.parent.parent)).metrics
    assert (m["lines_read"], m["accepted"], m["quarantined"]) == (5, 2, 3)
    assert (m["quarantined_too_late"], m["quarantined_invalid_json"]) == (2, 1)
    wh = ctx.warehouse
    assert sorted(r["message_id"] for r in wh.read(spark, tables.BRONZE_EVENTS).collect()) == ["edge", "m1", "new", "old"]
    quarantined = {(r["reason"], r["raw"]) for r in wh.read(spark, tables.QUARANTINE_EVENTS).collect()}
    assert quarantined == {("too_late", late[0]), ("too_late", late[2]), ("invalid_json", "not json")}


def test_ingest_reads_the_listing_it_is_given(spark, make_ctx, tmp_path):
    """The nightly lists the input once and hands ingest that listing (RunParams.inputs): a file that
    lands after the listing was made waits for the next night, as the night's identity says."""
    drop = tmp_path / "drop"
    _write(drop / "events" / "a.jsonl", [_line("m1"), _line("m2")])
    listing = inputs.discover_inputs(spark, drop)
    _write(drop / "events" / "late.jsonl", [_line("m3")])  # after the listing
    ctx = make_ctx(DAY1)
    given = ingest.run(ctx, RunParams(input_dir=drop, inputs=listing))
    assert (given.metrics["files_read"], given.metrics["lines_read"], given.metrics["accepted"]) == (1, 2, 2)
    assert sorted(r["message_id"] for r in ctx.warehouse.read(spark, tables.BRONZE_EVENTS).collect()) == ["m1", "m2"]
    # without a listing, ingest lists the folder itself and finds the late file
    listed = ingest.run(make_ctx(DAY2), RunParams(input_dir=drop))
    assert (listed.metrics["files_read"], listed.metrics["accepted"]) == (1, 1)
