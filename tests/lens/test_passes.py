"""The planner as a library: model -> logical plan (lens.plan) -> passes (lens.passes) -> Spark SQL.

Pure Python: each optimisation pass, on or off, gives the plan shape it should; passes are
functions plan -> plan that never change the plan they are given; `explain` lists what fired.
On Spark: for saved queries and shared-scan queries, every combination of passes on/off gives the
same answer (whole DataFrames compared).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from pathlib import Path

import pytest
import sqlglot
from chispa import assert_df_equality
from sqlglot import exp

from lens.errors import LensError
from lens.model import load_model
from lens.passes import DEFAULT_PASSES, PASSES, Fired, distinct_split, optimise, shared_scan
from lens.plan import (Aggregate, CountFlags, DistinctKeys, DistinctValues, Final, Scan, SharedScan, UnionAll,
                       chain, children, format_plan, walk)
from lens.planner import CompiledQuery, compile_query, explain, plan_query
from lens.query_format import load_query, parse_query
from lens.render import render
from tests.lens import test_shared_scan as stream
from tests.lens.shop import VIEWS as SHOP_VIEWS, write_shop_model

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "lens" / "customer_360.yml"
QUERIES = REPO / "lens" / "queries"
RUN_DATE = dt.date(2026, 3, 15)
STREAM_TABLE = "icebase.audience.activity_streams_large_data"
CUSTOMERS_TABLE = "icebase.audience.customers_large_data"
SEED_VIEWS = {STREAM_TABLE: "lens_activity_stream", CUSTOMERS_TABLE: "lens_customers"}
COMBINATIONS = [combo for n in range(len(PASSES) + 1) for combo in itertools.combinations(PASSES, n)]
COMBINATION_IDS = ["+".join(c) or "none" for c in COMBINATIONS]


@pytest.fixture(scope="module")
def project():
    return load_model(PROJECT)


@pytest.fixture(scope="module")
def stream_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("passes_stream") / "stream.yml"
    path.write_text(stream.STREAM_MODEL)
    return load_model(path)


def saved(name: str, variant: str | None = None):
    return load_query(QUERIES / f"{name}.yml", variant)


def compiled_saved(project, name: str, variant: str | None = None, **options) -> CompiledQuery:
    return compile_query(project, saved(name, variant), run_date=RUN_DATE, views=SEED_VIEWS, **options)


def outline(node) -> str:
    """The plan's shape: node kinds, children in parentheses."""
    kids = children(node)
    return type(node).__name__ + (f"({', '.join(outline(k) for k in kids)})" if kids else "")


# ---------------------------------------------------------------- each pass on and off


@pytest.mark.parametrize("passes, shape, fired", [
    ((), "Final(Combine(Aggregate(Join(Scan, Scan)), Aggregate(Join(Scan, Scan)), Aggregate(Join(Scan, Scan))))", []),
    (("shared_scan",), "Final(Combine(Aggregate(Join(SharedScan, Scan))))", ["shared_scan"]),
    # one distinct count per entity: nothing to split while the entities are aggregated apart
    (("distinct_split",), "Final(Combine(Aggregate(Join(Scan, Scan)), Aggregate(Join(Scan, Scan)), "
                          "Aggregate(Join(Scan, Scan))))", []),
    (PASSES, "Final(Combine(CountFlags(DistinctValues(Join(SharedScan, Scan)))))", ["shared_scan", "distinct_split"]),
], ids=["none", "shared_scan", "distinct_split", "both"])
def test_order_outcomes_by_state_plan_shape_per_pass(project, passes, shape, fired):
    compiled = compiled_saved(project, "order_outcomes", "by_state", passes=passes)
    assert outline(compiled.plan) == shape
    assert compiled.passes == passes
    assert [f.name for f in compiled.fired] == fired
    assert ("lens_s_order_placed" in compiled.sql, "lens_v_order_placed" in compiled.sql) == (
        "shared_scan" in fired, "distinct_split" in fired)


def test_the_shared_scan_flags_rows_when_the_entities_group_alike(project):
    plan = compiled_saved(project, "order_outcomes", "by_state", passes=("shared_scan",)).plan
    (aggregate,) = plan.source.inputs
    scan = chain(aggregate.source)[0]
    assert isinstance(scan, SharedScan) and not scan.tagged
    assert scan.entities == ("order_placed", "order_rejected", "order_invoiced") and scan.reads == (0, 1, 2)
    assert aggregate.name == "lens_a_order_placed" and aggregate.entities == scan.entities
    assert [m.key for m in aggregate.measures] == ["order_placed.frequency", "order_rejected.frequency",
                                                  "order_invoiced.frequency"]
    # every measure is gated by its entity's flag
    assert [m.conditions[-1].sql("spark") for m in aggregate.measures] == [
        "`lens_scan`.`in0`", "`lens_scan`.`in1`", "`lens_scan`.`in2`"]


def test_entities_that_join_differently_are_tagged_and_read_in_groups(project):
    plan = compiled_saved(project, "order_outcomes", "by_product_category", passes=("shared_scan",)).plan
    assert outline(plan) == "Final(Combine(Aggregate(UnionAll(SharedScan, Join(SharedScan, Scan)))))"
    union = plan.source.inputs[0].source
    assert isinstance(union, UnionAll) and union.name == "lens_u_order_placed"
    scans = [chain(b.rows)[0] for b in union.branches]
    assert [(s.name, s.reads, s.tagged) for s in scans] == [("lens_s_order_placed_0", (0,), True),
                                                           ("lens_s_order_placed_1", (1, 2), True)]
    assert [b.carried for b in union.branches] == [(("lens_j0", "product_category"),)] * 2


@pytest.mark.parametrize("passes, shape", [
    ((), "Final(Combine(Aggregate(Scan)))"),
    (("shared_scan",), "Final(Combine(Aggregate(Scan)))"),
    (("distinct_split",), "Final(Combine(CountFlags(DistinctValues(Scan))))"),
    (PASSES, "Final(Combine(CountFlags(DistinctValues(Scan))))"),
], ids=["none", "shared_scan", "distinct_split", "both"])
def test_rejections_plan_shape_per_pass(project, passes, shape):
    compiled = compiled_saved(project, "rejections_above_average", passes=passes)
    assert outline(compiled.plan) == shape
    assert [f.name for f in compiled.fired] == (["distinct_split"] if "distinct_split" in passes else [])
    if "distinct_split" in passes:
        counts = compiled.plan.source.inputs[0]
        assert isinstance(counts, CountFlags) and isinstance(counts.source, DistinctValues)
        assert counts.keys == ("order_rejected.rejected_orders_last_month",
                               "order_rejected.rejected_orders_last_12_months")
        assert counts.source.name == "lens_v_order_rejected" and len(counts.source.conditions) == 2
    tree = sqlglot.parse_one(compiled.sql, read="spark")
    distinct, count_if = len(list(tree.find_all(exp.Distinct))), len(list(tree.find_all(exp.CountIf)))
    assert (distinct, count_if) == ((0, 2) if "distinct_split" in passes else (2, 0))


@pytest.mark.parametrize("passes", COMBINATIONS, ids=COMBINATION_IDS)
def test_fan_out_aggregates_keep_their_distinct_keys_whatever_the_passes(tmp_path, passes):
    shop = load_model(write_shop_model(tmp_path))
    query = parse_query({"measures": ["customers.total_credit", "orders.revenue"], "dimensions": ["orders.product"]})
    plan = compile_query(shop, query, run_date=RUN_DATE, views=SHOP_VIEWS, passes=passes).plan
    assert outline(plan) == ("Final(Combine(Aggregate(Join(DistinctKeys(Join(Scan, Scan)), Scan)), "
                             "Aggregate(Scan)))")


def test_passes_are_functions_from_plan_to_plan_that_leave_their_input_alone(project):
    plan = plan_query(project, saved("order_outcomes", "by_product_category"), run_date=RUN_DATE, views=SEED_VIEWS)
    assert isinstance(plan, Final) and not any(isinstance(n, (SharedScan, CountFlags)) for n in walk(plan))
    before = render(plan)
    shared = shared_scan(plan)
    split = distinct_split(shared)
    assert render(plan) == before                      # the input plan is untouched
    assert render(split) == render(split)              # rendering never moves a plan's expressions
    assert render(split) == compiled_saved(project, "order_outcomes", "by_product_category").sql
    assert render(plan) == compiled_saved(project, "order_outcomes", "by_product_category", passes=()).sql
    # nothing to do: the very same plan comes back
    assert distinct_split(plan) is plan
    rfm = plan_query(project, saved("rfm"), run_date=RUN_DATE, views=SEED_VIEWS)
    assert shared_scan(rfm) is rfm and distinct_split(rfm) is rfm
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.limit = 3


def test_passes_run_in_one_order_whatever_order_they_are_named_in(project):
    forward = compiled_saved(project, "order_outcomes", passes=("shared_scan", "distinct_split"))
    backward = compiled_saved(project, "order_outcomes", passes=("distinct_split", "shared_scan", "distinct_split"))
    assert forward.sql == backward.sql and backward.passes == PASSES == DEFAULT_PASSES
    assert compiled_saved(project, "order_outcomes").sql == forward.sql   # all passes by default


def test_unknown_passes_are_errors(project):
    with pytest.raises(LensError, match="unknown optimisation pass 'shared_scans' \\(known: shared_scan, distinct_split\\)"):
        compiled_saved(project, "rfm", passes=("shared_scans",))
    with pytest.raises(TypeError, match="collection of pass names"):
        compiled_saved(project, "rfm", passes="shared_scan")
    plan = plan_query(project, saved("rfm"), run_date=RUN_DATE, views=SEED_VIEWS)
    assert optimise(plan, ()) == (plan, ())


def test_a_single_entity_and_a_number_measure_are_left_to_themselves(stream_model):
    views = stream.VIEWS
    single = compile_query(stream_model, parse_query({"measures": ["orders.revenue", "orders.distinct_orders"]}),
                           run_date=RUN_DATE, views=views)
    assert outline(single.plan) == "Final(Combine(Aggregate(Scan)))" and single.fired == ()
    number = compile_query(stream_model, parse_query({"measures": ["orders.order_count", "refunds.refund_share"]}),
                           run_date=RUN_DATE, views=views)
    assert outline(number.plan) == "Final(Combine(Aggregate(Scan), Aggregate(Scan)))" and number.fired == ()


# ---------------------------------------------------------------- explain


def test_explain_lists_the_passes_that_fired_and_the_plan_after_them(project):
    compiled = compiled_saved(project, "order_outcomes", "by_product_category")
    text = explain(compiled)
    assert compiled.explain == text
    lines = text.splitlines()
    assert lines[0] == "passes:"
    assert lines[1].startswith("  shared_scan: merged order_placed, order_rejected, order_invoiced into one scan of "
                               "icebase.audience.activity_streams_large_data and one aggregate lens_a_order_placed: "
                               "read in 2 groups by the joins they use")
    assert lines[2].startswith("  distinct_split: order_placed.frequency, order_rejected.frequency, "
                               "order_invoiced.frequency: 3 distinct counts of ")
    assert "counted in two steps (lens_v_order_placed" in lines[2]
    assert lines[3] == "plan after the passes:"
    assert format_plan(compiled.plan, "  ") == "\n".join(lines[4:])
    for heading in ("Final", "Combine lens_r (1 input)", "CountFlags lens_a_order_placed",
                    "DistinctValues lens_v_order_placed", "UnionAll lens_u_order_placed",
                    "SharedScan lens_s_order_placed_0", "SharedScan lens_s_order_placed_1",
                    "Join left lens_e_order_placed AS lens_j0", "Scan lens_e_order_placed"):
        assert any(line.lstrip().startswith(heading) for line in lines[4:]), heading
    assert compiled.fired == (
        Fired("shared_scan", lines[1].split(": ", 1)[1]), Fired("distinct_split", lines[2].split(": ", 1)[1]))


def test_explain_says_which_passes_were_off_or_found_nothing(project):
    off = compiled_saved(project, "order_outcomes", passes=()).explain.splitlines()
    assert off[:3] == ["passes:", "  shared_scan: off", "  distinct_split: off"]
    assert "Aggregate lens_a_order_rejected (measures of order_rejected)" in "\n".join(off)
    idle = compiled_saved(project, "rfm").explain.splitlines()
    assert idle[1].startswith("  shared_scan: did not fire (") and idle[2].startswith("  distinct_split: did not fire (")
    one = compiled_saved(project, "rejections_above_average", passes=("distinct_split",)).explain.splitlines()
    assert one[1] == "  shared_scan: off" and one[2].startswith("  distinct_split: order_rejected.rejected_orders_last_month")


def test_the_plan_prints_its_as_of_reads_having_and_order(project):
    compiled = compile_query(project, saved("rejections_above_average"), run_date=RUN_DATE, views=SEED_VIEWS,
                             as_of={STREAM_TABLE: "activity_ts"})
    text = format_plan(compiled.plan)
    assert "| as of: lens_t_activity_stream = lens_activity_stream where activity_ts < 2026-03-16 00:00:00" in text
    assert "| having: `order_rejected.rejected_orders_above_average` > 0" in text
    assert "| order by: order_rejected.entity_id asc" in text
    scans = [n for n in walk(compiled.plan) if isinstance(n, Scan)]
    assert [s.tables for s in scans] == [(STREAM_TABLE,)]


def test_every_node_kind_prints(tmp_path, project):
    shop = load_model(write_shop_model(tmp_path))
    query = parse_query({"measures": ["customers.total_credit"], "dimensions": ["orders.product"]})
    fan_out = compile_query(shop, query, run_date=RUN_DATE, views=SHOP_VIEWS).plan
    assert any(isinstance(n, DistinctKeys) for n in walk(fan_out))
    assert "DistinctKeys lens_k_customers AS keys" in format_plan(fan_out)
    dims_only = compile_query(shop, parse_query({"dimensions": ["customers.region"]}), run_date=RUN_DATE,
                              views=SHOP_VIEWS).plan
    assert outline(dims_only) == "Final(DimensionValues(Scan))"
    assert "DimensionValues lens_r (distinct)" in format_plan(dims_only)
    chasm = compile_query(shop, parse_query({"measures": ["orders.revenue", "returns.refund_total"]}), run_date=RUN_DATE,
                          views=SHOP_VIEWS).plan
    assert "Combine lens_r (2 inputs, cross join)" in format_plan(chasm)
    assert all(isinstance(i, Aggregate) for i in chasm.source.inputs)


# ---------------------------------------------------------------- on Spark: every combination, one answer

ANSWERED = {
    # saved query (variant) -> how many different SQL texts the 4 combinations give
    ("order_outcomes", None): 3,                       # shared scan with flags, distinct counts split
    ("order_outcomes", "by_product_category"): 3,      # tagged rows, read in groups by joins
    ("rejections_above_average", None): 2,             # split only; HAVING on derived measures
}
STREAM_QUERIES = {"distinct_by_product": stream.DISTINCT_BY_PRODUCT, "west_by_product": stream.WEST_BY_PRODUCT}


@pytest.fixture(scope="module")
def frames(spark):
    """The lens test data of tests/lens/test_execute.py (activity stream, customers) and
    tests/lens/test_shared_scan.py (stream, users), as DataFrames for views of this module's own."""
    from tests.lens.test_execute import ACTIVITY_SCHEMA, CUSTOMER_SCHEMA, activity_rows, customer_rows

    data = {
        "passes_activity_stream": spark.createDataFrame(activity_rows(), ACTIVITY_SCHEMA).cache(),
        "passes_customers": spark.createDataFrame(customer_rows(), CUSTOMER_SCHEMA).cache(),
        "passes_stream": spark.createDataFrame(stream.STREAM, "kind string, user_id string, ref string, "
                                                              "product string, amount double").cache(),
        "passes_users": spark.createDataFrame(stream.USERS, "user_id string, region string").cache(),
    }
    yield data
    for name, frame in data.items():
        spark.catalog.dropTempView(name)
        frame.unpersist()


def answers(spark, frames, model, query, views, as_of=None):
    """{passes: (sql, DataFrame with `.`-free column names)} for every combination of passes."""
    for name, frame in frames.items():
        frame.createOrReplaceTempView(name)
    out = {}
    for passes in COMBINATIONS:
        compiled = compile_query(model, query, run_date=RUN_DATE, views=views, as_of=as_of, passes=passes)
        frame = spark.sql(compiled.sql)
        # chispa sorts rows by unquoted column names: the dots of `entity.member` go for the comparison
        out[passes] = compiled.sql, frame.toDF(*[c.replace(".", "__") for c in frame.columns])
    return out


def assert_all_equal(results) -> None:
    (_, first), *others = results.values()
    assert first.count() > 0
    for _, other in others:
        assert_df_equality(first, other, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize("name, variant", list(ANSWERED), ids=[f"{n}-{v}" if v else n for n, v in ANSWERED])
def test_saved_queries_answer_the_same_with_every_combination_of_passes(spark, frames, project, name, variant):
    views = {STREAM_TABLE: "passes_activity_stream", CUSTOMERS_TABLE: "passes_customers"}
    results = answers(spark, frames, project, saved(name, variant), views, as_of={STREAM_TABLE: "activity_ts"})
    assert len({text for text, _ in results.values()}) == ANSWERED[(name, variant)]
    assert_all_equal(results)


@pytest.mark.parametrize("name", list(STREAM_QUERIES))
def test_shared_scan_queries_answer_the_same_with_every_combination_of_passes(spark, frames, stream_model, name):
    views = {"shop.stream": "passes_stream", "shop.users": "passes_users"}
    results = answers(spark, frames, stream_model, parse_query(STREAM_QUERIES[name]), views)
    assert len({text for text, _ in results.values()}) == (3 if name == "distinct_by_product" else 2)
    assert_all_equal(results)
    expected = stream.EXPECTED[name]
    assert sorted(map(tuple, results[()][1].collect()), key=repr) == sorted(expected, key=repr)
