"""Stable customer ids across runs, and the lineage of ids that change (issue 3, item 4).

Given this run's clusters and the previous run's labels of the same identifiers:

1. A cluster holding a user_id (a customer master customer_id or a Segment userId: one namespace)
   is identified by it. With several user ids - the user ids of one person joined by alias calls,
   or several persons under a user_id limit above 1 - it is the oldest (first seen, value) among
   those that were never an alias's previousId (*retired* ids): so a person merged by
   `alias(previousId=L1, userId=U1)` is customer U1, the alias target, and an alias chain
   L0 -> L1 -> U1 ends at U1. Only if every user id is retired (alias cycles) the oldest is taken.
2. Every previous id X is *kept* by exactly one new cluster: the one identified by X if any,
   otherwise the one holding X's oldest evidence (the oldest identifier, by first seen then
   type:value, among X's former members). So a persisting cluster keeps its id and, on a split,
   the part holding the oldest evidence keeps it.
3. A cluster without a user_id takes, among the previous ids it keeps, the oldest one (X's birth =
   first seen of X's oldest former member), so on a merge the oldest id survives.
4. Otherwise the id is new: `c_` + 16 hex digits of SHA-256 of the cluster's oldest identifier.
   Should it clash with an id in use (or retired: ids are never recycled), it is salted with the
   run date.

Lineage rows (run_date, old_id, new_id, change) are written for every (previous id, new cluster)
pair whose ids differ: `merge` when that cluster kept the previous id's identity but carries an
older/identified id, `split` when it only received part of the previous cluster.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.identity.identifiers import USER_ID

GENERATED_ID_PREFIX = "c_"
GENERATED_ID_HEX_DIGITS = 16
MERGE = "merge"
SPLIT = "split"


def _age() -> Column:
    """Identifiers ordered oldest first; ties broken by type and value."""
    return F.struct("first_seen", "identifier_type", "identifier_value")


def generated_id(identifier_type: Column, identifier_value: Column, salt: Column | None = None) -> Column:
    parts = [identifier_type, identifier_value] + ([salt] if salt is not None else [])
    digest = F.sha2(F.concat_ws(":", *parts), 256)
    return F.concat(F.lit(GENERATED_ID_PREFIX), F.substring(digest, 1, GENERATED_ID_HEX_DIGITS))


def kept_as_is(df: DataFrame, _name: str) -> DataFrame:
    """The default `keep`: nothing materialised, the frame is planned into each reader."""
    return df


def assign_customer_ids(
    clusters: DataFrame, previous: DataFrame, ids_in_use: DataFrame, run_date: dt.date,
    retired: DataFrame | None = None, keep: Callable[[DataFrame, str], DataFrame] = kept_as_is,
) -> tuple[DataFrame, DataFrame]:
    """Customer id per cluster, and lineage rows.

    clusters: identifier_type, identifier_value, first_seen, cluster — every identifier being labelled.
    previous: identifier_type, identifier_value, first_seen, customer_id — previous labels of the
      identifiers whose clusters are being recomputed (all former members of each previous id).
    ids_in_use: customer_id — every id of the previous run (for clash checks).
    retired: identifier_value — user ids that were the previousId of an alias call (rule 1).
    keep(df, name): materialises a frame that both results read (stitch passes its scratch space),
      so writing the ids and then the lineage computes it once; by default nothing is materialised.
    Returns (cluster, customer_id) and (run_date, old_id, new_id, change).
    """
    if retired is None:
        retired = clusters.sparkSession.createDataFrame([], "identifier_value string")
    retired_users = retired.select(F.lit(USER_ID).alias("identifier_type"), "identifier_value",
                                   F.lit(True).alias("retired")).distinct()
    flagged = clusters.join(retired_users, ["identifier_type", "identifier_value"], "left").withColumn(
        "retired", F.coalesce("retired", F.lit(False))
    )
    user_key = F.struct("retired", "first_seen", "identifier_value")
    facts = flagged.groupBy("cluster").agg(
        F.min(F.when(F.col("identifier_type") == USER_ID, user_key))
        .getField("identifier_value").alias("user_customer_id"),
        F.min(_age()).alias("oldest"),
    )
    overlap = keep(
        clusters.join(previous.select("identifier_type", "identifier_value", F.col("customer_id").alias("old_id")),
                      ["identifier_type", "identifier_value"], "inner")
        .groupBy("cluster", "old_id")
        .agg(F.min(_age()).alias("evidence")),
        "id_overlap",
    )
    birth = previous.groupBy(F.col("customer_id").alias("old_id")).agg(F.min(_age()).alias("birth"))
    by_old_id = Window.partitionBy("old_id").orderBy("claim", "evidence", "cluster")
    keepers = (
        overlap.join(facts.select("cluster", "user_customer_id"), "cluster", "inner")
        .withColumn("claim", F.when(F.col("user_customer_id") == F.col("old_id"), 0).otherwise(1))
        .withColumn("rank", F.row_number().over(by_old_id))
        .where(F.col("rank") == 1)
        .select("old_id", F.col("cluster").alias("keeper"))
    )
    kept = (
        keepers.join(birth, "old_id", "inner")
        .groupBy(F.col("keeper").alias("cluster"))
        .agg(F.min(F.struct("birth", "old_id")).getField("old_id").alias("kept_id"))
    )
    named = keep(facts.join(kept, "cluster", "left").select(
        "cluster",
        F.coalesce("user_customer_id", "kept_id").alias("chosen_id"),
        generated_id(F.col("oldest.identifier_type"), F.col("oldest.identifier_value")).alias("fresh_id"),
        F.col("oldest.identifier_type").alias("oldest_type"),
        F.col("oldest.identifier_value").alias("oldest_value"),
    ), "id_choices")
    # A fresh id must not be in use, retired, chosen by another cluster, or generated twice. The ids
    # in use (every id ever given) are only semi-joined with the few fresh ids, never deduplicated
    # whole: the fresh ids are a side small enough to broadcast on an incremental night.
    taken = ids_in_use.select(F.col("customer_id").alias("id")).unionByName(
        named.where(F.col("chosen_id").isNotNull()).select(F.col("chosen_id").alias("id")))
    fresh_counts = named.where(F.col("chosen_id").isNull()).groupBy(F.col("fresh_id").alias("id")).count()
    clashing = taken.join(fresh_counts, "id", "left_semi").unionByName(
        fresh_counts.where(F.col("count") > 1).select("id")
    ).distinct().withColumn("clash", F.lit(True))
    salted = generated_id(F.col("oldest_type"), F.col("oldest_value"), F.lit(str(run_date)))
    ids = keep(
        named.join(clashing, named["fresh_id"] == clashing["id"], "left")
        .select(
            "cluster",
            F.coalesce("chosen_id", F.when(F.col("clash").isNull(), F.col("fresh_id")).otherwise(salted)).alias("customer_id"),
        ),
        "ids",
    )
    lineage = (
        overlap.join(ids, "cluster", "inner")
        .join(keepers, "old_id", "inner")
        .where(F.col("customer_id") != F.col("old_id"))
        .select(
            F.lit(run_date).cast("date").alias("run_date"),
            "old_id",
            F.col("customer_id").alias("new_id"),
            F.when(F.col("keeper") == F.col("cluster"), F.lit(MERGE)).otherwise(F.lit(SPLIT)).alias("change"),
        )
        .distinct()
    )
    return ids, lineage
