"""Customer groups (households, billing accounts, B2B accounts) after Blueshift's customer groups.

- A `group` call creates or updates a group: standard attributes email, phone, first_name,
  last_name, name, plus any custom traits. Per attribute the most recent non-null value wins
  (by timestamp, then messageId), so a later call that omits an attribute does not erase it.
- The user making a `group` call becomes a member; an `identify` with a groupId (top level or
  context.groupId) also adds membership. Members are stitched customers (jobs.identity.resolution), and
  membership is never withdrawn (the Segment spec has no "leave group" call).
- Group attributes apply to every member: segments filter customers on them (`group.<attribute>`,
  jobs.segments).

Tables: gold/groups (one row per group), gold/group_members (group × member). Both are rebuilt on
each run from silver/profile_calls (bronze's identify and group calls, kept by stitch: small next to
the event stream); `c360 activities` builds them, and `c360 groups` rebuilds them alone.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.core import tables
from jobs.core.catalog import SPECS
from jobs.core.context import JobContext, RunParams, StageResult
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



def group_calls(calls: DataFrame) -> DataFrame:
    return calls.filter((F.col("type") == GROUP_CALL) & F.col("group_id").isNotNull())


def membership_evidence(calls: DataFrame) -> DataFrame:
    """Group calls and identify-with-groupId calls (silver/profile_calls rows): who joined which
    group, when, how."""
    joins_group = (F.col("type") == GROUP_CALL) | (F.col("type") == IDENTIFY_CALL)
    return calls.filter(joins_group & F.col("group_id").isNotNull()).select(
        "group_id", "user_id", "anonymous_id", "timestamp", "message_id", F.col("type").alias("source")
    )


def latest_group_traits(calls: DataFrame) -> DataFrame:
    """(group_id, trait, value): per trait the value of the latest group call that set it."""
    key = F.lower(F.regexp_replace("trait_key", r"[^A-Za-z0-9]", ""))
    standard = F.create_map(*[F.lit(x) for pair in STANDARD_TRAIT_KEYS.items() for x in pair])
    return (
        group_calls(calls)
        .select("group_id", "timestamp", "message_id", F.explode("group_traits").alias("trait_key", "value"))
        .filter(F.col("value").isNotNull())
        .withColumn("trait", F.coalesce(standard[key], F.col("trait_key")))
        .groupBy("group_id", "trait")
        .agg(F.max_by("value", F.struct("timestamp", "message_id")).alias("value"))
    )


def build_groups(calls: DataFrame, phone_region: str = DEFAULT_PHONE_REGION) -> DataFrame:
    """gold/groups from silver/profile_calls rows: every group named by a group call or an
    identify-with-groupId (phone in E.164)."""
    traits = (
        latest_group_traits(calls)
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


def build_group_members(calls: DataFrame, identity_map: DataFrame) -> DataFrame:
    """gold/group_members from silver/profile_calls rows: one row per (group, stitched customer);
    joined_on = first evidence."""
    return (
        membership_evidence(calls)
        .transform(lambda df: resolve_customer_id(df, identity_map))
        .filter(F.col("customer_id").isNotNull())
        .groupBy("group_id", "customer_id")
        .agg(
            F.min("timestamp").alias("first_ts"),
            # the call that first made them a member; a group call wins a tie with an identify
            F.min_by("source", F.struct("timestamp", "source")).alias("source"),
        )
        .select("group_id", "customer_id", F.to_date("first_ts").alias("joined_on"), "source")
    )


def write_groups(spark: SparkSession, wh, groups: DataFrame, members: DataFrame) -> dict[str, int]:
    counts = {}
    for name, df, table in (("groups", groups, tables.GROUPS), ("group_members", members, tables.GROUP_MEMBERS)):
        version = wh.version(spark, table)
        wh.overwrite(df.select(*SPECS[table].columns), table)
        counts[name] = wh.operation_metrics_since(spark, table, version).get("numOutputRows", 0)
    return counts


def read_inputs(spark: SparkSession, wh, run_date: dt.date) -> tuple[DataFrame, DataFrame]:
    """The profile calls up to the run date and the identity map; a missing table is an InputError
    naming the command that writes it."""
    return read_profile_calls(spark, wh, run_date), wh.read(spark, tables.IDENTITY_MAP)


def run(ctx: JobContext, params: RunParams) -> StageResult:
    spark, wh = ctx.spark, ctx.warehouse
    calls, identity_map = read_inputs(spark, wh, ctx.run_date)
    counts = write_groups(spark, wh, build_groups(calls, ctx.config.identity.default_phone_region),
                          build_group_members(calls, identity_map))
    return StageResult(metrics=counts)
