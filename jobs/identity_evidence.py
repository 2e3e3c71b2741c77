"""Identity evidence: bronze rows -> identifiers and the edges between them (issue 3, item 1).

One *observation* is one source row with the identifiers it carries:
- an event message: user_id, anonymous_id, email, phone (already normalized by ingest) and, for
  an alias call, previous_id (typed by `identity.alias_previous_type`, default user_id: the alias
  previousId -> userId edge is then the only kind of edge between two user ids, which the rules
  treat as a merge instruction, see jobs.identity_rules);
- a customer master row: customer_id (a user_id), email and phone_number, normalized here.

Every pair of distinct identifiers in one observation is an edge (a clique of at most 5, so that
removing one junk identifier later leaves the others linked). Edges are stored once per unordered
pair, smaller (type, value) first, with first/last seen, the first source (kind = message type or
`customer_master`, id = message_id or row_hash, file) and the last bronze run date. Identifiers
carry the same evidence columns. Evidence is aggregated with min/max only, so merging the same
rows twice changes nothing (re-runs are idempotent).
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.identifiers import ANONYMOUS_ID, EMAIL, PHONE, USER_ID, normalize_email, normalize_id, normalize_phone

CUSTOMER_MASTER = "customer_master"
ALIAS = "alias"
IDENTIFIER_KEY = ("identifier_type", "identifier_value")
EDGE_KEY = ("a_type", "a_value", "b_type", "b_value")
EVIDENCE_COLUMNS = ("first_seen", "last_seen", "first_source_kind", "first_source_id", "first_source_file", "last_run_date")
OBSERVATION_COLUMNS = ("source_kind", "source_id", "source_file", "seen_at", "run_date", "ids")


def _identifier(kind: str, value: Column) -> Column:
    return F.when(value.isNotNull(), F.struct(F.lit(kind).alias("identifier_type"), value.alias("identifier_value")))


def _observation(ids: list[Column]) -> Column:
    return F.array_distinct(F.filter(F.array(*ids), lambda x: x.isNotNull()))


def event_observations(events: DataFrame, alias_previous_type: str = USER_ID) -> DataFrame:
    """bronze/events rows -> observations (identifiers are already normalized by ingest)."""
    return events.select(
        F.col("type").alias("source_kind"),
        F.col("message_id").alias("source_id"),
        "source_file",
        F.col("timestamp").alias("seen_at"),
        "run_date",
        _observation([
            _identifier(USER_ID, F.col("user_id")),
            _identifier(ANONYMOUS_ID, F.col("anonymous_id")),
            _identifier(EMAIL, F.col("email")),
            _identifier(PHONE, F.col("phone")),
            _identifier(alias_previous_type, F.when(F.col("type") == ALIAS, F.col("previous_id"))),
        ]).alias("ids"),
    )


def alias_previous_ids(events: DataFrame) -> DataFrame:
    """`identifier_value`: every previousId an alias call retired (renamed to another userId)."""
    return (
        events.where((F.col("type") == ALIAS) & F.col("previous_id").isNotNull()
                     & ~F.col("previous_id").eqNullSafe(F.col("user_id")))
        .select(F.col("previous_id").alias("identifier_value"))
        .distinct()
    )


def customer_observations(customers: DataFrame) -> DataFrame:
    """bronze/customers rows -> observations, seen at the start of the row's run date (UTC)."""
    return customers.select(
        F.lit(CUSTOMER_MASTER).alias("source_kind"),
        F.col("row_hash").alias("source_id"),
        "source_file",
        F.col("run_date").cast("timestamp").alias("seen_at"),
        "run_date",
        _observation([
            _identifier(USER_ID, normalize_id(F.col("customer_id"))),
            _identifier(EMAIL, normalize_email(F.col("email"))),
            _identifier(PHONE, normalize_phone(F.col("phone_number"))),
        ]).alias("ids"),
    )


def _as_evidence(rows: DataFrame, keys: list[Column]) -> DataFrame:
    """Observation-level rows -> evidence rows (one per observation and key)."""
    return rows.select(
        *keys,
        F.col("seen_at").alias("first_seen"),
        F.col("seen_at").alias("last_seen"),
        F.col("source_kind").alias("first_source_kind"),
        F.col("source_id").alias("first_source_id"),
        F.col("source_file").alias("first_source_file"),
        F.col("run_date").alias("last_run_date"),
    )


def aggregate_evidence(rows: DataFrame, keys: tuple[str, ...]) -> DataFrame:
    """Evidence rows -> one row per key. Associative and idempotent (min/max), so it also merges
    stored evidence with new evidence."""
    first = F.min(F.struct("first_seen", "first_source_kind", "first_source_id", "first_source_file")).alias("first")
    return (
        rows.groupBy(*keys)
        .agg(first, F.max("last_seen").alias("last_seen"), F.max("last_run_date").alias("last_run_date"))
        .select(
            *keys,
            F.col("first.first_seen").alias("first_seen"),
            "last_seen",
            F.col("first.first_source_kind").alias("first_source_kind"),
            F.col("first.first_source_id").alias("first_source_id"),
            F.col("first.first_source_file").alias("first_source_file"),
            "last_run_date",
        )
    )


def identifier_evidence(observations: DataFrame) -> DataFrame:
    """One row per identifier: identifier_type, identifier_value + EVIDENCE_COLUMNS."""
    exploded = observations.select("*", F.explode("ids").alias("id"))
    rows = _as_evidence(exploded, [F.col("id.identifier_type").alias("identifier_type"),
                                   F.col("id.identifier_value").alias("identifier_value")])
    return aggregate_evidence(rows, IDENTIFIER_KEY)


def edge_evidence(observations: DataFrame) -> DataFrame:
    """One row per unordered identifier pair seen together: a_* < b_* + EVIDENCE_COLUMNS."""
    multi = observations.where(F.size("ids") > 1)
    pairs = multi.select("*", F.explode("ids").alias("a")).select("*", F.explode("ids").alias("b"))
    ordered = pairs.where(
        F.struct("a.identifier_type", "a.identifier_value") < F.struct("b.identifier_type", "b.identifier_value")
    )
    rows = _as_evidence(ordered, [
        F.col("a.identifier_type").alias("a_type"), F.col("a.identifier_value").alias("a_value"),
        F.col("b.identifier_type").alias("b_type"), F.col("b.identifier_value").alias("b_value"),
    ])
    return aggregate_evidence(rows, EDGE_KEY)


def edges_both_ways(edges: DataFrame, other: tuple[str, str] = ("other_type", "other_value")) -> DataFrame:
    """Each undirected edge twice, as (identifier_type, identifier_value, *other): one row per end."""
    def one_way(this_end: str, other_end: str) -> DataFrame:
        return edges.select(
            F.col(f"{this_end}_type").alias("identifier_type"), F.col(f"{this_end}_value").alias("identifier_value"),
            F.col(f"{other_end}_type").alias(other[0]), F.col(f"{other_end}_value").alias(other[1]),
        )

    return one_way("a", "b").unionByName(one_way("b", "a"))
