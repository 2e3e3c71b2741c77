"""Every Delta table a nightly writes is readable by another Delta reader (delta-rs, through Arrow),
table by table, and a quarantined line keeps its exact bytes even when they are not UTF-8.

Spark's text source passes bytes that are not UTF-8 through into string columns; Arrow requires
valid UTF-8, so delta-rs (`deltalake`) fails on such a table as soon as the strings are checked or
converted. `c360 generate` plants no such bytes, so a file of lines that carry them is added to the first night's
input (tests/conftest.py two_nights).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.core.context import RunParams

from jobs.core import tables

RUN_DATE = "2026-02-01"
BAD_BYTES_FILE = "bad-bytes.jsonl"
# Lines with bytes that are not UTF-8, each quarantined (not JSON; JSON without a messageId).
QUARANTINED_BAD_BYTES = [
    b"not json \xff\xfe at all",
    b'{"type": "track", "event": "Product Viewed", "userId": "u-bad", "timestamp": "2026-02-01T08:00:00Z",'
    b' "properties": {"name": "M\xfcller \xc3\x28"}}',
]
# A message that is otherwise valid, with a property value that is not UTF-8 (Latin-1 "café").
ACCEPTED_BAD_BYTES = (
    b'{"messageId": "bad-utf8-ok", "type": "track", "event": "Product Viewed", "userId": "u-bad",'
    b' "timestamp": "2026-02-01T08:00:00Z", "properties": {"name": "caf\xe9"}}'
)


def delta_tables(root: Path) -> list[Path]:
    """Every Delta table under `root`: the folders holding a _delta_log."""
    return sorted(log.parent for log in root.rglob("_delta_log") if log.is_dir())


def read_with_delta_rs(path: Path):
    """The whole table through delta-rs and Arrow, every string checked and decoded."""
    import pyarrow as pa
    from deltalake import DeltaTable

    # scan() is delta-rs's kernel reader, which applies deletion vectors (silver/activity_stream has
    # them on); to_pyarrow_table() refuses any table with that reader feature
    table = pa.table(DeltaTable(str(path)).scan())
    table.validate(full=True)  # Arrow's own check: string columns must be valid UTF-8
    table.to_pylist()          # and Python must be able to decode them
    return table


@pytest.fixture(scope="module")
def nightly_warehouse(two_nights) -> Path:
    """Two nightlies (conf/local.yml, the test session) on small generated inputs, the first with
    the bad bytes (tests/conftest.py two_nights)."""
    return two_nights.after_both


@pytest.mark.slow
def test_every_table_of_a_nightly_reads_with_delta_rs(nightly_warehouse, spark):
    root = nightly_warehouse
    found = delta_tables(root)
    names = {p.relative_to(root).as_posix() for p in found}
    report = json.loads(max((root / "_runs").glob("*/report.json")).read_text())
    assert set(report["tables"]) <= names, "the summary's tables are all Delta tables"
    assert any(n.startswith(tables.LENS_PREFIX) for n in names), "lens-materialize wrote its tables"
    failures = {}
    for path in found:
        name = path.relative_to(root).as_posix()
        try:
            table = read_with_delta_rs(path)
        except Exception as exc:  # collect them all: one failing table must not hide another
            failures[name] = f"{type(exc).__name__}: {exc}"
            continue
        assert table.num_rows == spark.read.format("delta").load(str(path)).count(), name
    assert not failures, failures


@pytest.mark.slow
def test_quarantined_lines_keep_their_exact_bytes(nightly_warehouse):
    path = nightly_warehouse / tables.QUARANTINE_EVENTS
    rows = [r for r in read_with_delta_rs(path).to_pylist() if r["source_file"].endswith(BAD_BYTES_FILE)]
    assert sorted(r["raw_bytes"] for r in rows) == sorted(QUARANTINED_BAD_BYTES)
    for row in rows:
        assert row["raw"] == row["raw_bytes"].decode("utf-8", errors="replace")
    assert {r["reason"] for r in rows} == {"invalid_json", "missing_message_id"}
    # Every quarantined row, not only these, carries its bytes.
    assert all(r["raw_bytes"] is not None for r in read_with_delta_rs(path).to_pylist())


@pytest.mark.slow
def test_an_accepted_message_with_bytes_that_are_not_utf8_reads_with_delta_rs(make_ctx, tmp_path):
    from jobs.ingest import stage as ingest

    events = tmp_path / "raw" / "events"
    events.mkdir(parents=True)
    (events / BAD_BYTES_FILE).write_bytes(ACCEPTED_BAD_BYTES + b"\n")
    ctx = make_ctx(RUN_DATE)
    ingest.run(ctx, RunParams(input_dir=Path(tmp_path / "raw")))
    rows = read_with_delta_rs(Path(ctx.warehouse.path(tables.BRONZE_EVENTS))).to_pylist()
    # Accepted, not lost: the byte that is not UTF-8 reads as U+FFFD.
    assert [r["message_id"] for r in rows] == ["bad-utf8-ok"] and "caf\ufffd" in rows[0]["properties"]
    assert rows[0]["raw"] == ACCEPTED_BAD_BYTES.decode("utf-8", errors="replace")
