"""silver/activity_daily: day rows from the stream, rfm and traits read from them equal the stream's
answers, and the activities stage keeps the table in step with every commit of the stream."""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest
from chispa import assert_df_equality

from jobs.activities import daily
from jobs.activities import stage as activities
from jobs.core import tables
from jobs.core.catalog import SPECS
from jobs.core.context import RunParams
from jobs.rfm import stage as rfm
from jobs.traits import stage as traits
from jobs.traits.settings import TraitDefinition, TraitSettings, TraitWindow, default_traits
from tests.jobs.event_builders import event, identity_lineage, identity_map, track, utc
from tests.jobs.stream_builders import activity, stream
from tests.jobs.test_activities import ALWAYS_MERGE, D1, D2, D3, ORDER_LINE, write_inputs

DAILY_SCHEMA = SPECS[tables.ACTIVITY_DAILY].schema
RFM_METRICS_DDL = "customer_id string, recency_days int, frequency long, monetary double"


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def money(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text).quantize(Decimal("1e-9"))


def test_day_rows_of_a_stream(spark):
    rows = [
        activity("a1", "c1", "order_placed", "2026-01-30 10:00", order="O1-1", value="10"),
        activity("a2", "c1", "order_placed", "2026-01-30 23:30", order="O1-2", value="5.5"),
        # the same order's third line the next day: its number is on both days
        activity("a3", "c1", "order_placed", "2026-01-31 00:10", order="O1-3", value="n/a"),
        activity("a4", "c1", "order_rejected", "2026-01-31 09:00", order="O1-1", value="10"),
        activity("a5", "c1", "product_viewed", "2026-01-31 12:00", product="P1"),
        activity("a6", "c1", "product_viewed", "2026-01-31 13:00", product="P2"),
        activity("a7", None, "order_placed", "2026-01-31 14:00", order="O9-1", value="7"),  # unattributed
        activity("a8", "c2", "order_placed", "2026-01-31 08:00", order="  ", value="3"),    # no order number
    ]
    expected = spark.createDataFrame([
        ("c1", day("2026-01-30"), "order_placed", 2, utc("2026-01-30 10:00"), utc("2026-01-30 23:30"),
         money("15.5"), 5.5, 10.0, money("15.5"), 5.5, 10.0, ["c1-O1"]),
        ("c1", day("2026-01-31"), "order_placed", 1, utc("2026-01-31 00:10"), utc("2026-01-31 00:10"),
         None, None, None, None, None, None, ["c1-O1"]),
        ("c1", day("2026-01-31"), "order_rejected", 1, utc("2026-01-31 09:00"), utc("2026-01-31 09:00"),
         None, None, None, money("10"), 10.0, 10.0, ["c1-O1"]),
        ("c1", day("2026-01-31"), "product_viewed", 2, utc("2026-01-31 12:00"), utc("2026-01-31 13:00"),
         None, None, None, None, None, None, None),
        ("c2", day("2026-01-31"), "order_placed", 1, utc("2026-01-31 08:00"), utc("2026-01-31 08:00"),
         money("3"), 3.0, 3.0, money("3"), 3.0, 3.0, []),
    ], DAILY_SCHEMA)
    assert_df_equality(daily.build_daily(stream(spark, rows)), expected, ignore_row_order=True, ignore_nullable=True)


# ----------------------------------------------------------------------------------------------
# rfm and traits from day rows = from the stream, on random histories across month and year edges
# ----------------------------------------------------------------------------------------------

KINDS = ("order_placed", "order_placed", "order_rejected", "order_invoiced", "product_viewed")
FIRST_DAY = dt.datetime(2025, 11, 20)
RUN_DATES = (dt.date(2025, 12, 31), dt.date(2026, 1, 1), dt.date(2026, 2, 28), dt.date(2026, 3, 1))


def random_history(seed: int) -> list[tuple]:
    """Lines of orders (a line may fall days after the first), rejections and invoices of earlier
    orders, views; values with cents, unreadable or missing; some rows unattributed."""
    rng = random.Random(seed)
    rows = []
    for n in range(400):
        customer = rng.choice([f"c{i}" for i in range(12)] + [None])
        kind = rng.choice(KINDS)
        at = FIRST_DAY + dt.timedelta(minutes=rng.randrange(0, 110 * 24 * 60))
        order = f"O{rng.randrange(15)}-{rng.randrange(1, 4)}" if kind != "product_viewed" else None
        value = rng.choice([f"{rng.randrange(0, 50000) / 100:.2f}", f"{rng.randrange(1, 9)}", "n/a", None])
        rows.append(activity(f"u{n}", customer, kind, at.strftime("%Y-%m-%d %H:%M"), order=order, value=value))
    return rows


def reference_rfm(rows: list[tuple], run_date: dt.date) -> list[tuple]:
    """interface §5 over the order_placed rows dated by D, written from the contract: recency =
    days since the last one, frequency = distinct entity-<order number>, monetary = exact sum of
    the readable order values (0 when none)."""
    per_customer: dict[str, list[tuple]] = {}
    for uuid, customer, _, kind, at, *rest in rows:
        if customer is None or kind != "order_placed" or at.date() > run_date:
            continue
        per_customer.setdefault(customer, []).append((at, rest[0], rest[8]))
    out = []
    for customer, lines in per_customer.items():
        recency = min((run_date - at.date()).days for at, _, _ in lines)
        numbers = {order.strip().split("-")[0] for _, order, _ in lines if order and order.strip()}
        values = []
        for _, _, value in lines:
            try:
                values.append(Decimal(value))
            except (TypeError, ArithmeticError):
                pass
        out.append((customer, recency, len(numbers), float(sum(values, Decimal(0)))))
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_rfm_from_day_rows_equals_the_contract_on_random_histories(spark, seed):
    rows = random_history(seed)
    day_rows = daily.build_daily(stream(spark, rows)).cache()
    for run_date in RUN_DATES:
        expected = spark.createDataFrame(reference_rfm(rows, run_date), RFM_METRICS_DDL)
        assert_df_equality(rfm.rfm_metrics(day_rows, run_date), expected, ignore_row_order=True, ignore_nullable=True)
    day_rows.unpersist()


# Every kind the day rows answer, over every window kind, plus the defaults.
DAY_ROW_TRAITS = TraitSettings(computed=[
    *default_traits(),
    TraitDefinition("first_view", "first", activity="product_viewed"),
    TraitDefinition("last_activity", "last"),
    TraitDefinition("events", "count"),
    TraitDefinition("views_this_month", "count", activity="product_viewed", window=TraitWindow(unit="month", start=0, end=0)),
    TraitDefinition("invoiced_last_quarter", "count_distinct", activity="order_invoiced", of="order_no",
                    window=TraitWindow(unit="quarter", start=-1, end=-1)),
    TraitDefinition("order_value_7_days", "sum", activity="order_placed", of="feature9", window=TraitWindow(days=7)),
    TraitDefinition("rejected_value", "sum", activity="order_rejected", of="feature9"),
    TraitDefinition("smallest_line", "min", activity="order_placed", of="feature9"),
    TraitDefinition("largest_revenue", "max", of="revenue_impact", window=TraitWindow(calendar_months=2)),
    TraitDefinition("days_since_view", "days_since_last", activity="product_viewed"),
])


def test_every_trait_the_day_rows_answer_reads_no_stream():
    assert all(traits.answered_by_days(t, RUN_DATES[0]) for t in DAY_ROW_TRAITS.computed if t.kind != "percentage")


@pytest.mark.parametrize("seed", [3, 4])
def test_traits_from_day_rows_equal_traits_from_the_stream_on_random_histories(spark, seed):
    rows = random_history(seed)
    activity_stream = stream(spark, rows).cache()
    day_rows = daily.build_daily(activity_stream).cache()
    customers = spark.createDataFrame([(f"c{i}",) for i in range(14)], "customer_id string")
    for run_date in RUN_DATES:
        from_stream = traits.compute_traits(activity_stream, customers, DAY_ROW_TRAITS, run_date)
        from_days = traits.compute_traits(activity_stream.limit(0), customers, DAY_ROW_TRAITS, run_date, day_rows)
        assert_df_equality(from_days, from_stream, ignore_row_order=True)
    day_rows.unpersist()
    activity_stream.unpersist()


# ----------------------------------------------------------------------------------------------
# the activities stage keeps it in step
# ----------------------------------------------------------------------------------------------


def assert_in_step(spark, wh):
    """silver/activity_daily equals day rows built from the whole stream, and says which version."""
    assert_df_equality(wh.read(spark, tables.ACTIVITY_DAILY),
                       daily.build_daily(wh.read(spark, tables.ACTIVITY_STREAM)), ignore_row_order=True,
                       ignore_nullable=True)
    assert daily.stream_version_built_from(spark, wh) == wh.version(spark, tables.ACTIVITY_STREAM)


def test_a_night_rebuilds_only_the_day_rows_of_customers_it_changed(spark, make_ctx):
    day1 = [
        track("o1", "Order Placed", "2026-01-09 08:00", user="u1", properties=ORDER_LINE, run_date=D1),
        track("o2", "Order Placed", "2026-01-09 09:00", user="u5", properties=ORDER_LINE, run_date=D1),
        track("o3", "Order Placed", "2026-01-09 10:00", user="u7", properties=ORDER_LINE, run_date=D1),
    ]
    # day 2: u1 and u5 split apart, u1's order gets a second line the next day, u7 is untouched
    day2 = [
        track("o4", "Order Placed", "2026-01-10 08:00", user="u1", properties={**ORDER_LINE, "order_id": "O7-2"},
              run_date=D2),
    ]
    merged = identity_map(spark, {"C1": ["u1", "u5"], "C7": ["u7"]})
    split = identity_map(spark, {"C1": ["u1"], "C5": ["u5"], "C7": ["u7"]})
    ctx1 = make_ctx(D1)
    write_inputs(ctx1, day1, merged)
    first = activities.run(ctx1, RunParams()).metrics
    assert (first["daily"], first["daily_rows"]) == ("rebuilt", 2)
    assert_in_step(spark, ctx1.warehouse)

    ctx2 = make_ctx(D2, activities=ALWAYS_MERGE)
    write_inputs(ctx2, day1 + day2, split, identity_lineage(spark, [(D2, "C1", "C5", "split")]))
    second = activities.run(ctx2, RunParams()).metrics
    # C1's day 9 row updated (one line, not two), C1's day 10 row and C5's day 9 row inserted
    assert (second["mode"], second["daily"], second["daily_rows"]) == ("merge", "merge", 3)
    assert_in_step(spark, ctx2.warehouse)
    numbers = ctx2.warehouse.read(spark, tables.ACTIVITY_DAILY).filter("entity_id = 'C1'").select("order_numbers")
    assert sorted(r[0] for r in numbers.collect()) == [["C1-O7"], ["C1-O7"]]

    again = activities.run(ctx2, RunParams()).metrics
    assert (again["daily"], again["daily_rows"]) == ("merge", 0)
    assert_in_step(spark, ctx2.warehouse)


def test_day_rows_that_missed_a_commit_of_the_stream_are_rebuilt(spark, make_ctx):
    events = [track("p1", "Order Placed", "2026-01-09 08:00", user="u1", properties=ORDER_LINE, run_date=D1)]
    later = [event("p2", "identify", "2026-01-11 08:00", user="u1", run_date=D3)]
    idmap = identity_map(spark, {"C1": ["u1"]})
    ctx1 = make_ctx(D1)
    write_inputs(ctx1, events, idmap)
    activities.run(ctx1, RunParams())
    # a run that died between the stream's commit and the day rows' leaves an older stamp
    path = ctx1.warehouse.path(tables.ACTIVITY_DAILY)
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('{daily.STREAM_VERSION_PROPERTY}' = '-5')")
    ctx3 = make_ctx(D3, activities=ALWAYS_MERGE)
    write_inputs(ctx3, events + later, idmap)
    assert activities.run(ctx3, RunParams()).metrics["daily"] == "rebuilt"
    assert_in_step(spark, ctx3.warehouse)
