"""silver/customers: one row per stitched customer, each column chosen by survivorship (issue 3, item 6).

Candidates for a column are the non-null values of the customer's master rows (bronze/customers
rows whose customer_id is one of the customer's user ids) and, for customer_name, email and
phone_number only, the traits of the customer's identify calls (silver/profile_calls rows). Master rows always rank before
event traits; within a source rank the strategy decides (`identity.survivorship`, per column):

- `most_recent` (default): latest master row run_date, then latest event timestamp;
- `oldest`: the first value seen;
- `most_frequent`: the value seen on most rows (then the most recent).

Ties are broken by the source row id, then the value, so the choice is deterministic. email and
phone_number are stored normalized, like the identity map. `group_ids` lists (sorted) the groups
the customer joined with a group call or an identify carrying a groupId (jobs.groups.stage' rule).
"""
from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.core.tables import CUSTOMER_COLUMNS
from jobs.groups.stage import membership_evidence
from jobs.identity.identifiers import EMAIL, PHONE, USER_ID, normalize_email, normalize_id
from jobs.identity.ids import kept_as_is
from jobs.identity.phones import with_e164
from jobs.identity.rules import blocked_rule
from jobs.identity.profile_calls import IDENTIFY_CALL
from jobs.identity.resolution import resolve_customer_id
from jobs.identity.settings import IdentitySettings

ATTRIBUTE_COLUMNS = tuple(c for c in CUSTOMER_COLUMNS if c != "customer_id")
MASTER_RANK = 0
MOST_FREQUENT = "most_frequent"
TRAIT_RANK = 1


def _master_value(column: str) -> Column:
    if column == "email":
        return normalize_email(F.col(column))
    if column == "phone_number":
        return normalize_id(F.col(column))  # read as E.164 in build_customers
    return F.col(column)


def master_candidates(customers: DataFrame, identity_map: DataFrame) -> DataFrame:
    """(customer_id, column, value, source_rank, seen_at, source_id) from bronze/customers."""
    users = identity_map.where(F.col("identifier_type") == USER_ID).select(
        F.col("identifier_value").alias("master_id"), "customer_id"
    )
    values = F.array(*[F.struct(F.lit(c).alias("column"), _master_value(c).alias("value")) for c in ATTRIBUTE_COLUMNS])
    return (
        customers.select(normalize_id(F.col("customer_id")).alias("master_id"), "run_date", "row_hash",
                         F.explode(values).alias("cell"))
        .join(users, "master_id", "inner")
        .select("customer_id", "cell.column", "cell.value", F.lit(MASTER_RANK).alias("source_rank"),
                F.col("run_date").cast("timestamp").alias("seen_at"), F.col("row_hash").alias("source_id"))
    )


def trait_candidates(calls: DataFrame, identity_map: DataFrame) -> DataFrame:
    """(customer_id, column, value, ...) from identify calls: email, phone and name traits."""
    values = F.array(
        F.struct(F.lit("customer_name").alias("column"), F.col("customer_name").alias("value")),
        F.struct(F.lit("email").alias("column"), F.col("email").alias("value")),
        F.struct(F.lit("phone_number").alias("column"), F.col("phone").alias("value")),
    )
    return (
        calls.where(F.col("type") == IDENTIFY_CALL)
        .transform(lambda df: resolve_customer_id(df, identity_map))
        .where(F.col("customer_id").isNotNull())
        .select("customer_id", "timestamp", "message_id", F.explode(values).alias("cell"))
        .select("customer_id", "cell.column", "cell.value", F.lit(TRAIT_RANK).alias("source_rank"),
                F.col("timestamp").alias("seen_at"), F.col("message_id").alias("source_id"))
    )


def choose_values(candidates: DataFrame, settings: IdentitySettings) -> DataFrame:
    """(customer_id, *ATTRIBUTE_COLUMNS): per customer, one surviving value per column (null when
    it has none). Placeholder emails and phones the identity rules block (`test@test.com`,
    `+0000000000`) never survive."""
    as_identifier = F.when(F.col("column") == "email", F.lit(EMAIL)).when(F.col("column") == "phone_number", F.lit(PHONE))
    placeholder = blocked_rule(settings, as_identifier, F.col("value")).isNotNull() & as_identifier.isNotNull()
    present = candidates.where(F.col("value").isNotNull() & (F.col("value") != "") & ~placeholder)
    if MOST_FREQUENT in (settings.survivorship_default, *settings.survivorship.values()):
        counted = present.join(
            present.groupBy("customer_id", "column", "value").agg(F.count("*").alias("rows")),
            ["customer_id", "column", "value"], "inner",
        )
    else:  # the counts only rank most_frequent columns: no join of every candidate with them
        counted = present.withColumn("rows", F.lit(0).cast("long"))
    strategy = F.lit(settings.survivorship_default)
    for column, name in settings.survivorship.items():
        strategy = F.when(F.col("column") == column, F.lit(name)).otherwise(strategy)
    micros = F.unix_micros("seen_at")
    frequent, oldest = strategy == MOST_FREQUENT, strategy == "oldest"
    # Smallest key wins. most_recent: (rank, -time); oldest: (rank, time);
    # most_frequent: (-rows, rank, -time). Source id and value break the remaining ties.
    key = F.struct(
        F.when(frequent, -F.col("rows")).otherwise(F.col("source_rank")).cast("long").alias("first"),
        F.when(frequent, F.col("source_rank")).when(oldest, micros).otherwise(-micros).cast("long").alias("second"),
        F.when(frequent, -micros).otherwise(F.lit(0)).cast("long").alias("third"),
        F.col("source_id"),
        F.col("value"),
    )
    # One aggregation per customer, a conditional minimum per column: the candidates are shuffled and
    # sorted once (a minimum per customer and column, then a pivot of those, took two).
    return counted.groupBy("customer_id").agg(
        *[F.min(F.when(F.col("column") == c, key)).getField("value").alias(c) for c in ATTRIBUTE_COLUMNS])


def group_ids(calls: DataFrame, identity_map: DataFrame) -> DataFrame:
    """(customer_id, group_ids): sorted distinct groups each customer joined."""
    return (
        membership_evidence(calls)
        .transform(lambda df: resolve_customer_id(df, identity_map))
        .where(F.col("customer_id").isNotNull())
        .groupBy("customer_id")
        .agg(F.array_sort(F.collect_set("group_id")).alias("group_ids"))
    )


def build_customers(
    identity_map: DataFrame, customers: DataFrame, calls: DataFrame, settings: IdentitySettings,
    known_phones: DataFrame | None = None, keep: Callable[[DataFrame, str], DataFrame] = kept_as_is,
) -> DataFrame:
    """silver/customers: CUSTOMER_COLUMNS + group_ids, one row per customer in the identity map,
    from bronze/customers rows and silver/profile_calls rows. `known_phones`: phone values parsed
    already (jobs.identity.phones.with_e164's `known`). keep(df, name) materialises the candidates
    (stitch passes its scratch space): the phone candidates and the others are read apart, and
    without it each part joins the master rows and the calls to the identity map again (bench
    scale M: the plan held those three joins twice)."""
    candidates = with_e164(
        keep(master_candidates(customers, identity_map).unionByName(trait_candidates(calls, identity_map)),
             "candidates"),
        "value", settings.default_phone_region, where=F.col("column") == "phone_number", known=known_phones,
    )
    chosen = choose_values(candidates, settings)
    everyone = identity_map.select("customer_id").distinct()
    return (
        everyone.join(chosen, "customer_id", "left")
        .join(group_ids(calls, identity_map), "customer_id", "left")
        .select(*CUSTOMER_COLUMNS,
                F.coalesce("group_ids", F.array().cast("array<string>")).alias("group_ids"))
    )
