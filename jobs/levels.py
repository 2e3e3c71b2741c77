"""Measures at three levels: identifier, customer, group (docs/levels.md).

"The customer" is not one thing: the best hour to email Joe differs between his work and home
addresses (identifier level), his orders count once for him however many devices he used
(customer level), and a household or B2B account sees every member's activity once (group level).

`at_level` turns the activity stream into rows keyed by (level, member_type, member_id), each event
at most once per member; `activity_rollup` aggregates them per member and activity.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

IDENTIFIER_LEVEL = "identifier"
CUSTOMER_LEVEL = "customer"
GROUP_LEVEL = "group"
LEVELS = (IDENTIFIER_LEVEL, CUSTOMER_LEVEL, GROUP_LEVEL)
KEY_COLUMNS = ("level", "member_type", "member_id")


def at_level(activity_stream: DataFrame, level: str, *, group_members: DataFrame | None = None) -> DataFrame:
    """Stream rows re-keyed to the level's members, each event once per member.

    - identifier: member_type = identifier_type, member_id = identifier_value (the address an
      email was opened on, else the user id or anonymous id the event arrived with);
    - customer: member_type 'customer', member_id = entity_id (group events included, as they
      apply to every member);
    - group: member_type 'group', member_id = group_id, for the group's own events and for every
      activity of its members (needs `group_members`).
    """
    if level == IDENTIFIER_LEVEL:
        keyed = activity_stream.filter(F.col("identifier_value").isNotNull()).select(
            F.col("identifier_type").alias("member_type"), F.col("identifier_value").alias("member_id"),
            *activity_stream.columns,
        )
    elif level == CUSTOMER_LEVEL:
        keyed = activity_stream.filter(F.col("entity_id").isNotNull()).select(
            F.lit(CUSTOMER_LEVEL).alias("member_type"), F.col("entity_id").alias("member_id"),
            *activity_stream.columns,
        )
    elif level == GROUP_LEVEL:
        if group_members is None:
            raise ValueError("the group level needs group_members (gold/group_members)")
        members = group_members.select(F.col("customer_id").alias("_member"), F.col("group_id").alias("_of_group"))
        of_members = activity_stream.join(members, F.col("entity_id") == F.col("_member"), how="inner")
        own = activity_stream.filter(F.col("group_id").isNotNull()).withColumn("_of_group", F.col("group_id"))
        keyed = of_members.drop("_member").unionByName(own).select(
            F.lit(GROUP_LEVEL).alias("member_type"), F.col("_of_group").alias("member_id"),
            *activity_stream.columns,
        )
    else:
        raise ValueError(f"unknown level {level!r}: use one of {', '.join(LEVELS)}")
    # a group event fans out to several customers; at any level it is still one event
    return keyed.dropDuplicates(["member_type", "member_id", "message_id"]).withColumn("level", F.lit(level))


def activity_rollup(
    activity_stream: DataFrame,
    level: str,
    *,
    activities: list[str] | None = None,
    group_members: DataFrame | None = None,
) -> DataFrame:
    """Per (level, member_type, member_id, activity): count, first/last time, revenue, best hour.

    best_hour = the UTC hour of day with the most occurrences (ties: the earliest hour), the
    "best time to email" measure of the seed article.
    """
    rows = activity_stream if activities is None else activity_stream.filter(F.col("activity").isin(*activities))
    by_hour = (
        at_level(rows, level, group_members=group_members)
        .groupBy(*KEY_COLUMNS, "activity", F.hour("activity_ts").alias("hour"))
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.min("activity_ts").alias("first_ts"),
            F.max("activity_ts").alias("last_ts"),
            F.sum("revenue_impact").alias("revenue"),
        )
    )
    return by_hour.groupBy(*KEY_COLUMNS, "activity").agg(
        F.sum("n").alias("activity_count"),
        F.min("first_ts").alias("first_ts"),
        F.max("last_ts").alias("last_ts"),
        F.sum("revenue").alias("revenue"),
        F.max_by("hour", F.struct(F.col("n"), -F.col("hour"))).alias("best_hour"),
    )
