"""gold/groups, gold/group_members and gold/group_membership_history from group and identify calls."""
from __future__ import annotations

import datetime as dt

import pytest

from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.core import tables
from jobs.core.catalog import SPECS
from jobs.core.context import RunParams
from jobs.groups import stage as groups
from jobs.groups.settings import GroupSettings
from jobs.core.config import load_config
from jobs.core.errors import ConfigError
from jobs.identity.profile_calls import profile_calls
from tests.jobs.event_builders import bronze_events, event, identity_map, utc

CALLS = [
    # Blueshift's own payload spellings (firstname, phone_number) and Segment's (firstName)
    event("g1", "group", "2026-01-02 10:00", user="u1", group="G1",
          traits={"name": "Smith household", "email": " Bills@Smith.ORG ", "firstname": "Ann",
                  "phone_number": "(555) 010-0001", "plan": "family", "income": 70000}),
    event("g2", "group", "2026-01-05 10:00", user="u2", group="G1",
          traits={"firstName": "Anne", "income": 82000, "email": None}),
    # an older call arriving late does not win over newer values
    event("g0", "group", "2026-01-01 10:00", anon="a3", group="G1", traits={"name": "Old name", "lastName": "Smith"}),
    event("i1", "identify", "2026-01-03 10:00", user="u4", group="G2", traits={"email": "kid@x.com"}),
    event("i2", "identify", "2026-01-06 10:00", user="u1", group="G1"),
    event("t1", "track", "2026-01-06 11:00", user="u5", group="G3", name="Bill Paid"),
]
IDMAP_CUSTOMERS = {"C1": ["u1"], "C2": ["u2"], "C4": ["u4"]}
IDMAP_ANONYMOUS = {"C3": ["a3"]}


def comparable(df, map_column):
    """Maps cannot be sorted or hashed; compare them as sorted (key, value) arrays."""
    return df.withColumn(map_column, F.array_sort(F.map_entries(map_column)))


def test_group_attributes_most_recent_value_wins_per_attribute(spark):
    got = groups.build_groups(bronze_events(spark, CALLS).transform(profile_calls))
    expected = spark.createDataFrame(
        [("G1", "bills@smith.org", "+15550100001", "Anne", "Smith", "Smith household",
          {"plan": "family", "income": "82000"}, utc("2026-01-05 10:00")),
         ("G2", None, None, None, None, None, {}, None)],
        SPECS[tables.GROUPS].schema,
    )
    assert_df_equality(comparable(got, "custom_traits"), comparable(expected, "custom_traits"),
                       ignore_row_order=True, ignore_nullable=True)


def test_members_from_group_calls_and_identify_with_group_id(spark):
    idmap = identity_map(spark, IDMAP_CUSTOMERS, anonymous=IDMAP_ANONYMOUS)
    got = groups.current_members(groups.build_membership_history(bronze_events(spark, CALLS).transform(profile_calls),
                                                                 idmap, dt.date(2026, 1, 31)))
    # a track with a groupId makes a group event, not a member (u5/G3 absent)
    expected = spark.createDataFrame(
        [("G1", "C1", dt.date(2026, 1, 2), "group"),
         ("G1", "C2", dt.date(2026, 1, 5), "group"),
         ("G1", "C3", dt.date(2026, 1, 1), "group"),
         ("G2", "C4", dt.date(2026, 1, 3), "identify")],
        SPECS[tables.GROUP_MEMBERS].schema,
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_groups_command_writes_both_tables(spark, make_ctx):
    ctx = make_ctx("2026-01-31")
    ctx.warehouse.overwrite(bronze_events(spark, CALLS).transform(profile_calls), tables.PROFILE_CALLS)
    ctx.warehouse.overwrite(identity_map(spark, IDMAP_CUSTOMERS, anonymous=IDMAP_ANONYMOUS), tables.IDENTITY_MAP)
    result = groups.run(ctx, RunParams())
    assert result.metrics == {"groups": 2, "group_members": 4, "membership_stints": 4}
    assert ctx.warehouse.read(spark, tables.GROUP_MEMBERS).schema == SPECS[tables.GROUP_MEMBERS].schema


# ----------------------------------------------------------------------------------------------
# leaving a group: leave calls, memberships that lapse, and the history of stints
# ----------------------------------------------------------------------------------------------

LEAVING_RUN_DATE = dt.date(2026, 3, 31)
LEAVING = [
    # C1 joins, leaves with the leave call (which also renames the group), joins again
    event("a1", "group", "2026-01-02 10:00", user="u1", group="H1", traits={"name": "Smiths"}),
    event("a2", "group", "2026-01-25 10:00", user="u1", group="H1", traits={"name": "Smith home", "removed": True}),
    event("a3", "group", "2026-03-05 10:00", user="u1", group="H1"),
    # C2 joins by identify, reconfirms on 01-20, then nothing: lapses 31 days after (30 days allowed)
    event("b1", "identify", "2026-01-05 10:00", user="u2", group="H1"),
    event("b2", "group", "2026-01-20 10:00", user="u2", group="H1"),
    # C3 joins H1; its leave call for H2, which it never joined, ends nothing
    event("c1", "group", "2026-03-01 10:00", user="u3", group="H1"),
    event("c2", "group", "2026-03-02 10:00", user="u3", group="H2", traits={"removed": "TRUE"}),
    # C4: 68 days between two calls: the first stint lapsed, the second is open
    event("d1", "group", "2026-01-01 10:00", user="u4", group="H1"),
    event("d2", "group", "2026-03-10 10:00", user="u4", group="H1"),
    # C5's leave call comes after its membership lapsed: it lapsed first
    event("e1", "group", "2026-01-10 10:00", user="u5", group="H1"),
    event("e2", "group", "2026-03-20 10:00", user="u5", group="H1", traits={"removed": True}),
    # C6: removed false is no leave call
    event("f1", "group", "2026-03-15 10:00", user="u6", group="H1", traits={"removed": False}),
]
LEAVING_IDMAP = {f"C{i}": [f"u{i}"] for i in range(1, 7)}
HISTORY_DDL = ("group_id string, customer_id string, joined_on date, joined_at timestamp, left_on date, left_by string, "
               "source string")


def _day(text):
    return dt.date.fromisoformat(text) if text else None


def _history(spark, settings):
    calls = bronze_events(spark, LEAVING).transform(profile_calls)
    return groups.build_membership_history(calls, identity_map(spark, LEAVING_IDMAP), LEAVING_RUN_DATE, settings)


@pytest.mark.parametrize(("settings", "rows"), [
    (GroupSettings(leave_trait="removed", membership_days=30), [
        ("C1", "2026-01-02", "2026-01-25", "leave_call"), ("C1", "2026-03-05", None, None),
        ("C2", "2026-01-05", "2026-02-20", "not_reconfirmed"),
        ("C3", "2026-03-01", None, None),
        ("C4", "2026-01-01", "2026-02-01", "not_reconfirmed"), ("C4", "2026-03-10", None, None),
        ("C5", "2026-01-10", "2026-02-10", "not_reconfirmed"),
        ("C6", "2026-03-15", None, None)]),
    (GroupSettings(leave_trait="removed"), [
        ("C1", "2026-01-02", "2026-01-25", "leave_call"), ("C1", "2026-03-05", None, None),
        ("C2", "2026-01-05", None, None), ("C3", "2026-03-01", None, None), ("C4", "2026-01-01", None, None),
        ("C5", "2026-01-10", "2026-03-20", "leave_call"), ("C6", "2026-03-15", None, None)]),
    # the default: memberships never end, and `removed` is only a group trait (C3 joins H2 with it)
    (GroupSettings(), [
        ("C1", "2026-01-02", None, None), ("C2", "2026-01-05", None, None), ("C3", "2026-03-01", None, None),
        ("C4", "2026-01-01", None, None), ("C5", "2026-01-10", None, None), ("C6", "2026-03-15", None, None),
        ("C3@H2", "2026-03-02", None, None)]),
])
def test_membership_stints_end_by_a_leave_call_or_a_lapse(spark, settings, rows):
    # C2 joined by identify on 01-05; every other stint starts with a group call
    expected = spark.createDataFrame(
        [(("H2" if "@" in c else "H1"), c.split("@")[0], _day(joined), utc(f"{joined} 10:00"), _day(left), by,
          "identify" if (c, joined) == ("C2", "2026-01-05") else "group")
         for c, joined, left, by in rows], HISTORY_DDL)
    history = _history(spark, settings)
    assert_df_equality(history, expected, ignore_row_order=True, ignore_nullable=True)
    # gold/group_members: the open stints
    assert_df_equality(groups.current_members(history),
                       expected.filter(F.col("left_on").isNull()).select("group_id", "customer_id", "joined_on", "source"),
                       ignore_row_order=True, ignore_nullable=True)


def test_two_stints_on_one_day_and_calls_after_the_run_date(spark):
    # C1 joins, leaves and joins again on 03-20; C2's only call and C1's leave call are stamped after
    # the run date (03-31) but have arrived: they count on the run date
    calls = [event("x1", "group", "2026-03-20 08:00", user="u1", group="H1"),
             event("x2", "group", "2026-03-20 10:00", user="u1", group="H1", traits={"removed": True}),
             event("x3", "group", "2026-03-20 12:00", user="u1", group="H1"),
             event("y1", "group", "2026-04-02 09:00", user="u2", group="H1"),
             event("x4", "group", "2026-04-03 09:00", user="u1", group="H1", traits={"removed": True})]
    history = groups.build_membership_history(bronze_events(spark, calls).transform(profile_calls),
                                              identity_map(spark, LEAVING_IDMAP), LEAVING_RUN_DATE,
                                              GroupSettings(leave_trait="removed"))
    day = dt.date(2026, 3, 20)
    expected = spark.createDataFrame(
        [("H1", "C1", day, utc("2026-03-20 08:00"), day, "leave_call", "group"),
         ("H1", "C1", day, utc("2026-03-20 12:00"), LEAVING_RUN_DATE, "leave_call", "group"),
         ("H1", "C2", LEAVING_RUN_DATE, utc("2026-04-02 09:00"), None, None, "group")], HISTORY_DDL)
    assert_df_equality(history, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize("membership_days", [None, 10])
def test_membership_stints_agree_with_the_reference_on_random_calls(spark, membership_days):
    import random

    from tests.reference import c360_reference as R

    rng = random.Random(membership_days or 0)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    events, calls = [], []
    for n in range(300):
        group, user = f"H{rng.randrange(3)}", f"u{rng.randrange(6)}"
        kind = rng.choice(["group", "group", "identify", "leave"])
        # whole hours over 80 days: same-day calls, ties on the lapse day, long gaps
        at = start + dt.timedelta(hours=rng.randrange(90 * 24) // 6 * 6)  # some after the run date
        text = at.strftime("%Y-%m-%d %H:%M")
        leaves = kind == "leave"
        events.append(event(f"m{n:03d}", "identify" if kind == "identify" else "group", text, user=user, group=group,
                            traits={"removed": True} if leaves else None))
        calls.append(R.MembershipCall(group, f"C{user[1:]}", at, f"m{n:03d}", "identify" if kind == "identify" else "group",
                                      leaves))
    run_date = dt.date(2026, 3, 25)
    settings = GroupSettings(leave_trait="removed", membership_days=membership_days)
    history = groups.build_membership_history(bronze_events(spark, events).transform(profile_calls),
                                              identity_map(spark, {f"C{i}": [f"u{i}"] for i in range(6)}),
                                              run_date, settings)
    # joined_at as UTC text, the reference's aware datetimes likewise
    got = {tuple(r) for r in history.withColumn("joined_at", F.date_format("joined_at", "yyyy-MM-dd HH:mm")).collect()}
    expected = {(*r[:3], r[3].strftime("%Y-%m-%d %H:%M"), *r[4:])
                for r in R.membership_stints(calls, run_date, membership_days)}
    assert got == expected
    # (group_id, customer_id, joined_at) names one stint, also when two start on one day
    assert history.select("group_id", "customer_id", "joined_at").distinct().count() == history.count() == len(got)
    assert len({r for r in expected if r[5] == "leave_call"}) > 5, expected  # the draw exercises both ends
    if membership_days:
        assert len({r for r in expected if r[5] == "not_reconfirmed"}) > 5, expected


def test_the_leave_trait_is_not_a_group_trait(spark):
    # without a leave trait, `removed` is a custom trait like any other (C5's call of 03-20 is the latest)
    calls = bronze_events(spark, LEAVING).transform(profile_calls)
    left = groups.build_groups(calls, settings=GroupSettings(leave_trait="removed"))
    kept = groups.build_groups(calls)
    assert {r.group_id: (r.name, dict(r.custom_traits)) for r in left.collect()} == {
        "H1": ("Smith home", {}), "H2": (None, {})}
    assert {r.group_id: (r.name, dict(r.custom_traits)) for r in kept.collect()} == {
        "H1": ("Smith home", {"removed": "true"}), "H2": (None, {"removed": "TRUE"})}


def test_the_groups_command_writes_the_history(spark, make_ctx):
    ctx = make_ctx("2026-03-31", groups=GroupSettings(leave_trait="removed", membership_days=30))
    ctx.warehouse.overwrite(bronze_events(spark, LEAVING).transform(profile_calls), tables.PROFILE_CALLS)
    ctx.warehouse.overwrite(identity_map(spark, LEAVING_IDMAP), tables.IDENTITY_MAP)
    assert groups.run(ctx, RunParams()).metrics == {"groups": 2, "group_members": 4, "membership_stints": 8}
    history = ctx.warehouse.read(spark, tables.GROUP_MEMBERSHIP_HISTORY)
    assert history.schema == SPECS[tables.GROUP_MEMBERSHIP_HISTORY].schema
    assert sorted(r.customer_id for r in ctx.warehouse.read(spark, tables.GROUP_MEMBERS).collect()) == [
        "C1", "C3", "C4", "C6"]


@pytest.mark.parametrize(("body", "message"), [
    ("{membership_days: 0}", r"'groups\.membership_days' must be at least 1"),
    ("{leave_trait: ' '}", r"'groups\.leave_trait' must be a trait name"),
    ("{leave: removed}", r"unknown key 'groups\.leave' \(did you mean 'groups\.leave_trait'\?\)"),
])
def test_group_settings_mistakes_name_the_key(tmp_path, body, message):
    path = tmp_path / "groups.yml"
    path.write_text(f"groups: {body}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)
