"""silver/customers: one row per stitched customer, each column chosen by survivorship (issue 3, item 6).

Candidates for a column are the non-null values of the customer's master rows (bronze/customers
rows whose customer_id is one of the customer's user ids) and, for customer_name, email and
phone_number only, the traits of the customer's identify calls (silver/profile_calls rows). Master rows always rank before
event traits; within a source rank the strategy decides (`identity.survivorship`, per column):

- `most_recent` (default): latest master row run_date, then latest event timestamp;
- `oldest`: the first value seen;
- `most_frequent`: the value seen on most rows (then the most recent).

Ties are broken by the source row id, then the value, so the choice is deterministic. email and
phone_number are stored normalized, like the identity map.

Candidates are kept one row per source row (a master row, an identify call) with every column
(`master_rows`, `trait_rows`), and ranked per column in one aggregation over those rows
(`choose_from_rows`). Only `most_frequent` needs a row per value, to count the rows that carry it:
when a column uses it, the rows are split into one cell per column (`candidate_cells`) and ranked
by `choose_values`.

`group_ids` lists (sorted) the groups the customer joined with a group call or an identify
carrying a groupId (jobs.groups.stage' rule).
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


SOURCE_COLUMNS = ("customer_id", "source_rank", "seen_at", "source_id")
# The attributes an identify call can carry: silver/customers column -> silver/profile_calls column.
TRAIT_ATTRIBUTES = {"customer_name": "customer_name", "email": "email", "phone_number": "phone"}


def master_rows(customers: DataFrame, identity_map: DataFrame) -> DataFrame:
    """Candidate rows (SOURCE_COLUMNS + ATTRIBUTE_COLUMNS) from bronze/customers: one per master
    row of a mapped user id."""
    users = identity_map.where(F.col("identifier_type") == USER_ID).select(
        F.col("identifier_value").alias("master_id"), "customer_id"
    )
    return (
        customers.select(normalize_id(F.col("customer_id")).alias("master_id"), "run_date", "row_hash",
                         *[_master_value(c).alias(c) for c in ATTRIBUTE_COLUMNS])
        .join(users, "master_id", "inner")
        .select("customer_id", F.lit(MASTER_RANK).alias("source_rank"),
                F.col("run_date").cast("timestamp").alias("seen_at"), F.col("row_hash").alias("source_id"),
                *ATTRIBUTE_COLUMNS)
    )


def trait_rows(calls: DataFrame, identity_map: DataFrame) -> DataFrame:
    """Candidate rows (SOURCE_COLUMNS + ATTRIBUTE_COLUMNS) from identify calls: name, email and
    phone traits, the other columns null."""
    return (
        calls.where(F.col("type") == IDENTIFY_CALL)
        .transform(lambda df: resolve_customer_id(df, identity_map))
        .where(F.col("customer_id").isNotNull())
        .select("customer_id", F.lit(TRAIT_RANK).alias("source_rank"), F.col("timestamp").alias("seen_at"),
                F.col("message_id").alias("source_id"),
                *[(F.col(TRAIT_ATTRIBUTES[c]) if c in TRAIT_ATTRIBUTES else F.lit(None).cast("string")).alias(c)
                  for c in ATTRIBUTE_COLUMNS])
    )


def candidate_cells(rows: DataFrame) -> DataFrame:
    """Candidate rows -> one row per attribute: (customer_id, column, value, source_rank, seen_at,
    source_id), what choose_values ranks."""
    cells = F.array(*[F.struct(F.lit(c).alias("column"), F.col(c).alias("value")) for c in ATTRIBUTE_COLUMNS])
    return rows.select(*SOURCE_COLUMNS, F.explode(cells).alias("cell")).select(
        "customer_id", "cell.column", "cell.value", "source_rank", "seen_at", "source_id")


def _placeholder(settings: IdentitySettings, column: Column, value: Column) -> Column:
    """True for an email or phone the identity rules block (`test@test.com`, `+0000000000`)."""
    as_identifier = F.when(column == "email", F.lit(EMAIL)).when(column == "phone_number", F.lit(PHONE))
    return blocked_rule(settings, as_identifier, value).isNotNull() & as_identifier.isNotNull()


def _choice_key(strategy: Column, rows: Column, value: Column) -> Column:
    """The ranking key of a candidate value: the smallest wins. most_recent: (rank, -time); oldest:
    (rank, time); most_frequent: (-rows, rank, -time). Source id and value break the remaining ties."""
    micros = F.unix_micros("seen_at")
    frequent, oldest = strategy == MOST_FREQUENT, strategy == "oldest"
    return F.struct(
        F.when(frequent, -rows).otherwise(F.col("source_rank")).cast("long").alias("first"),
        F.when(frequent, F.col("source_rank")).when(oldest, micros).otherwise(-micros).cast("long").alias("second"),
        F.when(frequent, -micros).otherwise(F.lit(0)).cast("long").alias("third"),
        F.col("source_id"),
        value.alias("value"),
    )


def _strategy(settings: IdentitySettings, column: str) -> str:
    return settings.survivorship.get(column, settings.survivorship_default)


def _uses_most_frequent(settings: IdentitySettings) -> bool:
    """Whether some column is chosen by most_frequent (which counts the rows of each value)."""
    return MOST_FREQUENT in (settings.survivorship_default, *settings.survivorship.values())


def choose_values(candidates: DataFrame, settings: IdentitySettings) -> DataFrame:
    """(customer_id, *ATTRIBUTE_COLUMNS): per customer, one surviving value per column (null when
    it has none), from candidate_cells. Placeholder emails and phones the identity rules block never
    survive. The general path: most_frequent counts each value's rows, which needs one row per value."""
    placeholder = _placeholder(settings, F.col("column"), F.col("value"))
    present = candidates.where(F.col("value").isNotNull() & (F.col("value") != "") & ~placeholder)
    if _uses_most_frequent(settings):
        counted = present.join(
            present.groupBy("customer_id", "column", "value").agg(F.count("*").alias("rows")),
            ["customer_id", "column", "value"], "inner",
        )
    else:  # the counts only rank most_frequent columns: no join of every candidate with them
        counted = present.withColumn("rows", F.lit(0).cast("long"))
    strategy = F.lit(settings.survivorship_default)
    for column, name in settings.survivorship.items():
        strategy = F.when(F.col("column") == column, F.lit(name)).otherwise(strategy)
    key = _choice_key(strategy, F.col("rows"), F.col("value"))
    # One aggregation per customer, a conditional minimum per column: the candidates are shuffled and
    # sorted once (a minimum per customer and column, then a pivot of those, took two).
    return counted.groupBy("customer_id").agg(
        *[F.min(F.when(F.col("column") == c, key)).getField("value").alias(c) for c in ATTRIBUTE_COLUMNS])


def choose_from_rows(rows: DataFrame, settings: IdentitySettings) -> DataFrame:
    """choose_values' result straight from candidate rows, when no column is most_frequent: per
    column the minimum key over the rows holding a value for it. One aggregation row per source row
    instead of one per attribute: bench scale M ranked 0.8M rows instead of 4.4M cells (17
    attributes of the master rows, most of them never in an identify call)."""
    def chosen(c: str) -> Column:
        value = F.col(c)
        present = value.isNotNull() & (value != "") & ~_placeholder(settings, F.lit(c), value)
        key = _choice_key(F.lit(_strategy(settings, c)), F.lit(0).cast("long"), value)
        return F.min(F.when(present, key)).getField("value").alias(c)

    return rows.groupBy("customer_id").agg(*[chosen(c) for c in ATTRIBUTE_COLUMNS])


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
    rows = with_e164(
        keep(master_rows(customers, identity_map).unionByName(trait_rows(calls, identity_map)), "candidates"),
        "phone_number", settings.default_phone_region, where=F.col("phone_number").isNotNull(), known=known_phones,
    )
    if _uses_most_frequent(settings):
        chosen = choose_values(candidate_cells(rows), settings)
    else:
        chosen = choose_from_rows(rows, settings)
    everyone = identity_map.select("customer_id").distinct()
    return (
        everyone.join(chosen, "customer_id", "left")
        .join(group_ids(calls, identity_map), "customer_id", "left")
        .select(*CUSTOMER_COLUMNS,
                F.coalesce("group_ids", F.array().cast("array<string>")).alias("group_ids"))
    )
