"""silver/profile_calls: bronze's identify and group calls with their traits read out of raw."""
from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.core import tables
from jobs.core.catalog import SPECS
from jobs.core.context import RunParams
from jobs.core.errors import InputError
from jobs.groups import stage as groups
from jobs.identity.profile_calls import profile_calls, read_profile_calls
from tests.jobs.event_builders import bronze_events, event, track, utc

RUN = dt.date(2026, 1, 31)
ROWS = [
    event("i1", "identify", "2026-01-03 10:00", user="u1", traits={"name": "  Ann Smith ", "plan": "gold"}),
    # customer_name wins over name; a trait only in context.traits is read there
    event("i2", "identify", "2026-01-04 10:00", anon="a2", traits={"customer_name": "Bo", "name": "Robert"}),
    event("g1", "group", "2026-01-05 10:00", user="u1", group="G1", traits={"name": "Smiths", "income": 70000}),
    event("g2", "group", "2026-01-06 10:00", user="u2", group="G2"),
    track("t1", "Order Placed", "2026-01-06 11:00", user="u1", group="G1"),
    event("p1", "page", "2026-01-06 12:00", anon="a2"),
    event("x1", "alias", "2026-01-07 12:00", user="u1"),
]


def test_identify_and_group_calls_only_with_their_traits(spark):
    context_only = event("i3", "identify", "2026-01-08 10:00", user="u3", run_date="2026-02-01")
    context_only["raw"] = context_only["raw"][:-1] + ', "context": {"traits": {"name": "Cy"}}}'
    # traits that are not an object (ingest keeps such a line): the name in context.traits still counts
    text_traits = event("i4", "identify", "2026-01-09 10:00", user="u4", run_date="2026-02-01")
    text_traits["raw"] = text_traits["raw"][:-1] + ', "traits": "vip", "context": {"traits": {"customer_name": 7}}}'
    got = bronze_events(spark, [*ROWS, context_only, text_traits]).transform(profile_calls)
    expected = spark.createDataFrame(
        [("i1", "identify", "u1", None, None, utc("2026-01-03 10:00"), None, None, "Ann Smith", None, dt.date(2026, 1, 31)),
         ("i2", "identify", None, "a2", None, utc("2026-01-04 10:00"), None, None, "Bo", None, dt.date(2026, 1, 31)),
         ("g1", "group", "u1", None, "G1", utc("2026-01-05 10:00"), None, None, None,
          {"name": "Smiths", "income": "70000"}, dt.date(2026, 1, 31)),
         ("g2", "group", "u2", None, "G2", utc("2026-01-06 10:00"), None, None, None, None, dt.date(2026, 1, 31)),
         ("i3", "identify", "u3", None, None, utc("2026-01-08 10:00"), None, None, "Cy", None, dt.date(2026, 2, 1)),
         ("i4", "identify", "u4", None, None, utc("2026-01-09 10:00"), None, None, "7", None, dt.date(2026, 2, 1))],
        SPECS[tables.PROFILE_CALLS].schema,
    )
    sortable = [F.array_sort(F.map_entries("group_traits")).alias("group_traits")]
    assert got.columns == list(SPECS[tables.PROFILE_CALLS].columns)
    assert_df_equality(got.select(*[c for c in got.columns if c != "group_traits"], *sortable),
                       expected.select(*[c for c in expected.columns if c != "group_traits"], *sortable),
                       ignore_row_order=True, ignore_nullable=True)


def test_readers_take_the_calls_up_to_their_run_date(spark, make_ctx):
    ctx = make_ctx(str(RUN))
    later = event("i9", "identify", "2026-02-02 10:00", user="u9", run_date="2026-02-02")
    ctx.warehouse.overwrite(bronze_events(spark, [*ROWS, later]).transform(profile_calls), tables.PROFILE_CALLS)
    got = read_profile_calls(spark, ctx.warehouse, RUN).select("message_id")
    assert sorted(r.message_id for r in got.collect()) == ["g1", "g2", "i1", "i2"]


def test_groups_without_profile_calls_names_stitch(spark, make_ctx):
    ctx = make_ctx(str(RUN))
    with pytest.raises(InputError, match="silver/profile_calls.*c360 stitch"):
        groups.run(ctx, RunParams())
