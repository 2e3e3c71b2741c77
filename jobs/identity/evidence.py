"""Identity evidence: bronze rows -> identifiers and the edges between them (issue 3, item 1).

One *observation* is one source row with the identifiers it carries:
- an event message: user_id, anonymous_id, email (normalized by ingest) and phone;
- a customer master row: customer_id (a user_id), email and phone_number, normalized here.

Phones are observed as received (trimmed) and turned into E.164 once observations are grouped by
their identifier set (`identifier_sets`, `sets_in_e164`), so the Python parser (jobs.identity.phones)
sees each distinct raw value once; two spellings of one number become one identifier, and an
unparseable value is no identifier at all (the set's other identifiers stay linked).

An alias call's previousId is not typed by the call itself (Segment: "whatever identified the person
before", the anonymousId they browsed under or a former userId). Each alias call leaves *alias
claims* (`alias_claims`): previousId + every identifier of the call, with evidence. A claim is
resolved against every identifier ever seen (`resolve_alias_claims`): previousId P links to each
`anonymous_id` and each `user_id` with value P; a P seen as neither is an `anonymous_id`. The
resolved pairs are edges like any other, so an alias of an anonymousId joins the anonymous
history to the user, and an alias of a former userId is the only kind of edge between two user ids
(which the rules treat as a merge instruction, see jobs.identity.rules). Because a later night can
first show P as a userId, resolution is redone from all stored claims every run (they are few:
one per login).

Every pair of distinct identifiers in one observation is an edge (a clique of at most 5, so that
removing one junk identifier later leaves the others linked). Edges are stored once per unordered
pair, smaller (type, value) first, with first/last seen, the first source (kind = message type or
`customer_master`, id = message_id or row_hash, file) and the last bronze run date. Identifiers
carry the same evidence columns. Evidence is aggregated with min/max only, so merging the same
rows twice changes nothing (re-runs are idempotent), and it can be aggregated in steps: first per
distinct identifier set (`identifier_sets`), then per identifier and per pair.
"""
from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.core import tables
from jobs.core.catalog import SPECS
from jobs.core.session import broadcast_if_small
from jobs.identity.identifiers import ANONYMOUS_ID, EMAIL, PHONE, USER_ID, normalize_email, normalize_id
from jobs.identity.ids import kept_as_is
from jobs.identity.phones import E164, RAW

CUSTOMER_MASTER = "customer_master"
ALIAS = "alias"
# Keys of silver/identity_identifiers, silver/identity_edges (and _alias_edges), silver/identity_aliases;
# the evidence columns follow the key in each (jobs.core.catalog).
IDENTIFIER_KEY = SPECS[tables.IDENTITY_IDENTIFIERS].keys
EDGE_KEY = SPECS[tables.IDENTITY_EDGES].keys
EVIDENCE_COLUMNS = SPECS[tables.IDENTITY_IDENTIFIERS].columns[len(IDENTIFIER_KEY):]
# previous_id: an alias call's previousId, null in every other observation.
OBSERVATION_COLUMNS = ("source_kind", "source_id", "source_file", "seen_at", "run_date", "ids", "previous_id")
ALIAS_CLAIM_KEY = SPECS[tables.IDENTITY_ALIASES].keys
# What an alias call's previousId can have been seen as (interface §3).
ALIASABLE_TYPES = (USER_ID, ANONYMOUS_ID)


def _identifier(kind: str, value: Column) -> Column:
    return F.when(value.isNotNull(), F.struct(F.lit(kind).alias("identifier_type"), value.alias("identifier_value")))


def _observation(ids: list[Column]) -> Column:
    return F.array_distinct(F.filter(F.array(*ids), lambda x: x.isNotNull()))


def _event_observation_columns() -> list:
    return [
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
        ]).alias("ids"),
        F.when(F.col("type") == ALIAS, F.col("previous_id")).alias("previous_id"),
    ]


def event_observations(events: DataFrame) -> DataFrame:
    """bronze/events rows -> observations (phones as received: see sets_in_e164)."""
    return events.select(*_event_observation_columns())


def alias_claims(sets: DataFrame) -> DataFrame:
    """Alias calls -> one row per (previous_id, identifier of the call) + EVIDENCE_COLUMNS.

    `sets`: identifier_sets rows, phones in E.164 (sets_in_e164); those with a previous_id are the
    alias calls'. Read from the sets, the claims cost no second scan of bronze/events; the evidence
    is the same, being min/max over the calls either way, and a claim of an unparseable phone is
    gone with the phone. (Bench scale M: the step took 5.4-6.3 s against 6.0-8.0 s, since it still
    reads every set: bench/results/stitch-M.md.)"""
    calls = sets.where(F.col("previous_id").isNotNull())
    rows = calls.select("previous_id", F.explode("ids").alias("id"), *EVIDENCE_COLUMNS).select(
        "previous_id",
        F.col("id.identifier_type").alias("other_type"),
        F.col("id.identifier_value").alias("other_value"),
        *EVIDENCE_COLUMNS,
    )
    return aggregate_evidence(rows, ALIAS_CLAIM_KEY)


def resolve_alias_claims(
    claims: DataFrame, identifiers: DataFrame, keep: Callable[[DataFrame, str], DataFrame] = kept_as_is,
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Stored alias claims + every identifier seen -> (edges, identifiers, user merges).
    keep(df, name): materialises the claims as resolved, which all three read (stitch passes its
    scratch space; otherwise each result joins the claims to every identifier again).

    - edges (EDGE_KEY + EVIDENCE_COLUMNS): previousId, as each type it was seen under
      (ALIASABLE_TYPES; an `anonymous_id` if neither), to every identifier of its alias calls;
    - identifiers (IDENTIFIER_KEY + EVIDENCE_COLUMNS): the previousIds seen as neither type, which
      exist only as alias evidence (so they are not in `identifiers`);
    - user merges (previous_id, user_id): aliases of a former userId to another userId.
    """
    seen = (
        identifiers.where(F.col("identifier_type").isin(*ALIASABLE_TYPES))
        .select(F.col("identifier_value").alias("previous_id"), F.col("identifier_type").alias("previous_type"))
    )
    resolved = keep(claims.join(seen, "previous_id", "left").select(
        "*",
        F.col("previous_type").isNull().alias("unseen"),
        F.coalesce("previous_type", F.lit(ANONYMOUS_ID)).alias("p_type"),
    ), "resolved_claims")
    edge_rows = _oriented(resolved.select(
        F.col("p_type").alias("a_type"), F.col("previous_id").alias("a_value"),
        F.col("other_type").alias("b_type"), F.col("other_value").alias("b_value"), *EVIDENCE_COLUMNS,
    ))
    unseen = resolved.where("unseen").select(
        F.lit(ANONYMOUS_ID).alias("identifier_type"), F.col("previous_id").alias("identifier_value"), *EVIDENCE_COLUMNS
    )
    merges = resolved.where(
        (F.col("p_type") == USER_ID) & (F.col("other_type") == USER_ID) & (F.col("other_value") != F.col("previous_id"))
    ).select("previous_id", F.col("other_value").alias("user_id")).distinct()
    return aggregate_evidence(edge_rows, EDGE_KEY), aggregate_evidence(unseen, IDENTIFIER_KEY), merges


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
            _identifier(PHONE, normalize_id(F.col("phone_number"))),
        ]).alias("ids"),
        F.lit(None).cast("string").alias("previous_id"),
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


def _evidence_aggregates() -> list[Column]:
    """The min/max aggregates of EVIDENCE_COLUMNS (first source as one struct `first`), read back
    to the columns by `_evidence_columns`."""
    first = F.min(F.struct("first_seen", "first_source_kind", "first_source_id", "first_source_file")).alias("first")
    return [first, F.max("last_seen").alias("last_seen"), F.max("last_run_date").alias("last_run_date")]


def _evidence_columns() -> list[Column]:
    return [
        F.col("first.first_seen").alias("first_seen"),
        F.col("last_seen"),
        F.col("first.first_source_kind").alias("first_source_kind"),
        F.col("first.first_source_id").alias("first_source_id"),
        F.col("first.first_source_file").alias("first_source_file"),
        F.col("last_run_date"),
    ]


def aggregate_evidence(rows: DataFrame, keys: tuple[str, ...]) -> DataFrame:
    """Evidence rows -> one row per key. Associative and idempotent (min/max), so it also merges
    stored evidence with new evidence."""
    # A min over a struct is a sort-based aggregate. Values first in the sort key: its 8-byte prefix
    # then tells most rows apart, where a type first (four distinct) sends every comparison to the
    # full keys (identifier evidence at bench scale M: 11.3 s -> 8.9 s).
    return (
        rows.groupBy(*[k for k in keys if not k.endswith("_type")], *[k for k in keys if k.endswith("_type")])
        .agg(*_evidence_aggregates())
        .select(*keys, *_evidence_columns())
    )


def merge_evidence(evidence: DataFrame, extra: DataFrame, keys: tuple[str, ...]) -> DataFrame:
    """Two evidence frames of one row per key each -> one row per key, the same as
    aggregate_evidence of their union; only the keys in both are aggregated. `extra` is the small
    one (alias edges beside every edge), computed already (read from scratch): it is counted and
    marked for broadcast when small (broadcast_if_small), and the large one is then filtered as it
    is scanned, not shuffled."""
    extra_keys = broadcast_if_small(extra.select(*keys))
    shared = evidence.join(extra_keys, list(keys), "left_semi")
    return evidence.join(extra_keys, list(keys), "left_anti").unionByName(
        aggregate_evidence(shared.unionByName(extra), keys))


def identifier_sets(observations: DataFrame) -> DataFrame:
    """Observations -> one row per distinct identifier set and previous_id (null but in alias
    calls): `ids`, `previous_id` + EVIDENCE_COLUMNS + `observations` (how many observations
    carried it).

    Identifier and edge evidence are min/max over the observations of each identifier (pair), so
    they can be taken over these rows instead: the same values, from about a third of the rows
    (4.3M observations carry 1.4M distinct sets at bench scale M: a customer's events repeat the
    same user id, anonymous id and email). The sets are grouped by a 64-bit hash of the set first,
    so the sort of this sort-based aggregate compares longs, and by the set itself, so a hash
    collision merges nothing."""
    rows = _as_evidence(observations, [F.col("ids"), F.col("previous_id")])
    return (
        rows.groupBy(F.xxhash64("ids").alias("_ids_hash"), "ids", "previous_id")
        .agg(*_evidence_aggregates(), F.count(F.lit(1)).alias("observations"))
        .select("ids", "previous_id", *_evidence_columns(), "observations")
    )


def identifier_evidence(sets: DataFrame) -> DataFrame:
    """One row per identifier: identifier_type, identifier_value + EVIDENCE_COLUMNS, from
    `identifier_sets` rows."""
    exploded = sets.select(F.explode("ids").alias("id"), *EVIDENCE_COLUMNS)
    rows = exploded.select(F.col("id.identifier_type").alias("identifier_type"),
                           F.col("id.identifier_value").alias("identifier_value"), *EVIDENCE_COLUMNS)
    return aggregate_evidence(rows, IDENTIFIER_KEY)


def edge_evidence(sets: DataFrame) -> DataFrame:
    """One row per unordered identifier pair seen together: a_* < b_* + EVIDENCE_COLUMNS, from
    `identifier_sets` rows."""
    multi = sets.where(F.size("ids") > 1)
    pairs = multi.select("ids", F.explode("ids").alias("a"), *EVIDENCE_COLUMNS).select(
        "a", F.explode("ids").alias("b"), *EVIDENCE_COLUMNS)
    ordered = pairs.where(
        F.struct("a.identifier_type", "a.identifier_value") < F.struct("b.identifier_type", "b.identifier_value")
    )
    rows = ordered.select(
        F.col("a.identifier_type").alias("a_type"), F.col("a.identifier_value").alias("a_value"),
        F.col("b.identifier_type").alias("b_type"), F.col("b.identifier_value").alias("b_value"),
        *EVIDENCE_COLUMNS,
    )
    return aggregate_evidence(rows, EDGE_KEY)


def edges_both_ways(edges: DataFrame, other: tuple[str, str] = ("other_type", "other_value")) -> DataFrame:
    """Each undirected edge twice, as (identifier_type, identifier_value, *other): one row per end."""
    def one_way(this_end: str, other_end: str) -> DataFrame:
        return edges.select(
            F.col(f"{this_end}_type").alias("identifier_type"), F.col(f"{this_end}_value").alias("identifier_value"),
            F.col(f"{other_end}_type").alias(other[0]), F.col(f"{other_end}_value").alias(other[1]),
        )

    return one_way("a", "b").unionByName(one_way("b", "a"))


def _phone_lookup(parsed: DataFrame) -> DataFrame:
    """parsed_phones' rows as `_raw`, `_e164`, to join on a phone as received."""
    return parsed.select(F.col(RAW).alias("_raw"), F.col(E164).alias("_e164"))


def _oriented(edges: DataFrame) -> DataFrame:
    """Edges with the smaller (type, value) end as a_*; self loops dropped."""
    a_end, b_end = F.struct("a_type", "a_value"), F.struct("b_type", "b_value")
    a_first = a_end < b_end
    return edges.where(a_end != b_end).select(
        *[F.when(a_first, F.col(f"a_{p}")).otherwise(F.col(f"b_{p}")).alias(f"a_{p}") for p in ("type", "value")],
        *[F.when(a_first, F.col(f"b_{p}")).otherwise(F.col(f"a_{p}")).alias(f"b_{p}") for p in ("type", "value")],
        *EVIDENCE_COLUMNS,
    )


def _set_phone() -> Column:
    """The phone (as received) of an identifier set, null if none: an observation carries at most
    one (an event's `phone`, a master row's `phone_number`), so a set does too."""
    return F.try_element_at(F.filter("ids", lambda x: x.identifier_type == PHONE), F.lit(1)).identifier_value


def set_phones(sets: DataFrame) -> DataFrame:
    """The phones (as received) of identifier sets: one column, one row per set that has one."""
    return sets.select(_set_phone().alias("phone")).where(F.col("phone").isNotNull())


def sets_in_e164(sets: DataFrame, parsed: DataFrame) -> DataFrame:
    """Identifier sets (identifier_sets rows) with their phone in E.164 (`parsed`:
    jobs.identity.phones.parsed_phones of set_phones), or without it when it is no number; the
    other identifiers of the set stay, and so do their edges. Two spellings of one number become
    one identifier when identifier and edge evidence are aggregated from these sets. Only the sets
    holding a phone are joined to the parsed values."""
    phone = _set_phone()
    lookup = _phone_lookup(parsed)
    columns = sets.columns
    in_e164 = F.transform("ids", lambda x: F.when(
        x.identifier_type == PHONE,
        F.when(F.col("_e164").isNotNull(), F.struct(F.lit(PHONE).alias("identifier_type"),
                                                     F.col("_e164").alias("identifier_value"))),
    ).otherwise(x))
    converted = (
        sets.where(phone.isNotNull())
        .join(lookup, phone == F.col("_raw"), "left")
        .withColumn("ids", F.filter(in_e164, lambda x: x.isNotNull()))
        .select(*columns)
    )
    return sets.where(phone.isNull()).unionByName(converted)


def unparseable_phones(parsed: DataFrame) -> DataFrame:
    """`identifier_type, identifier_value` of the phone values (as received, parsed_phones' rows)
    that are not numbers."""
    return parsed.where(F.col(E164).isNull()).select(
        F.lit(PHONE).alias("identifier_type"), F.col(RAW).alias("identifier_value"))


def endpoints(edges: DataFrame) -> DataFrame:
    """Identifier keys at either end of `edges`."""
    return edges.select(F.col("a_type").alias("identifier_type"), F.col("a_value").alias("identifier_value")).unionByName(
        edges.select(F.col("b_type").alias("identifier_type"), F.col("b_value").alias("identifier_value"))
    ).distinct()
