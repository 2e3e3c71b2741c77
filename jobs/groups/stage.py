"""Customer groups (households, billing accounts, B2B accounts) after Blueshift's customer groups.

- A `group` call creates or updates a group: standard attributes email, phone, first_name,
  last_name, name, plus any custom traits. Per attribute the most recent non-null value wins
  (by timestamp, then messageId), so a later call that omits an attribute does not erase it.
- The user making a `group` call becomes a member; an `identify` with a groupId (top level or
  context.groupId) also adds membership. Members are stitched customers (jobs.identity.resolution).
  The Segment spec has no "leave group" call, so a membership never ends unless configured
  (`groups:`, jobs/groups/settings.py): a group call with the leave trait set to true ends the
  caller's membership on its date, and a membership not reconfirmed within `membership_days` ends
  after them. A later call joins again: every stint is kept in gold/group_membership_history, and
  gold/group_members holds the open ones.
- Group attributes apply to every member: segments filter customers on them (`group.<attribute>`,
  jobs.segments).

Tables: gold/groups (one row per group), gold/group_members (group × current member),
gold/group_membership_history (group × customer × stint). All are rebuilt on
each run from silver/profile_calls (bronze's identify and group calls, kept by stitch: small next to
the event stream); `c360 activities` builds them, and `c360 groups` rebuilds them alone.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.core import tables
from jobs.core.catalog import SPECS
from jobs.core.context import JobContext, RunParams, StageResult
from jobs.groups.settings import GroupSettings
from jobs.identity.identifiers import normalize_email, normalize_id
from jobs.identity.phones import DEFAULT_PHONE_REGION, with_e164
from jobs.identity.profile_calls import GROUP_CALL, IDENTIFY_CALL, TRAITS_MAP, read_profile_calls
from jobs.identity.resolution import resolve_customer_id


STANDARD_ATTRIBUTES = ("email", "phone", "first_name", "last_name", "name")
# Trait keys (lower-cased, without separators) that mean a standard attribute; Blueshift's own
# payloads use `firstname` and `phone_number`, Segment's use `firstName` and `phone`.
STANDARD_TRAIT_KEYS = {
    "email": "email",
    "emailaddress": "email",
    "phone": "phone",
    "phonenumber": "phone",
    "firstname": "first_name",
    "lastname": "last_name",
    "name": "name",
}



# How a membership stint ended (gold/group_membership_history.left_by).
LEFT_BY_CALL = "leave_call"
LEFT_BY_LAPSE = "not_reconfirmed"
TRUE_TEXT = "true"


def group_calls(calls: DataFrame) -> DataFrame:
    return calls.filter((F.col("type") == GROUP_CALL) & F.col("group_id").isNotNull())


def is_leave_call(leave_trait: str | None) -> Column:
    """A group call whose traits set the leave trait to true (JSON true or the text "true")."""
    if leave_trait is None:
        return F.lit(False)
    value = F.lower(F.trim(F.col("group_traits")[leave_trait]))
    return (F.col("type") == GROUP_CALL) & F.coalesce(value == F.lit(TRUE_TEXT), F.lit(False))


def membership_evidence(calls: DataFrame, leave_trait: str | None = None) -> DataFrame:
    """Group calls and identify-with-groupId calls (silver/profile_calls rows): who joined which
    group, when, how; `_leaves` marks a leave call (GroupSettings.leave_trait)."""
    joins_group = (F.col("type") == GROUP_CALL) | (F.col("type") == IDENTIFY_CALL)
    return calls.filter(joins_group & F.col("group_id").isNotNull()).select(
        "group_id", "user_id", "anonymous_id", "timestamp", "message_id", F.col("type").alias("source"),
        is_leave_call(leave_trait).alias("_leaves"),
    )


def latest_group_traits(calls: DataFrame, leave_trait: str | None = None) -> DataFrame:
    """(group_id, trait, value): per trait the value of the latest group call that set it (the leave
    trait is the caller's, not the group's: never a group trait)."""
    key = F.lower(F.regexp_replace("trait_key", r"[^A-Za-z0-9]", ""))
    standard = F.create_map(*[F.lit(x) for pair in STANDARD_TRAIT_KEYS.items() for x in pair])
    return (
        group_calls(calls)
        .select("group_id", "timestamp", "message_id", F.explode("group_traits").alias("trait_key", "value"))
        .filter(F.col("value").isNotNull() & (F.lit(leave_trait is None) | (F.col("trait_key") != F.lit(leave_trait))))
        .withColumn("trait", F.coalesce(standard[key], F.col("trait_key")))
        .groupBy("group_id", "trait")
        .agg(F.max_by("value", F.struct("timestamp", "message_id")).alias("value"))
    )


def build_groups(calls: DataFrame, phone_region: str = DEFAULT_PHONE_REGION,
                 settings: GroupSettings = GroupSettings()) -> DataFrame:
    """gold/groups from silver/profile_calls rows: every group named by a group call or an
    identify-with-groupId (phone in E.164)."""
    traits = (
        latest_group_traits(calls, settings.leave_trait)
        .groupBy("group_id")
        .agg(F.map_from_entries(F.collect_list(F.struct("trait", "value"))).alias("traits"))
    )
    updated = group_calls(calls).groupBy("group_id").agg(F.max("timestamp").alias("updated_at"))
    known = membership_evidence(calls).select("group_id").distinct()
    standard = F.array(*[F.lit(a) for a in STANDARD_ATTRIBUTES])
    return (
        known.join(traits, on="group_id", how="left")
        .join(updated, on="group_id", how="left")
        .select(
            "group_id",
            normalize_email(F.col("traits")["email"]).alias("email"),
            normalize_id(F.col("traits")["phone"]).alias("phone"),
            F.col("traits")["first_name"].alias("first_name"),
            F.col("traits")["last_name"].alias("last_name"),
            F.col("traits")["name"].alias("name"),
            F.coalesce(
                F.map_filter("traits", lambda k, _: ~F.array_contains(standard, k)),
                F.create_map().cast(TRAITS_MAP),
            ).alias("custom_traits"),
            "updated_at",
        )
        .transform(lambda groups: with_e164(groups, "phone", phone_region))
    )


def build_membership_history(calls: DataFrame, identity_map: DataFrame, run_date: dt.date,
                             settings: GroupSettings = GroupSettings()) -> DataFrame:
    """gold/group_membership_history from silver/profile_calls rows (up to the run date): one row per
    stint of a stitched customer in a group. A stint starts at a joining call (a group call, or an
    identify with the groupId) when the customer is no member; it ends at the first leave call after
    it (left_on = its date, left_by leave_call) or, with membership_days N, on day d + N + 1 when its
    latest joining call, on day d, was not followed by another within N days (not_reconfirmed),
    whichever comes first; left_on null = a current member. Calls in order of time, then message_id,
    each on its timestamp's date, or on the run date when stamped later (it has arrived: identity
    and membership count every call ingested, and nothing then ends after the run date); joined_at,
    the stint's first call, names a stint (two can start on one day)."""
    order = Window.partitionBy("group_id", "customer_id").orderBy("timestamp", "message_id")
    days = settings.membership_days
    joins, leaves = ~F.col("_leaves"), F.col("_leaves")  # a stint's rows: joining calls, then leave calls
    day = F.col("_day")
    # the latest joining call before this one (its day), within the stint or not
    previous_join = F.max(F.when(joins, day)).over(order.rowsBetween(Window.unboundedPreceding, -1))
    lapsed = F.lit(False) if days is None else F.datediff(day, previous_join) > days
    starts = joins & (F.coalesce(F.lag("_leaves").over(order), F.lit(True)) | F.coalesce(lapsed, F.lit(False)))
    evidence = (
        membership_evidence(calls, settings.leave_trait)
        .withColumn("_day", F.least(F.to_date("timestamp"), F.lit(run_date)))
        .transform(lambda df: resolve_customer_id(df, identity_map))
        .filter(F.col("customer_id").isNotNull())
        .withColumn("_starts", starts)
        .withColumn("_stint", F.sum(F.col("_starts").cast("int")).over(order.rowsBetween(Window.unboundedPreceding, 0)))
        .filter(F.col("_stint") > 0)  # a leave call of a customer who never joined ends nothing
    )
    stints = evidence.groupBy("group_id", "customer_id", "_stint").agg(
        F.min(F.when(joins, F.col("timestamp"))).alias("first_ts"),
        F.min(F.when(joins, day)).alias("_first_join"),
        # the call that started the stint; a group call wins a tie with an identify
        F.min_by("source", F.struct("_leaves", "timestamp", "source")).alias("source"),
        F.min(F.when(leaves, day)).alias("_left_by_call"),
        F.max(F.when(joins, day)).alias("_last_join"),
    )
    # the day the stint lapsed, when that day has come
    lapse_day = F.lit(None).cast("date")
    if days is not None:
        lapse_day = F.when(F.date_add("_last_join", days + 1) <= F.lit(run_date), F.date_add("_last_join", days + 1))
    by_call = F.col("_left_by_call")
    left_on = F.least(by_call, lapse_day)
    # a leave call on the lapse day comes too late: the membership ended as that day began
    left_by = (F.when(by_call.isNotNull() & (lapse_day.isNull() | (by_call < lapse_day)), F.lit(LEFT_BY_CALL))
               .when(lapse_day.isNotNull(), F.lit(LEFT_BY_LAPSE)))
    return stints.select("group_id", "customer_id", F.col("_first_join").alias("joined_on"),
                         F.col("first_ts").alias("joined_at"), left_on.alias("left_on"), left_by.alias("left_by"), "source")


def current_members(history: DataFrame) -> DataFrame:
    """gold/group_members: the open stints of gold/group_membership_history (joined_on: the stint's start)."""
    return history.filter(F.col("left_on").isNull()).select("group_id", "customer_id", "joined_on", "source")


def write_groups(spark: SparkSession, wh, groups: DataFrame, history: DataFrame) -> dict[str, int]:
    """gold/groups, gold/group_members (the open stints of `history`) and gold/group_membership_history."""
    counts = {}
    for name, df, table in (("groups", groups, tables.GROUPS), ("group_members", current_members(history), tables.GROUP_MEMBERS),
                            ("membership_stints", history, tables.GROUP_MEMBERSHIP_HISTORY)):
        counts[name] = wh.overwrite_counted(spark, df.select(*SPECS[table].columns), table)
    return counts


def read_inputs(spark: SparkSession, wh, run_date: dt.date) -> tuple[DataFrame, DataFrame]:
    """The profile calls up to the run date and the identity map; a missing table is an InputError
    naming the command that writes it."""
    return read_profile_calls(spark, wh, run_date), wh.read(spark, tables.IDENTITY_MAP)


def run(ctx: JobContext, params: RunParams) -> StageResult:
    spark, wh = ctx.spark, ctx.warehouse
    calls, identity_map = read_inputs(spark, wh, ctx.run_date)
    settings = ctx.config.groups
    counts = write_groups(spark, wh, build_groups(calls, ctx.config.identity.default_phone_region, settings),
                          build_membership_history(calls, identity_map, ctx.run_date, settings))
    return StageResult(metrics=counts)
