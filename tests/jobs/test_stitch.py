"""stitch: identity map, audit, lineage and silver/customers on a small planted world, run on day D
(full), day D+1 (incremental), D+1 again (idempotent) and D+1 --full; then `identity explain`.

One warehouse for the module: the four stitch runs happen once, in fixtures, and each test checks
one table or property against rows written out by hand.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest

from jobs.core.context import RunParams
from chispa import assert_df_equality

from jobs.identity import explain as identity_cli

from jobs.identity import stitch

from jobs.core import tables
from jobs.core.catalog import SPECS
from jobs.core.config import Config
from jobs.core.context import JobContext
from jobs.core.errors import InputError
from jobs.core.tables import CUSTOMER_COLUMNS
from jobs.identity.settings import IdentitySettings
from tests.conftest import TEST_SPARK

BRONZE_EVENTS_SCHEMA = SPECS[tables.BRONZE_EVENTS].schema
BRONZE_CUSTOMERS_SCHEMA = SPECS[tables.BRONZE_CUSTOMERS].schema
AUDIT_SCHEMA = SPECS[tables.IDENTITY_AUDIT].schema
LINEAGE_SCHEMA = SPECS[tables.IDENTITY_LINEAGE].schema

DAY = dt.date(2026, 1, 31)
NEXT_DAY = dt.date(2026, 2, 1)
HUB_CAP = 3
JUNK_CUSTOMERS = 500
SHARED_EMAIL = "shared@corp.com"
SHARED_PHONE = "+15550001212"
EVENTS_FILE = "events/day.jsonl"
CUSTOMERS_FILE = "customers/master.csv"
MAP_COLUMNS = ["identifier_type", "identifier_value", "customer_id"]


def ev(mid, at, kind="track", *, user=None, anon=None, previous=None, email=None, phone=None, group=None, name=None,
       run_date=DAY):
    """A bronze/events row (identifiers already normalized, as ingest writes them)."""
    raw = json.dumps({"traits": {"name": name}} if name else {})
    return (mid, kind, "Clicked" if kind == "track" else None, user, anon, previous, group,
            dt.datetime.fromisoformat(at).replace(tzinfo=dt.timezone.utc), email, phone, None,
            raw, EVENTS_FILE, run_date)


def master(customer_id, run_date=DAY, **values):
    """A bronze/customers row (raw email/phone, as in the CSV)."""
    row = {c: None for c in CUSTOMER_COLUMNS} | {"customer_id": customer_id} | values
    row_hash = hashlib.sha256(f"{customer_id}|{sorted(values.items())}|{run_date}".encode()).hexdigest()
    return (*[row[c] for c in CUSTOMER_COLUMNS], row_hash, CUSTOMERS_FILE, run_date)


def fresh(identifier: str) -> str:
    """The generated id of a cluster whose oldest identifier is `identifier` (type:value)."""
    return "c_" + hashlib.sha256(identifier.encode()).hexdigest()[:16]


JUNK = [f"k{i:03d}" for i in range(JUNK_CUSTOMERS)]
DAY_EVENTS = [
    # Shared device: a_dev is u1's first, so u2's later use of it is cut.
    ev("m01", "2026-01-01T10:00:00", "identify", user="u1", anon="a_dev", email="one@x.com"),
    ev("m02", "2026-01-02T10:00:00", user="u2", anon="a_dev"),
    # Chain u3 - a3 - chain@x.com - a4 - u4: two user ids meet through an email; cut at a4.
    ev("m03", "2026-01-03T10:00:00", "identify", user="u3", anon="a3", name="Three", group="g2"),
    ev("m04", "2026-01-04T10:00:00", "identify", anon="a3", email="chain@x.com"),
    ev("m05", "2026-01-05T10:00:00", "identify", anon="a4", email="chain@x.com"),
    ev("m06", "2026-01-06T10:00:00", user="u4", anon="a4"),
    ev("m07", "2026-01-06T11:00:00", "group", user="u1", group="g1"),
    # Anonymous visitors, linked tomorrow.
    ev("m09", "2026-01-07T10:00:00", "page", anon="a9"),
    ev("m10", "2026-01-08T10:00:00", "page", anon="a10"),
    ev("m11", "2026-01-09T10:00:00", "page", anon="a11"),
    ev("m12", "2026-01-10T10:00:00", "page", anon="a12", phone=SHARED_PHONE),
    ev("m13", "2026-01-11T10:00:00", "page", anon="a13", phone=SHARED_PHONE),
]
DAY_CUSTOMERS = [master(k, email=f" {SHARED_EMAIL.upper()} ", phone_number="000-000-0000") for k in JUNK] + [
    master("u1", run_date=dt.date(2026, 1, 30), customer_name="Old Name", state="CA", consent="yes"),
    master("u1", customer_name="New Name", phone_number="(555) 100-2000"),
]
NEXT_DAY_EVENTS = [
    ev("n01", "2026-02-01T09:00:00", "identify", anon="a9", email="nine@x.com", run_date=NEXT_DAY),
    ev("n02", "2026-02-01T09:01:00", "identify", anon="a10", email="nine@x.com", run_date=NEXT_DAY),
    ev("n03", "2026-02-01T09:05:00", "identify", user="u11", anon="a11", run_date=NEXT_DAY),
    *[ev(f"n1{i}", "2026-02-01T10:00:00", "identify", user=f"u5{i}", phone=SHARED_PHONE, run_date=NEXT_DAY)
      for i in range(1, HUB_CAP + 2)],
    ev("n20", "2026-02-01T11:00:00", user="u1", anon="a1b", run_date=NEXT_DAY),
]


def _ctx(spark, root, run_date, hub_cap=HUB_CAP, **identity) -> JobContext:
    settings = IdentitySettings(max_linked_user_ids=hub_cap, **identity)
    config = Config(warehouse=str(root), spark=TEST_SPARK, identity=settings)
    return JobContext(config=config, run_date=run_date, _spark=spark)


def _snapshot(spark, ctx, table):
    return spark.createDataFrame(ctx.warehouse.read(spark, table).collect(), ctx.warehouse.read(spark, table).schema)


SNAPSHOT_TABLES = (tables.IDENTITY_MAP, tables.IDENTITY_AUDIT, tables.IDENTITY_LINEAGE, tables.SILVER_CUSTOMERS)


def _stitch_and_snapshot(spark, out, label, ctx, full):
    """Run stitch; store its result and a snapshot of every output table in `out` under `label`."""
    out[label + ":result"] = stitch.run(ctx, RunParams(rebuild=full))
    out.update({f"{label}:{t}": _snapshot(spark, ctx, t) for t in SNAPSHOT_TABLES})


def _two_nights(spark, root, **identity) -> tuple[dict, JobContext]:
    """Stitch D (full) and D+1 (incremental) of DAY_* and NEXT_DAY_EVENTS: (snapshots, D+1's context)."""
    day, next_day = _ctx(spark, root, DAY, **identity), _ctx(spark, root, NEXT_DAY, **identity)
    wh = day.warehouse
    wh.overwrite(spark.createDataFrame(DAY_EVENTS, BRONZE_EVENTS_SCHEMA), tables.BRONZE_EVENTS, partition_by=["run_date"])
    wh.overwrite(spark.createDataFrame(DAY_CUSTOMERS, BRONZE_CUSTOMERS_SCHEMA), tables.BRONZE_CUSTOMERS,
                 partition_by=["run_date"])
    out = {}
    _stitch_and_snapshot(spark, out, "day", day, False)
    wh.append(spark.createDataFrame(NEXT_DAY_EVENTS, BRONZE_EVENTS_SCHEMA), tables.BRONZE_EVENTS, partition_by=["run_date"])
    _stitch_and_snapshot(spark, out, "next", next_day, False)
    return out, next_day


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    """Stitch D (full), D+1 (incremental), D+1 again, D+1 --full; snapshots of every table."""
    out, next_day = _two_nights(spark, tmp_path_factory.mktemp("stitch") / "warehouse")
    _stitch_and_snapshot(spark, out, "rerun", next_day, False)
    _stitch_and_snapshot(spark, out, "full", next_day, True)
    out["ctx"] = next_day
    return out


def _map(spark, rows):
    return spark.createDataFrame(rows, "identifier_type string, identifier_value string, customer_id string")


DAY_MAP = [("user_id", k, k) for k in JUNK] + [
    ("user_id", "u1", "u1"), ("anonymous_id", "a_dev", "u1"), ("email", "one@x.com", "u1"), ("phone", "+15551002000", "u1"),
    ("user_id", "u2", "u2"),
    ("user_id", "u3", "u3"), ("anonymous_id", "a3", "u3"), ("email", "chain@x.com", "u3"),
    ("user_id", "u4", "u4"), ("anonymous_id", "a4", "u4"),
    ("anonymous_id", "a9", fresh("anonymous_id:a9")),
    ("anonymous_id", "a10", fresh("anonymous_id:a10")),
    ("anonymous_id", "a11", fresh("anonymous_id:a11")),
    # a12 and the phone are both first seen by m12; the tie goes to the type name (anonymous_id).
    ("anonymous_id", "a12", fresh("anonymous_id:a12")), ("anonymous_id", "a13", fresh("anonymous_id:a12")),
    ("phone", SHARED_PHONE, fresh("anonymous_id:a12")),
]
# D+1: a9+a10 merge (older a9 keeps its id), a11 is identified as u11, the shared phone becomes a
# hub (HUB_CAP + 1 user ids) and is dropped, splitting a12 / a13; u1 gains a1b.
CHANGED = {"a10", "a11", "a13", SHARED_PHONE}
NEXT_MAP = [r for r in DAY_MAP if r[1] not in CHANGED] + [
    ("anonymous_id", "a10", fresh("anonymous_id:a9")), ("email", "nine@x.com", fresh("anonymous_id:a9")),
    ("user_id", "u11", "u11"), ("anonymous_id", "a11", "u11"),
    ("anonymous_id", "a13", fresh("anonymous_id:a13")),
    ("anonymous_id", "a1b", "u1"),
    *[("user_id", f"u5{i}", f"u5{i}") for i in range(1, HUB_CAP + 2)],
]


def test_day_identity_map_junk_merges_nobody_and_limits_cut(spark, runs):
    got = runs[f"day:{tables.IDENTITY_MAP}"].select(*MAP_COLUMNS)
    assert_df_equality(got, _map(spark, DAY_MAP), ignore_row_order=True, ignore_nullable=True)


def test_day_audit_names_every_removal(spark, runs):
    expected = spark.createDataFrame(
        [
            (DAY, "hub_cap", "email", SHARED_EMAIL, None, None, f"linked to {JUNK_CUSTOMERS} user ids (cap {HUB_CAP})"),
            (DAY, "blocked_pattern", "phone", "+10000000000", None, None, None),
            (DAY, "limit:user_id", "anonymous_id", "a_dev", "user_id", "u2", "would join user_id:u1 and user_id:u2"),
            (DAY, "limit:user_id", "anonymous_id", "a4", "email", "chain@x.com", "would join user_id:u3 and user_id:u4"),
        ],
        AUDIT_SCHEMA,
    )
    assert_df_equality(runs[f"day:{tables.IDENTITY_AUDIT}"], expected, ignore_row_order=True, ignore_nullable=True)


def test_incremental_run_keeps_untouched_ids_and_records_merges_and_split(spark, runs):
    assert runs["next:result"].metrics["mode"] == "incremental"
    assert runs["next:result"].metrics["recomputed_identifiers"] < len(DAY_MAP)
    got = runs[f"next:{tables.IDENTITY_MAP}"].select(*MAP_COLUMNS)
    assert_df_equality(got, _map(spark, NEXT_MAP), ignore_row_order=True, ignore_nullable=True)
    lineage = spark.createDataFrame(
        [
            (NEXT_DAY, fresh("anonymous_id:a10"), fresh("anonymous_id:a9"), "merge"),
            (NEXT_DAY, fresh("anonymous_id:a11"), "u11", "merge"),
            (NEXT_DAY, fresh("anonymous_id:a12"), fresh("anonymous_id:a13"), "split"),
        ],
        LINEAGE_SCHEMA,
    )
    assert_df_equality(runs[f"next:{tables.IDENTITY_LINEAGE}"], lineage, ignore_row_order=True, ignore_nullable=True)


def test_incremental_audit_adds_the_new_hub_and_the_recomputed_cut(spark, runs):
    new_rows = runs[f"next:{tables.IDENTITY_AUDIT}"].where(f"run_date = '{NEXT_DAY}'")
    expected = spark.createDataFrame(
        [
            (NEXT_DAY, "hub_cap", "phone", SHARED_PHONE, None, None, f"linked to {HUB_CAP + 1} user ids (cap {HUB_CAP})"),
            # u1's component (with u2) was recomputed because u1 gained a1b.
            (NEXT_DAY, "limit:user_id", "anonymous_id", "a_dev", "user_id", "u2", "would join user_id:u1 and user_id:u2"),
        ],
        AUDIT_SCHEMA,
    )
    assert_df_equality(new_rows, expected, ignore_row_order=True, ignore_nullable=True)


def test_rerunning_a_date_changes_nothing(runs):
    for table in (tables.IDENTITY_MAP, tables.IDENTITY_AUDIT, tables.IDENTITY_LINEAGE, tables.SILVER_CUSTOMERS):
        assert_df_equality(runs[f"rerun:{table}"], runs[f"next:{table}"], ignore_row_order=True)


def test_full_rebuild_equals_incremental(runs):
    assert runs["full:result"].metrics["mode"] == "full"
    # Same partition, same ids, same graph components.
    assert_df_equality(runs[f"full:{tables.IDENTITY_MAP}"], runs[f"next:{tables.IDENTITY_MAP}"], ignore_row_order=True)


def test_distributed_components_and_parquet_checkpoints_stitch_the_same_as_the_driver(spark, tmp_path_factory, runs):
    """The same two nights with every connected-components run forced onto the distributed path,
    in two-edge buckets (several buckets and rounds even on these few edges), and every intermediate
    result and round kept as Parquet files (identity.checkpoints, the cluster config's choice)
    instead of local checkpoints: every table equal, and the files gone after each run."""
    root = tmp_path_factory.mktemp("stitch_distributed") / "warehouse"
    out, _ = _two_nights(spark, root, local_threshold=0, partition_edges=2, checkpoints="parquet")
    assert out["next:result"].metrics["components_path"] == "distributed"
    assert out["next:result"].metrics["components_rounds"] > 0
    assert list((root / "_checkpoints").iterdir()) == []
    for label in ("day", "next"):
        for table in SNAPSHOT_TABLES:
            assert_df_equality(out[f"{label}:{table}"], runs[f"{label}:{table}"], ignore_row_order=True)


def test_scratch_keeps_frames_locally_within_its_budget_and_writes_the_rest_as_files(spark, tmp_path):
    """identity.checkpoints local: a frame that fits the budget stays in executor storage (no
    file); the first that would overflow it is written as Parquet under the scratch root (as at
    bench scale L, where keeping every frame locally spilled the block manager), and so is every
    later one, however small; all read back whole, and delete() removes the files."""
    from jobs.core.session import cached, cached_bytes

    first = spark.createDataFrame([(i, f"id-{i}") for i in range(50)], "n long, id string")
    second = spark.createDataFrame([(i, f"other-{i}") for i in range(50, 80)], "n long, id string")
    with cached(first) as rows:
        first_bytes = cached_bytes(rows)
    root = tmp_path / "scratch"
    scratch = stitch.Scratch(spark, str(root), "local")
    assert scratch.local_budget > 0
    scratch.local_budget = first_bytes  # room for the first frame and nothing more
    kept_first = scratch.keep(first, "first")
    kept_second = scratch.keep(second, "second")
    kept_third = scratch.keep(first.where("n = 0"), "third")
    assert (scratch.local_bytes, scratch.written) == (first_bytes, ["second", "third"])
    assert sorted(p.name for p in root.iterdir()) == ["second", "third"]
    assert_df_equality(kept_first, first, ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(kept_second, second, ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(kept_third, first.where("n = 0"), ignore_row_order=True, ignore_nullable=True)
    scratch.delete()
    assert not root.exists()


def test_identity_map_has_each_surviving_identifier_once(runs):
    identity_map = runs[f"next:{tables.IDENTITY_MAP}"]
    assert identity_map.count() == identity_map.select("identifier_type", "identifier_value").distinct().count()


def _customer(customer_id, group_ids=(), **values):
    return tuple(({c: None for c in CUSTOMER_COLUMNS} | {"customer_id": customer_id} | values)[c]
                 for c in CUSTOMER_COLUMNS) + (list(group_ids),)


def test_silver_customers_survivorship(spark, runs):
    schema = SPECS[tables.SILVER_CUSTOMERS].schema
    anonymous = [fresh(f"anonymous_id:{a}") for a in ("a12", "a13")]
    expected = spark.createDataFrame(
        # The hub email is a real (shared) address and stays an attribute; the placeholder phone does not.
        [_customer(k, email=SHARED_EMAIL) for k in JUNK] + [
            # Latest master row wins per column (name, phone); state only on the older row; the
            # email only from the identify call (master rows have none).
            _customer("u1", ["g1"], customer_name="New Name", email="one@x.com", phone_number="+15551002000",
                      state="CA", consent="yes"),
            _customer("u2"), _customer("u3", ["g2"], customer_name="Three", email="chain@x.com"),
            # m05 (a4 + chain@x.com) is u4's identify call: its trait email is u4's too.
            _customer("u4", email="chain@x.com"),
            _customer("u11"), *[_customer(f"u5{i}", phone_number=SHARED_PHONE) for i in range(1, HUB_CAP + 2)],
            _customer(fresh("anonymous_id:a9"), email="nine@x.com"), *[_customer(c) for c in anonymous],
        ],
        schema,
    )
    assert_df_equality(runs[f"next:{tables.SILVER_CUSTOMERS}"], expected, ignore_row_order=True, ignore_nullable=True)


# ----------------------------------------------------------------------------------------------
# identity explain
# ----------------------------------------------------------------------------------------------


def test_explain_prints_the_shortest_chain(runs):
    lines = identity_cli.explain(runs["ctx"], "u3", " CHAIN@x.com ")  # plain values: any type, normalized
    assert lines == [
        "linked: user_id:u3 and email:chain@x.com are customer u3 (2 steps)",
        "  user_id:u3",
        f"    <- identify message m03 at 2026-01-03 10:00:00 UTC ({EVENTS_FILE}) ->",
        "  anonymous_id:a3",
        f"    <- identify message m04 at 2026-01-04 10:00:00 UTC ({EVENTS_FILE}) ->",
        "  email:chain@x.com",
    ]


def test_explain_not_linked_names_the_cut(runs):
    # The last run (D+1 --full) recomputed every component, so the latest records are of D+1.
    lines = identity_cli.explain(runs["ctx"], "user_id:u3", "user_id:u4")
    assert lines == [
        "not linked: user_id:u3 and user_id:u4 are not the same customer",
        "  customers: u3 / u4",
        "  kept apart by rule limit:user_id: the edge anonymous_id:a4 - email:chain@x.com was cut "
        f"(would join user_id:u3 and user_id:u4), recorded {NEXT_DAY}",
    ]


def test_explain_not_linked_through_removed_identifiers(runs):
    lines = identity_cli.explain(runs["ctx"], "k001", "email:" + SHARED_EMAIL)
    assert lines == [
        f"not linked: user_id:k001 and email:{SHARED_EMAIL} are not the same customer",
        f"  email:{SHARED_EMAIL} is not used for stitching: rule hub_cap "
        f"(linked to {JUNK_CUSTOMERS} user ids (cap {HUB_CAP})), recorded {NEXT_DAY}",
    ]
    lines = identity_cli.explain(runs["ctx"], "k001", "k002")
    assert lines == [
        "not linked: user_id:k001 and user_id:k002 are not the same customer",
        "  customers: k001 / k002",
        f"  both are linked to email:{SHARED_EMAIL}, which rule hub_cap removed from stitching",
        "  both are linked to phone:+10000000000, which rule blocked_pattern removed from stitching",
    ]


def test_explain_unknown_identifier_is_an_input_error(runs):
    with pytest.raises(InputError, match="unknown identifier 'nobody@x.com'"):
        identity_cli.explain(runs["ctx"], "nobody@x.com", "u1")


# ----------------------------------------------------------------------------------------------
# alias: previousId (a former userId) -> userId is a merge instruction
# ----------------------------------------------------------------------------------------------

# Hub cap 2: fam@x.com is linked to L1, U1 and w1 - three user ids but two persons, so not a hub.
ALIAS_HUB_CAP = 2
ALIAS_DAY_EVENTS = [
    ev("b01", "2026-01-01T10:00:00", "identify", user="L1", anon="a1", email="fam@x.com"),
    ev("b02", "2026-01-02T10:00:00", user="L1", anon="a1"),
    # Another user of the family email: a different person, cut from it.
    ev("b03", "2026-01-03T10:00:00", "identify", user="w1", email="fam@x.com"),
    # Two users sharing a device, no alias: stay apart.
    ev("b04", "2026-01-04T10:00:00", user="s1", anon="dev"),
    ev("b05", "2026-01-05T10:00:00", user="s2", anon="dev"),
]
ALIAS_NEXT_DAY_EVENTS = [
    ev("c01", "2026-02-01T09:00:00", "alias", user="U1", previous="L1", run_date=NEXT_DAY),
    ev("c02", "2026-02-01T10:00:00", "identify", user="U1", anon="a2", email="fam@x.com", run_date=NEXT_DAY),
]


def _day_next_and_full(spark, root, day_events, next_day_events, hub_cap=HUB_CAP) -> dict:
    """Stitch D (full), D+1 (incremental, brings `next_day_events`), D+1 --full; snapshots."""
    day, next_day = (_ctx(spark, root, d, hub_cap=hub_cap) for d in (DAY, NEXT_DAY))
    wh = day.warehouse
    wh.overwrite(spark.createDataFrame(day_events, BRONZE_EVENTS_SCHEMA), tables.BRONZE_EVENTS,
                 partition_by=["run_date"])
    out = {}
    _stitch_and_snapshot(spark, out, "day", day, False)
    wh.append(spark.createDataFrame(next_day_events, BRONZE_EVENTS_SCHEMA), tables.BRONZE_EVENTS,
              partition_by=["run_date"])
    _stitch_and_snapshot(spark, out, "next", next_day, False)
    _stitch_and_snapshot(spark, out, "full", next_day, True)
    return out


@pytest.fixture(scope="module")
def alias_runs(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("stitch_alias") / "warehouse"
    return _day_next_and_full(spark, root, ALIAS_DAY_EVENTS, ALIAS_NEXT_DAY_EVENTS, hub_cap=ALIAS_HUB_CAP)


ALIAS_SHARED_DEVICE = [("user_id", "s1", "s1"), ("anonymous_id", "dev", "s1"), ("user_id", "s2", "s2")]


def test_alias_day_before_the_alias_the_legacy_id_is_its_own_customer(spark, alias_runs):
    expected = [("user_id", "L1", "L1"), ("anonymous_id", "a1", "L1"), ("email", "fam@x.com", "L1"),
                ("user_id", "w1", "w1"), *ALIAS_SHARED_DEVICE]
    assert_df_equality(alias_runs[f"day:{tables.IDENTITY_MAP}"].select(*MAP_COLUMNS), _map(spark, expected),
                       ignore_row_order=True, ignore_nullable=True)


def test_alias_merges_the_legacy_user_id_into_the_alias_target(spark, alias_runs):
    assert alias_runs["next:result"].metrics["mode"] == "incremental"
    merged = [("user_id", "L1"), ("user_id", "U1"), ("anonymous_id", "a1"), ("anonymous_id", "a2"),
              ("email", "fam@x.com")]
    expected = [(t, v, "U1") for t, v in merged] + [("user_id", "w1", "w1"), *ALIAS_SHARED_DEVICE]
    assert_df_equality(alias_runs[f"next:{tables.IDENTITY_MAP}"].select(*MAP_COLUMNS), _map(spark, expected),
                       ignore_row_order=True, ignore_nullable=True)
    lineage = spark.createDataFrame([(NEXT_DAY, "L1", "U1", "merge")], LINEAGE_SCHEMA)
    assert_df_equality(alias_runs[f"next:{tables.IDENTITY_LINEAGE}"], lineage, ignore_row_order=True,
                       ignore_nullable=True)
    customers = alias_runs[f"next:{tables.SILVER_CUSTOMERS}"]
    assert sorted(r.customer_id for r in customers.select("customer_id").collect()) == ["U1", "s1", "s2", "w1"]


def test_alias_edge_is_never_cut_but_other_users_and_shared_devices_still_are(spark, alias_runs):
    expected = spark.createDataFrame(
        [
            (DAY, "limit:user_id", "email", "fam@x.com", "user_id", "w1", "would join user_id:L1 and user_id:w1"),
            (DAY, "limit:user_id", "anonymous_id", "dev", "user_id", "s2", "would join user_id:s1 and user_id:s2"),
            # L1's component was recomputed with the alias: only w1's link is cut, not L1 - U1.
            (NEXT_DAY, "limit:user_id", "email", "fam@x.com", "user_id", "w1",
             "would join user_id:L1 and user_id:U1 and user_id:w1"),
            # The explicit merge of two user ids is recorded.
            (NEXT_DAY, "alias_merge", "user_id", "L1", "user_id", "U1", ALIAS_MERGE_DETAIL),
        ],
        AUDIT_SCHEMA,
    )
    assert_df_equality(alias_runs[f"next:{tables.IDENTITY_AUDIT}"], expected, ignore_row_order=True,
                       ignore_nullable=True)


def test_alias_full_rebuild_equals_incremental(alias_runs):
    assert alias_runs["full:result"].metrics["mode"] == "full"
    assert_df_equality(alias_runs[f"full:{tables.IDENTITY_MAP}"], alias_runs[f"next:{tables.IDENTITY_MAP}"],
                       ignore_row_order=True)


ALIAS_MERGE_DETAIL = ("alias call: previousId (a former userId) and userId are one person, counted once by "
                      "identity.limits; the edge is never cut")

# ----------------------------------------------------------------------------------------------
# alias: previousId = the anonymousId the visitor browsed under (Segment's login pattern), or a
# value seen as neither type (an anonymous_id until it is seen as a userId)
# ----------------------------------------------------------------------------------------------

LOGIN_DAY_EVENTS = [
    ev("v01", "2026-01-05T10:00:00", "page", anon="v1"),
    ev("v02", "2026-01-05T10:05:00", anon="v1"),
    ev("v03", "2026-01-05T10:09:00", "alias", user="U7", previous="v1"),
    ev("v04", "2026-01-05T10:10:00", user="U7"),
    ev("v05", "2026-01-06T10:00:00", "alias", user="U8", previous="ghost"),
]
LOGIN_NEXT_DAY_EVENTS = [
    # "ghost" shows up as a userId: the alias now merges two user ids instead.
    ev("w01", "2026-02-01T10:00:00", user="ghost", run_date=NEXT_DAY),
]


@pytest.fixture(scope="module")
def login_alias_runs(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("stitch_login_alias") / "warehouse"
    return _day_next_and_full(spark, root, LOGIN_DAY_EVENTS, LOGIN_NEXT_DAY_EVENTS)


def test_login_alias_joins_the_anonymous_history_and_an_unseen_previous_id_is_anonymous(spark, login_alias_runs):
    expected = [("anonymous_id", "v1", "U7"), ("user_id", "U7", "U7"),
                ("anonymous_id", "ghost", "U8"), ("user_id", "U8", "U8")]
    assert_df_equality(login_alias_runs[f"day:{tables.IDENTITY_MAP}"].select(*MAP_COLUMNS), _map(spark, expected),
                       ignore_row_order=True, ignore_nullable=True)
    assert login_alias_runs[f"day:{tables.IDENTITY_AUDIT}"].count() == 0


def test_previous_id_later_seen_as_a_user_id_becomes_a_merge_of_two_user_ids(spark, login_alias_runs):
    expected = [("anonymous_id", "v1", "U7"), ("user_id", "U7", "U7"),
                ("user_id", "ghost", "U8"), ("user_id", "U8", "U8")]
    for run in ("next", "full"):
        assert_df_equality(login_alias_runs[f"{run}:{tables.IDENTITY_MAP}"].select(*MAP_COLUMNS),
                           _map(spark, expected), ignore_row_order=True, ignore_nullable=True)
    audit = spark.createDataFrame([(NEXT_DAY, "alias_merge", "user_id", "ghost", "user_id", "U8", ALIAS_MERGE_DETAIL)],
                                  AUDIT_SCHEMA)
    assert_df_equality(login_alias_runs[f"next:{tables.IDENTITY_AUDIT}"], audit, ignore_row_order=True,
                       ignore_nullable=True)
    assert_df_equality(login_alias_runs[f"full:{tables.IDENTITY_MAP}"], login_alias_runs[f"next:{tables.IDENTITY_MAP}"],
                       ignore_row_order=True)


KEY_SCHEMA = "identifier_type string, identifier_value string"


def edge_evidence_rows(spark, ends: list[tuple[str, str, str, str]]):
    """silver/identity_edges rows of the given (a_type, a_value, b_type, b_value) ends, one
    observation each."""
    seen = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    return spark.createDataFrame([(*e, seen, seen, "track", f"m{i}", EVENTS_FILE, DAY) for i, e in enumerate(ends)],
                                 SPECS[tables.IDENTITY_EDGES].schema)


def test_a_full_build_computes_the_edges_vertex_ids_as_the_lookup_gives_them(spark):
    """with_hashed_vertex_ids (a full build without hash collisions) = with_vertex_ids: the edges of
    a removed identifier are dropped and both ends get the vertex ids assign_vertex_ids gave."""
    from jobs.identity import graph

    edge_rows = [("anonymous_id", "a1", "user_id", "u1"), ("email", "e@x.com", "user_id", "u1"),
                 ("anonymous_id", "a2", "email", "e@x.com"), ("email", "hub@x.com", "user_id", "u1"),
                 ("anonymous_id", "a2", "email", "hub@x.com")]
    edges = edge_evidence_rows(spark, edge_rows)
    removed = spark.createDataFrame([("email", "hub@x.com")], KEY_SCHEMA)
    ends = {(t, v) for a_t, a_v, b_t, b_v in edge_rows for t, v in ((a_t, a_v), (b_t, b_v))}
    vertices = graph.assign_vertex_ids(spark.createDataFrame(sorted(ends), KEY_SCHEMA)
                                       .join(removed, ["identifier_type", "identifier_value"], "left_anti"))
    assert graph.vertex_ids_unsalted(vertices)
    got = stitch.with_hashed_vertex_ids(edges, removed)
    assert got.count() == 3
    assert_df_equality(got, stitch.with_vertex_ids(edges, vertices), ignore_row_order=True, ignore_nullable=True)


def test_edges_touching_keeps_each_edge_with_an_end_among_the_keys_once(spark):
    """An incremental scope's stored edges: every edge with its a end or its b end (or both) among
    the keys, each once; edges with neither end among them are left out."""
    edge_rows = [("anonymous_id", "a1", "user_id", "u1"), ("email", "e@x.com", "user_id", "u1"),
                 ("anonymous_id", "a2", "email", "e@x.com"), ("anonymous_id", "a2", "user_id", "u1"),
                 ("anonymous_id", "a9", "user_id", "u9")]
    edges = edge_evidence_rows(spark, edge_rows)
    key_rows = [("user_id", "u1"), ("anonymous_id", "a2")]
    keys = spark.createDataFrame(key_rows, KEY_SCHEMA)
    expected = [e for e in edge_rows if e[:2] in key_rows or e[2:] in key_rows]
    assert len(expected) == 4
    got = stitch.edges_touching(edges, keys)
    assert sorted(tuple(r) for r in got.select("a_type", "a_value", "b_type", "b_value").collect()) == sorted(expected)
    assert got.columns == edges.columns


@pytest.mark.parametrize("materialised", [False, True], ids=["planned", "kept"])
def test_scope_is_the_touched_keys_and_every_member_of_their_components(spark, materialised):
    """scope_of: the touched identifiers (a new one too, in no component yet) and all members of
    the components any of them belongs to, each once; other components stay out. The same when its
    intermediate sets are materialised (stitch passes Scratch.keep)."""
    map_rows = [("user_id", "u1", "c1", 1), ("anonymous_id", "a1", "c1", 1), ("email", "e@x.com", "c1", 1),
                ("user_id", "u2", "c2", 2), ("anonymous_id", "a2", "c2", 2),
                ("user_id", "u3", "c3", 3), ("anonymous_id", "a3", "c3", 3)]
    identity_map = spark.createDataFrame(map_rows, "identifier_type string, identifier_value string, "
                                                   "customer_id string, component long")
    touched_rows = [("anonymous_id", "a1"), ("anonymous_id", "a1"), ("anonymous_id", "new"), ("user_id", "u3")]
    touched = spark.createDataFrame(touched_rows, KEY_SCHEMA)
    components = {c for t, v, _, c in map_rows if (t, v) in touched_rows}
    expected = sorted(set(touched_rows) | {(t, v) for t, v, _, c in map_rows if c in components})
    keep = (lambda df, name: df.localCheckpoint(eager=True)) if materialised else stitch.kept_as_is
    got = stitch.scope_of(touched, identity_map, keep=keep)
    assert sorted(tuple(r) for r in got.collect()) == expected
    assert len(expected) == 6
