"""ingest: every quarantine reason, replay dedup within and across runs, idempotent re-runs,
timestamp offsets to UTC, count conservation, customers, and errors a person can act on."""
from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest

from jobs.core.context import JobContext, RunParams
from chispa import assert_df_equality
from pyspark import StorageLevel

from jobs.core.config import Config, IngestSettings
from tests.conftest import TEST_SPARK

from jobs.ingest import stage as ingest

from jobs.core import tables
from jobs.core.errors import InputError

UTC = dt.timezone.utc


def _msg(mid, type_="track", **fields):
    base = {"messageId": mid, "type": type_, "timestamp": "2026-01-10T08:00:00Z", "userId": "u1"}
    if type_ == "track":
        base["event"] = "Product Viewed"
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


# One bad line per reason, each failing only that check.
BAD_LINES = {
    ingest.INVALID_JSON: '{"messageId": "bad-1", "type": "track"',
    ingest.NOT_AN_OBJECT: "[1, 2, 3]",
    ingest.MISSING_MESSAGE_ID: json.dumps(_msg(None)),
    ingest.MISSING_TYPE: json.dumps(_msg("bad-4", type_=None)),
    ingest.UNKNOWN_TYPE: json.dumps(_msg("bad-5", type_="purchase")),
    ingest.MISSING_TIMESTAMP: json.dumps(_msg("bad-6", timestamp=None)),
    ingest.BAD_TIMESTAMP: json.dumps(_msg("bad-7", timestamp="10/01/2026 08:00")),
    ingest.MISSING_IDENTITY: json.dumps(_msg("bad-8", userId=None)),
    ingest.MISSING_EVENT: json.dumps(_msg("bad-9", event=None)),
    ingest.MISSING_GROUP_ID: json.dumps(_msg("bad-10", type_="group")),
    ingest.MISSING_PREVIOUS_ID: json.dumps(_msg("bad-11", type_="alias")),
}

GOOD_MESSAGES = [
    _msg("m1", timestamp="2026-01-10T10:00:00+05:30", properties={"order_id": "O1-1", "order_value": 12.5}),
    _msg("m2", type_="identify", userId=" u2 ", anonymousId="a2",
         traits={"email": "  Jane.Doe@Example.COM ", "phone": "(555) 123-4567"}),
    _msg("m3", type_="page", userId=None, anonymousId="a3", timestamp="2026-01-09T23:30:00-04:00"),
    _msg("m4", type_="group", groupId="g1", traits={"email": "house@example.com", "name": "Doe household"}),
    _msg("m5", type_="alias", previousId="a2", userId="u2"),
    _msg("m6", event="Order Placed", context={"groupId": "g1", "traits": {"email": "CTX@Example.com"}}),
    _msg("m7", type_="screen", timestamp="2026-01-10T08:00:00.123Z"),
]

CUSTOMER_HEADER = ["customer_id", "customer_name", "email", "phone_number", "state", "consent"]


def write_input(root: Path, events: dict[str, list[str]], customers: dict[str, list[list[str]]] | None = None) -> Path:
    for name, lines in events.items():
        path = root / "events" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = ("\n".join(lines) + "\n").encode()
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    for name, rows in (customers or {}).items():
        path = root / "customers" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    return root


def run_ingest(make_ctx, input_dir: Path, run_date: str):
    ctx = make_ctx(run_date)
    return ctx, ingest.run(ctx, RunParams(input_dir=input_dir))


@pytest.fixture
def first_batch(tmp_path):
    good = [json.dumps(m) for m in GOOD_MESSAGES]
    # m1 replayed in the same file and m2 in another file: kept once.
    return write_input(
        tmp_path / "in1",
        {
            "day1/a.jsonl": good[:4] + [good[0]] + list(BAD_LINES.values()) + ["", "   "],
            "day1/b.jsonl.gz": good[4:] + [good[1]],
            "ignored.txt": ['{"messageId": "not-read"}'],
        },
        {
            "c1.csv": [CUSTOMER_HEADER, ["u1", "Acme Liquor", "A@X.com", "555-000-1111", "CA", "yes"],
                       ["", "No Id Store", "n@x.com", "", "NV", "no"],
                       ["u2", "Doe Wines", "jane.doe@example.com", "", "OR", "no"],
                       ["u1", "Acme Liquor", "A@X.com", "555-000-1111", "CA", "yes"]],
            "c2.csv": [["state", "customer_id", "customer_name"], ["WA", "u3", "Third Shop"],
                       ["CA", "u1", "Acme Liquor"]],
        },
    )


def test_counts_add_up_and_every_reason_is_quarantined(make_ctx, spark, first_batch):
    ctx, result = run_ingest(make_ctx, first_batch, "2026-01-10")
    m = result.metrics
    n_good, n_bad = len(GOOD_MESSAGES), len(BAD_LINES)
    assert (m["lines_read"], m["accepted"], m["duplicates"], m["quarantined"]) == (n_good + 2 + n_bad, n_good, 2, n_bad)
    assert m["lines_read"] == m["accepted"] + m["duplicates"] + m["quarantined"]
    assert {k: v for k, v in m.items() if k.startswith("quarantined_")} == {f"quarantined_{r}": 1 for r in BAD_LINES}

    wh = ctx.warehouse
    quarantine = wh.read(spark, tables.QUARANTINE_EVENTS)
    got = {(r["kind"], r["reason"], r["raw"]) for r in quarantine.collect()}
    expected = {("event", reason, line) for reason, line in BAD_LINES.items()}
    assert {g for g in got if g[0] == "event"} == expected
    assert [r["reason"] for r in quarantine.filter("kind = 'customer'").collect()] == [ingest.MISSING_CUSTOMER_ID]
    assert all(r["source_file"].endswith("day1/a.jsonl") for r in quarantine.filter("kind = 'event'").collect())

    # customers: 6 rows read, 1 without id, u1's first row repeated identically (kept once); c2's u1
    # row has other values, so it is a second version, not a duplicate.
    assert (m["customer_rows_read"], m["customer_rows_accepted"], m["customer_rows_duplicates"],
            m["customer_rows_quarantined"]) == (6, 4, 1, 1)
    assert m["customer_rows_read"] == m["customer_rows_accepted"] + m["customer_rows_duplicates"] + m["customer_rows_quarantined"]


def test_an_input_above_the_memory_cache_limit_lands_through_local_disk():
    settings = IngestSettings(memory_cache_max_mb=2)
    assert ingest.landing_storage(2 * 1024 * 1024, settings) == StorageLevel.MEMORY_AND_DISK
    assert ingest.landing_storage(2 * 1024 * 1024 + 1, settings) == StorageLevel.DISK_ONLY
    assert ingest.landing_storage(1, IngestSettings(memory_cache_max_mb=0)) == StorageLevel.DISK_ONLY


def test_landing_through_disk_writes_what_landing_in_memory_writes(spark, first_batch, tmp_path):
    results = {}
    for label, limit in (("memory", 1024), ("disk", 0)):
        config = Config(warehouse=str(tmp_path / label), spark=TEST_SPARK, ingest=IngestSettings(memory_cache_max_mb=limit))
        ctx = JobContext(config=config, run_date=dt.date(2026, 1, 10), _spark=spark)
        results[label] = (ctx, ingest.run(ctx, RunParams(input_dir=first_batch)).metrics)
    (memory, in_memory), (disk, on_disk) = results["memory"], results["disk"]
    assert on_disk == in_memory
    for table in (tables.BRONZE_EVENTS, tables.BRONZE_CUSTOMERS, tables.QUARANTINE_EVENTS):
        read = [c.warehouse.read(spark, table).drop("raw_bytes") for c in (disk, memory)]
        assert_df_equality(*read, ignore_row_order=True)


def test_bronze_rows_are_normalized_and_utc(make_ctx, spark, first_batch):
    ctx, _ = run_ingest(make_ctx, first_batch, "2026-01-10")
    bronze = ctx.warehouse.read(spark, tables.BRONZE_EVENTS).select(
        "message_id", "type", "event", "user_id", "anonymous_id", "previous_id", "group_id", "timestamp", "email", "phone"
    )
    day = dt.datetime
    expected = spark.createDataFrame(
        [
            ("m1", "track", "Product Viewed", "u1", None, None, None, day(2026, 1, 10, 4, 30), None, None),
            ("m2", "identify", None, "u2", "a2", None, None, day(2026, 1, 10, 8, 0), "jane.doe@example.com", "(555) 123-4567"),
            ("m3", "page", None, None, "a3", None, None, day(2026, 1, 10, 3, 30), None, None),
            # a group call's traits describe the group: no user email from them
            ("m4", "group", None, "u1", None, None, "g1", day(2026, 1, 10, 8, 0), None, None),
            ("m5", "alias", None, "u2", None, "a2", None, day(2026, 1, 10, 8, 0), None, None),
            ("m6", "track", "Order Placed", "u1", None, None, "g1", day(2026, 1, 10, 8, 0), "ctx@example.com", None),
            ("m7", "screen", None, "u1", None, None, None, day(2026, 1, 10, 8, 0, 0, 123000), None, None),
        ],
        "message_id string, type string, event string, user_id string, anonymous_id string, previous_id string, "
        "group_id string, timestamp timestamp, email string, phone string",
    )
    assert_df_equality(bronze, expected, ignore_row_order=True, ignore_nullable=True)


def test_rerun_changes_nothing_and_replays_across_runs_are_kept_once(make_ctx, spark, first_batch, tmp_path):
    ctx, _ = run_ingest(make_ctx, first_batch, "2026-01-10")
    wh = ctx.warehouse
    snapshot = {t: wh.delta(spark, t).history(1).first()["version"]
                for t in (tables.BRONZE_EVENTS, tables.BRONZE_CUSTOMERS, tables.QUARANTINE_EVENTS)}

    _, again = run_ingest(make_ctx, first_batch, "2026-01-10")
    assert (again.metrics["accepted"], again.metrics["duplicates"]) == (0, len(GOOD_MESSAGES) + 2)
    assert again.metrics["customer_rows_accepted"] == 0
    for t, version in snapshot.items():
        before = spark.read.format("delta").option("versionAsOf", version).load(wh.path(t))
        assert_df_equality(wh.read(spark, t), before, ignore_row_order=True)

    # Next day: one replay of m3 (from another file, another day) and one new message.
    second = write_input(tmp_path / "in2", {"x.jsonl": [json.dumps(GOOD_MESSAGES[2]), json.dumps(_msg("m8"))]})
    _, next_day = run_ingest(make_ctx, second, "2026-01-11")
    assert (next_day.metrics["lines_read"], next_day.metrics["accepted"], next_day.metrics["duplicates"]) == (2, 1, 1)
    bronze = wh.read(spark, tables.BRONZE_EVENTS)
    assert bronze.count() == len(GOOD_MESSAGES) + 1
    assert [r["run_date"] for r in bronze.filter("message_id = 'm8'").collect()] == [dt.date(2026, 1, 11)]
    assert [r["run_date"] for r in bronze.filter("message_id = 'm3'").collect()] == [dt.date(2026, 1, 10)]


def test_customer_rows_keep_columns_whatever_the_header_order(make_ctx, spark, first_batch):
    ctx, _ = run_ingest(make_ctx, first_batch, "2026-01-10")
    got = ctx.warehouse.read(spark, tables.BRONZE_CUSTOMERS).select("customer_id", "customer_name", "email", "state", "consent")
    expected = spark.createDataFrame(
        [("u1", "Acme Liquor", "A@X.com", "CA", "yes"), ("u2", "Doe Wines", "jane.doe@example.com", "OR", "no"),
         ("u3", "Third Shop", None, "WA", None), ("u1", "Acme Liquor", None, "CA", None)],
        "customer_id string, customer_name string, email string, state string, consent string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_tables_are_readable_by_another_delta_reader(make_ctx, first_batch):
    from deltalake import DeltaTable

    ctx, result = run_ingest(make_ctx, first_batch, "2026-01-10")
    bronze = DeltaTable(ctx.warehouse.path(tables.BRONZE_EVENTS)).to_pyarrow_table()
    assert sorted(bronze.column("message_id").to_pylist()) == sorted(m["messageId"] for m in GOOD_MESSAGES)
    quarantine = DeltaTable(ctx.warehouse.path(tables.QUARANTINE_EVENTS)).to_pyarrow_table()
    assert quarantine.num_rows == result.metrics["quarantined"] + result.metrics["customer_rows_quarantined"]


def test_bronze_events_keeps_statistics_for_timestamp_only(make_ctx, spark, first_batch):
    """Delta's min/max statistics are for timestamp alone, not for ids and JSON text."""
    ctx, _ = run_ingest(make_ctx, first_batch, "2026-01-10")
    path = ctx.warehouse.path(tables.BRONZE_EVENTS)
    assert spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()["properties"]["delta.dataSkippingStatsColumns"] == "timestamp"
    stats = [json.loads(a["stats"]) for a in spark.read.json(f"{path}/_delta_log/*.json").where("add IS NOT NULL").select("add.*").collect()]
    assert stats and all(set(s["minValues"]) == set(s["maxValues"]) == {"timestamp"} for s in stats)


def test_input_errors_name_the_problem(spark, make_ctx, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        ingest.discover_inputs(spark, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no"):
        ingest.discover_inputs(spark, tmp_path / "empty")
    with pytest.raises(InputError, match="is not a folder"):
        ingest.discover_inputs(spark, write_input(tmp_path / "f", {"a.jsonl": ["{}"]}) / "events" / "a.jsonl")
    bad_gz = write_input(tmp_path / "gz", {"a.jsonl.gz": []})
    (bad_gz / "events" / "a.jsonl.gz").write_text("not gzip")
    with pytest.raises(InputError, match=r"a\.jsonl\.gz is named \.gz but is not gzip"):
        run_ingest(make_ctx, bad_gz, "2026-01-10")
    no_id = write_input(tmp_path / "noid", {}, {"c.csv": [["name", "email"], ["x", "y"]]})
    with pytest.raises(InputError, match=r"c\.csv: header has no customer_id"):
        ingest.read_csv_header(spark, str(no_id / "customers" / "c.csv"))
    (no_id / "customers" / "empty.csv").write_text("")
    with pytest.raises(InputError, match=r"empty\.csv is empty"):
        ingest.read_csv_header(spark, str(no_id / "customers" / "empty.csv"))


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("{'messageId': 'x', 'type': 'track'}", ingest.INVALID_JSON),  # single quotes are not JSON
        ("not json at all", ingest.INVALID_JSON),
        ('"just a string"', ingest.NOT_AN_OBJECT),
        ("42", ingest.NOT_AN_OBJECT),
        (json.dumps(_msg("ok", timestamp="2026-01-10T08:00:00")), ingest.BAD_TIMESTAMP),  # no zone: ambiguous
        (json.dumps(_msg("ok", timestamp="2026-01-10T08:00:00+0530")), None),
        (json.dumps(_msg("ok", type_="alias", previousId="a1", userId=None, anonymousId="a2")), ingest.MISSING_IDENTITY),
        # a track with a group id and no user is an event of the whole group (interface §3)
        (json.dumps(_msg("ok", userId=None, groupId="g1")), None),
        (json.dumps(_msg("ok", userId=None, context={"groupId": "g1"})), None),
        (json.dumps(_msg("ok", userId=None, groupId=" ")), ingest.MISSING_IDENTITY),
        (json.dumps(_msg("ok", type_="page", userId=None, groupId="g1")), ingest.MISSING_IDENTITY),
    ],
)
def test_rejection_reason_of_single_lines(spark, raw, reason):
    lines = spark.createDataFrame([(raw, "f.jsonl")], "raw string, source_file string")
    got = lines.transform(ingest.parse_event_lines).transform(ingest.event_rejection_reason).select("reason").first()
    assert got["reason"] == reason


def test_identical_bad_lines_are_each_quarantined_once_across_reruns(make_ctx, spark, tmp_path):
    bad = BAD_LINES[ingest.NOT_AN_OBJECT]
    raw = write_input(tmp_path / "in", {"a.jsonl": [bad, bad, json.dumps(_msg("ok-1"))]})
    ctx, first = run_ingest(make_ctx, raw, "2026-01-10")
    _, again = run_ingest(make_ctx, raw, "2026-01-10")
    assert first.metrics["quarantined"] == again.metrics["quarantined"] == 2
    rows = ctx.warehouse.read(spark, tables.QUARANTINE_EVENTS).collect()
    assert [(r["raw"], r["reason"]) for r in rows] == [(bad, ingest.NOT_AN_OBJECT)] * 2
    assert len({r["line_hash"] for r in rows}) == 2


@pytest.mark.parametrize("broadcast_batch", [False, True], ids=["shuffled", "broadcast-batch"])
def test_a_replay_keeps_its_first_copy_and_keys_already_landed_are_dropped(spark, broadcast_batch):
    rows = spark.createDataFrame(
        [("k1", "b.jsonl", '{"v": 1}'), ("k1", "a.jsonl", '{"v": 2}'), ("k1", "a.jsonl", '{"v": 3}'),
         ("k2", "a.jsonl", '{"v": 4}'), ("k2", "a.jsonl", '{"v": 4}'), ("k3", "a.jsonl", '{"v": 5}'),
         ("k4", "a.jsonl", '{"v": 6}'), ("k4", "a.jsonl", '{"v": 7}')],
        "message_id string, source_file string, raw string",
    )
    # k4 twice: a table that somehow holds a key twice still drops the batch's copies once
    landed = spark.createDataFrame([("k4",), ("k4",), ("k9",)], "message_id string")
    to_resolve = ingest.keys_to_resolve(rows.select("message_id"), landed, "message_id",
                                        broadcast_batch=broadcast_batch)
    got = ingest.keep_new_first_copies(rows, to_resolve, "message_id")
    # k1: first by (source_file, raw); k2: identical copies kept once; k3 passes; k4 landed before.
    expected = spark.createDataFrame(
        [("k1", "a.jsonl", '{"v": 2}'), ("k2", "a.jsonl", '{"v": 4}'), ("k3", "a.jsonl", '{"v": 5}')],
        "message_id string, source_file string, raw string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_traits_or_context_that_are_not_objects_do_not_make_a_line_invalid(spark):
    """The one-pass parse reads traits and context as objects; a line where they are something else
    is valid JSON, is parsed again as text and keeps every field it has."""
    raws = [
        json.dumps(_msg("t1", type_="identify", traits="vip")),
        json.dumps(_msg("t2", type_="identify", traits=["a"], context={"traits": {"email": "X@Y.com"}})),
        json.dumps(_msg("t3", context="web", anonymousId="a3", properties={"order_id": "O1-1"})),
        json.dumps(_msg("t4", context={"groupId": "g9", "traits": "x"})),
        json.dumps(_msg("t5", type_="identify", traits={"email": 5, "phone": "555 0100"})),
        '{"messageId": "t6", "type": "track", "traits": "x", ',
    ]
    lines = spark.createDataFrame([(r, "f.jsonl") for r in raws], "raw string, source_file string")
    got = (
        lines.transform(ingest.parse_event_lines)
        .transform(ingest.event_rejection_reason)
        .transform(lambda df: ingest.to_bronze_events(df, dt.date(2026, 1, 10)))
        .select("message_id", "reason", "anonymous_id", "group_id", "email", "phone", "properties")
    )
    expected = spark.createDataFrame(
        [
            ("t1", None, None, None, None, None, None),
            ("t2", None, None, None, "x@y.com", None, None),
            ("t3", None, "a3", None, None, None, '{"order_id":"O1-1"}'),
            ("t4", None, None, "g9", None, None, None),
            ("t5", None, None, None, "5", "555 0100", None),
            (None, ingest.INVALID_JSON, None, None, None, None, None),
        ],
        "message_id string, reason string, anonymous_id string, group_id string, email string, phone string, "
        "properties string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
