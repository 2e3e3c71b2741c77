"""Evaluating compiled segments: each level's members, who is in which segment now, what changed.

A level's evaluation frame has one row per member (group level: per group x member customer) with
every field its segments use, as columns named by alias (jobs.segments.conditions): a customer in
several groups has a row per group (any of its groups may satisfy the condition); a group qualifies
when its own attributes and at least one member's satisfy it together; an identifier is judged with
its customer's fields.
"""
from __future__ import annotations

import datetime as dt
import functools

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.segments.conditions import CUSTOMER_SOURCES, GROUP_TRAITS_COLUMN, CompiledSegment, Inputs, ResolvedField
from jobs.segments.settings import CUSTOMER_LEVEL, GROUP_LEVEL, identifier_type_of
from jobs.segments.state import ADD, REMOVE

# Internal columns of an evaluation frame: the member, and the customer / group it is judged by.
MEMBER = "_member_id"
CUSTOMER = "_customer_id"
GROUP = "_group_id"


def level_base(inputs: Inputs, level: str) -> DataFrame:
    """One row per member (group level: per group × member customer) with its customer / group key."""
    if level == CUSTOMER_LEVEL:
        return inputs.customers.select(F.col("customer_id").alias(MEMBER), F.col("customer_id").alias(CUSTOMER))
    if level == GROUP_LEVEL:
        members = inputs.group_members.select(F.col("group_id").alias(GROUP), F.col("customer_id").alias(CUSTOMER))
        return (
            inputs.groups.select(F.col("group_id").alias(MEMBER), F.col("group_id").alias(GROUP))
            .join(members, on=GROUP, how="left")
        )
    identifiers = inputs.identity_map.filter(F.col("identifier_type") == identifier_type_of(level))
    return identifiers.select(F.col("identifier_value").alias(MEMBER), F.col("customer_id").alias(CUSTOMER),
                              "identifier_type", "identifier_value")


def evaluation_frame(inputs: Inputs, level: str, fields: list[ResolvedField]) -> DataFrame:
    """The level's members with every field the level's segments use, as columns named by alias."""
    frame = level_base(inputs, level)
    for f in fields:
        if f.source == "identifier":
            frame = frame.withColumn(f.alias, F.col(f.column))
    for source in CUSTOMER_SOURCES:
        wanted = {f.alias: f for f in fields if f.source == source}
        if wanted:
            table = inputs.customer_source(source).select(
                F.col("customer_id").alias("_key"), *[F.col(f.column).alias(a) for a, f in wanted.items()]
            )
            frame = frame.join(table, frame[CUSTOMER] == table["_key"], how="left").drop("_key")
    group_fields = {f.alias: f for f in fields if f.source == "group"}
    if group_fields:
        if level != GROUP_LEVEL:
            # one row per (member, group of its customer): any of its groups may satisfy the rule
            memberships = inputs.group_members.select(F.col("customer_id").alias(CUSTOMER), F.col("group_id").alias(GROUP))
            frame = frame.join(memberships, on=CUSTOMER, how="left")
        attributes = inputs.groups.select(F.col("group_id").alias(GROUP), *[
            (F.col(GROUP_TRAITS_COLUMN)[f.column] if f.custom_trait else F.col(f.column)).alias(a)
            for a, f in group_fields.items()
        ])
        frame = frame.join(attributes, on=GROUP, how="left")
    return frame


def current_members(inputs: Inputs, segments: list[CompiledSegment]) -> DataFrame:
    """(segment, level, member_id) of every segment, one pass over each level's members."""
    parts = []
    for level in dict.fromkeys(s.level for s in segments):
        of_level = [s for s in segments if s.level == level]
        fields = list({f.alias: f for s in of_level for f in s.fields}.values())
        hits = F.array(*[F.when(s.condition, F.lit(s.name)) for s in of_level])
        parts.append(
            evaluation_frame(inputs, level, fields)
            .filter(F.col(MEMBER).isNotNull())
            .select(F.explode(F.filter(hits, lambda name: name.isNotNull())).alias("segment"),
                    F.lit(level).alias("level"), F.col(MEMBER).alias("member_id"))
        )
    # a customer in two groups can qualify twice
    return functools.reduce(DataFrame.unionByName, parts).distinct()


def set_changes(now: DataFrame, before: DataFrame, keys: list[str], run_date: dt.date) -> DataFrame:
    """(run_date, *keys, change): `add` for keys only in `now`, `remove` for keys only in `before`."""
    change = F.when(F.col("_before").isNull(), F.lit(ADD)).when(F.col("_now").isNull(), F.lit(REMOVE))
    return (
        now.select(*keys, F.lit(True).alias("_now"))
        .join(before.select(*keys, F.lit(True).alias("_before")), on=keys, how="full_outer")
        .select(F.lit(run_date).alias("run_date"), *keys, change.alias("change"))
        .filter(F.col("change").isNotNull())
    )


def membership_changes(current: DataFrame, open_stints: DataFrame, run_date: dt.date) -> DataFrame:
    """add: a member now without an open stint; remove: an open stint of someone no longer a member."""
    return set_changes(current, open_stints, ["segment", "level", "member_id"], run_date)
