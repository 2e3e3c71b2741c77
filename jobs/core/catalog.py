"""The table registry: one TableSpec for every Delta table the nightly writes.

A spec says what a table is: its path under the warehouse (`name`, one of jobs.core.table_names),
its columns (`schema`; None when they are decided at run time: gold/traits from traits.computed,
gold/lens_<name> from the query), its business key, its partition columns, the Delta table
properties it is created with, and the `c360` command that writes it. Producers and consumers take
schemas and keys from here; `Warehouse.create` creates a missing table from its spec, and
`Warehouse.read(..., missing=...)` names the command to run, or reads a missing table as empty.

Schemas are the tables' schemas as stored. Delta keeps every column of a table written from a
DataFrame nullable (whatever the DataFrame says), so every column here is nullable too: a
table created from its spec is the table its first write would have created. The columns a stage
never leaves null are its key columns and those commented "never null".
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from jobs.activities.settings import FEATURE_SLOTS
from jobs.core import table_names as t
from jobs.core.table_names import CUSTOMER_COLUMNS
from lens.plan import SUM_DECIMAL_PRECISION, SUM_DECIMAL_SCALE


@dataclass(frozen=True)
class TableSpec:
    name: str                                   # path under the warehouse root, e.g. "gold/identity_map"
    schema: StructType | None                   # None: columns decided at run time
    keys: tuple[str, ...] = ()                  # business key: one row per value
    partition_by: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=dict)  # delta.* table properties, set at creation
    made_by: str = ""                           # the `c360 <command>` that writes it

    @property
    def columns(self) -> tuple[str, ...]:
        if self.schema is None:
            raise ValueError(f"{self.name}: its columns are decided at run time")
        return tuple(self.schema.fieldNames())


def _schema(*fields: tuple[str, object]) -> StructType:
    """A stored schema: every column nullable (module docstring)."""
    return StructType([StructField(name, data_type) for name, data_type in fields])


STRING, DATE, TIMESTAMP = StringType(), DateType(), TimestampType()
DELETION_VECTORS = "delta.enableDeletionVectors"
# The big tables a night MERGEs a few rows into: an updated or deleted row is marked in its file's
# deletion vector and the file kept, instead of the file being rewritten. Not on stitch's tables:
# with them B3 at bench scale M measured 0.71 against 0.63 without (one pair each); step by step
# (bench/results/incremental-night.md, 2026-12-07) the incremental stitch's four MERGEs took about
# 4 s less and the reads after them about 4 s more, even a read of the map's version from before
# any vector was written. Why those reads are slower is not known.
MERGED_BY_KEY = {DELETION_VECTORS: "true"}
# jobs.metrics.EXACT_DECIMAL (lens.plan.SUM_DECIMAL) as a Spark type: money summed exactly.
EXACT_DECIMAL_TYPE = DecimalType(SUM_DECIMAL_PRECISION, SUM_DECIMAL_SCALE)

# Evidence of an identifier or an edge (jobs.identity.evidence): min/max merged, so re-runs change nothing.
_EVIDENCE = (
    ("first_seen", TIMESTAMP), ("last_seen", TIMESTAMP),
    ("first_source_kind", STRING),  # message type, or customer_master
    ("first_source_id", STRING),    # message_id or row_hash
    ("first_source_file", STRING),
    ("last_run_date", DATE),        # bronze run_date: how far stitching has read
)
_EDGE_KEY = ("a_type", "a_value", "b_type", "b_value")
# Edges are stored once per unordered pair, smaller (type, value) first.
_EDGE = _schema(("a_type", STRING), ("a_value", STRING), ("b_type", STRING), ("b_value", STRING), *_EVIDENCE)

# gold/rfm's measures and scores of a customer (gold/rfm_history keeps them per run).
_RFM_SCORES = (
    ("recency_days", IntegerType()), ("frequency", LongType()), ("monetary", DoubleType()),
    ("r_score", IntegerType()), ("f_score", IntegerType()), ("m_score", IntegerType()), ("rfm_segment", STRING),
)

SPECS: dict[str, TableSpec] = {spec.name: spec for spec in (
    # ---------------------------------------------------------------------------------- ingest
    TableSpec(
        t.BRONZE_EVENTS,
        _schema(
            ("message_id", STRING),               # never null
            ("type", STRING),                     # never null: identify, track, group, alias, page, screen
            ("event", STRING),
            ("user_id", STRING),
            ("anonymous_id", STRING),
            ("previous_id", STRING),
            ("group_id", STRING),                 # groupId of a group call, or of a track (top level or context.groupId)
            ("timestamp", TIMESTAMP),             # never null; UTC
            ("email", STRING),                    # normalized, from traits or context.traits
            ("phone", STRING),                    # as received (trimmed), from traits or context.traits
            ("properties", STRING),               # JSON text, for the activity stream
            ("raw", STRING),                      # never null: the line as received (traits, context: parse it)
            ("source_file", STRING),              # never null
            ("run_date", DATE),                   # never null
        ),
        keys=("message_id",),
        partition_by=("run_date",),
        # Delta's min/max statistics only for `timestamp`, the column a time range over bronze/events
        # skips files by (the stages read it by its run_date partitions). By default Delta takes them
        # for the first 32 columns, ids and JSON text whose min/max skip nothing: at bench scale M
        # the bronze write took 12.0 s with those and 8.5 s with timestamp's alone.
        properties={"delta.dataSkippingStatsColumns": "timestamp"},
        made_by="ingest",
    ),
    TableSpec(
        t.BRONZE_CUSTOMERS,
        _schema(
            *[(c, STRING) for c in CUSTOMER_COLUMNS],  # customer_id never null
            ("row_hash", STRING),                 # never null: sha2 of the row's values, the same row is kept once
            ("source_file", STRING),              # never null
            ("run_date", DATE),                   # never null
        ),
        keys=("row_hash",),
        partition_by=("run_date",),
        made_by="ingest",
    ),
    TableSpec(
        t.QUARANTINE_EVENTS,
        _schema(
            ("kind", STRING),                     # never null: event | customer
            ("raw", STRING),                      # the line as text; bytes that are not UTF-8 read U+FFFD
            ("raw_bytes", BinaryType()),          # the line exactly as received
            ("reason", STRING),                   # never null
            ("source_file", STRING),              # never null
            ("line_hash", STRING),                # never null: sha2(source_file, raw, copy number), quarantined once
            ("run_date", DATE),                   # never null
        ),
        keys=("line_hash",),
        partition_by=("run_date",),
        made_by="ingest",
    ),
    # ---------------------------------------------------------------------------------- stitch
    TableSpec(
        t.IDENTITY_MAP,
        _schema(
            ("identifier_type", STRING),
            ("identifier_value", STRING),
            ("customer_id", STRING),              # never null
            # Graph component before per-customer limits (internal: what an incremental run recomputes).
            ("component", LongType()),            # never null
        ),
        keys=("identifier_type", "identifier_value"),
        made_by="stitch",
    ),
    TableSpec(
        t.IDENTITY_AUDIT,
        _schema(
            ("run_date", DATE),
            ("rule", STRING),
            ("identifier_type", STRING),
            ("identifier_value", STRING),
            # The other end of a cut edge (rule limit:<type>, alias_merge); null when a whole identifier was removed.
            ("other_type", STRING),
            ("other_value", STRING),
            ("detail", STRING),
        ),
        keys=("run_date", "rule", "identifier_type", "identifier_value", "other_type", "other_value"),
        made_by="stitch",
    ),
    TableSpec(
        t.IDENTITY_LINEAGE,
        _schema(("run_date", DATE), ("old_id", STRING), ("new_id", STRING), ("change", STRING)),  # change: merge | split
        keys=("run_date", "old_id", "new_id", "change"),
        made_by="stitch",
    ),
    TableSpec(
        t.IDENTITY_IDENTIFIERS,
        _schema(("identifier_type", STRING), ("identifier_value", STRING), *_EVIDENCE),
        keys=("identifier_type", "identifier_value"),
        made_by="stitch",
    ),
    TableSpec(t.IDENTITY_EDGES, _EDGE, keys=_EDGE_KEY, made_by="stitch"),
    TableSpec(
        t.IDENTITY_ALIASES,
        # previousId of an alias call x each identifier of the call
        _schema(("previous_id", STRING), ("other_type", STRING), ("other_value", STRING), *_EVIDENCE),
        keys=("previous_id", "other_type", "other_value"),
        made_by="stitch",
    ),
    TableSpec(t.IDENTITY_ALIAS_EDGES, _EDGE, keys=_EDGE_KEY, made_by="stitch"),
    TableSpec(
        t.PROFILE_CALLS,
        # bronze/events' identify and group calls, with the traits read out of `raw` (the column
        # that makes bronze large): survivorship and the groups read these, never the whole bronze
        _schema(
            ("message_id", STRING),               # never null
            ("type", STRING),                     # never null: identify | group
            ("user_id", STRING),
            ("anonymous_id", STRING),
            ("group_id", STRING),
            ("timestamp", TIMESTAMP),             # never null
            ("email", STRING),                    # as in bronze/events
            ("phone", STRING),                    # as in bronze/events
            ("customer_name", STRING),            # an identify call's name trait (trimmed)
            ("group_traits", MapType(STRING, STRING)),  # a group call's traits
            ("run_date", DATE),                   # never null: the bronze row's
        ),
        keys=("message_id",),
        made_by="stitch",
    ),
    TableSpec(
        t.SILVER_CUSTOMERS,
        _schema(*[(c, STRING) for c in CUSTOMER_COLUMNS], ("group_ids", ArrayType(STRING))),
        keys=("customer_id",),
        made_by="stitch",
    ),
    # ------------------------------------------------------------------------------ activities
    TableSpec(
        t.ACTIVITY_STREAM,
        _schema(
            ("activity_uuid", STRING),            # never null
            ("entity_id", STRING),                # stitched customer_id; null while unresolved
            ("anonymous_entity_id", STRING),      # the event's anonymousId
            ("activity", STRING),                 # never null
            ("activity_ts", TIMESTAMP),           # never null
            *[(slot, STRING) for slot in FEATURE_SLOTS],
            ("feature_json", STRING),             # all properties, as received
            ("revenue_impact", DoubleType()),
            ("activity_occurence", IntegerType()),  # the seed model's spelling
            ("activity_repeated_at", TIMESTAMP),
            ("group_id", STRING),                 # set on every row of a group event
            ("identifier_type", STRING),          # what the activity arrived on / belongs to
            ("identifier_value", STRING),
            ("user_id", STRING),                  # the event's userId, to re-attribute rows
            ("message_id", STRING),               # never null
            ("ingested_on", DATE),                # never null: bronze run_date, how far the stream has read
        ),
        keys=("activity_uuid",),
        made_by="activities",
        # a night's MERGE marks the rows it replaces in a deletion vector instead of rewriting every
        # file that holds one (the stream is the biggest table; a night changes a sliver of it)
        properties=MERGED_BY_KEY,
    ),
    TableSpec(
        t.ACTIVITY_DAILY,
        _schema(
            ("entity_id", STRING),                # never null: only attributed activities
            ("activity_date", DATE),              # date(activity_ts), in the session's time zone (UTC)
            ("activity", STRING),
            ("activities", LongType()),           # rows of the stream that day
            ("first_ts", TIMESTAMP),
            ("last_ts", TIMESTAMP),
            # exact sums (jobs.metrics.EXACT_DECIMAL) of revenue_impact and of the order value slot,
            # null when no row had a number; min/max as doubles
            ("revenue_sum", EXACT_DECIMAL_TYPE),
            ("revenue_min", DoubleType()),
            ("revenue_max", DoubleType()),
            ("order_value_sum", EXACT_DECIMAL_TYPE),
            ("order_value_min", DoubleType()),
            ("order_value_max", DoubleType()),
            # order activities only: the day's distinct order_no values, sorted (null otherwise)
            ("order_numbers", ArrayType(STRING)),
        ),
        keys=("entity_id", "activity_date", "activity"),
        made_by="activities",
        properties=MERGED_BY_KEY,
    ),
    TableSpec(
        t.GROUPS,
        _schema(
            ("group_id", STRING),
            ("email", STRING),
            ("phone", STRING),
            ("first_name", STRING),
            ("last_name", STRING),
            ("name", STRING),
            ("custom_traits", MapType(STRING, STRING)),
            ("updated_at", TIMESTAMP),
        ),
        keys=("group_id",),
        made_by="activities",
    ),
    TableSpec(
        t.GROUP_MEMBERS,
        _schema(("group_id", STRING), ("customer_id", STRING), ("joined_on", DATE), ("source", STRING)),
        keys=("group_id", "customer_id"),
        made_by="activities",
    ),
    TableSpec(
        t.GROUP_MEMBERSHIP_HISTORY,
        _schema(("group_id", STRING), ("customer_id", STRING), ("joined_on", DATE), ("joined_at", TIMESTAMP),
                ("left_on", DATE), ("left_by", STRING), ("source", STRING)),
        keys=("group_id", "customer_id", "joined_at"),
        made_by="activities",
    ),
    # ------------------------------------------------------------------------- rfm, traits
    TableSpec(
        t.RFM,
        _schema(("customer_id", STRING), *_RFM_SCORES, ("run_date", DATE)),
        keys=("customer_id",),
        made_by="rfm",
    ),
    TableSpec(
        t.RFM_HISTORY,
        _schema(("run_date", DATE), ("customer_id", STRING), *_RFM_SCORES),
        keys=("run_date", "customer_id"),
        partition_by=("run_date",),
        made_by="rfm",
    ),
    TableSpec(
        t.RFM_MIGRATION,
        _schema(
            ("run_date", DATE),
            ("from_run_date", DATE),              # the previous run in gold/rfm_history; null on the first run
            ("from_segment", STRING),             # never null: a segment, or "(not scored)"
            ("to_segment", STRING),               # never null: a segment, or "(not scored)"
            ("customers", LongType()),
        ),
        keys=("run_date", "from_segment", "to_segment"),
        partition_by=("run_date",),
        made_by="rfm",
    ),
    TableSpec(
        t.COHORT_RETENTION,
        _schema(
            ("cohort_month", DATE),               # first day of the month of the customer's first order placed
            ("months_since", IntegerType()),      # 0 = the cohort month
            ("cohort_customers", LongType()),
            ("active_customers", LongType()),     # of them, with an order placed in that month
            ("retention_rate", DoubleType()),     # active_customers / cohort_customers
            ("run_date", DATE),
        ),
        keys=("cohort_month", "months_since"),
        made_by="rfm",
    ),
    # customer_id and one column per configured trait (traits.computed)
    TableSpec(t.TRAITS, None, keys=("customer_id",), made_by="traits"),
    TableSpec(t.GROUP_TRAITS, None, keys=("group_id",), made_by="traits"),
    # -------------------------------------------------------------------------------- segments
    TableSpec(
        t.SEGMENT_MEMBERSHIP,
        _schema(
            ("segment", STRING),
            ("level", STRING),
            ("member_id", STRING),
            ("entered_on", DATE),
            ("exited_on", DATE),                  # null while a member
        ),
        keys=("segment", "level", "member_id", "entered_on"),
        made_by="segments",
    ),
    TableSpec(
        t.SEGMENT_CHANGES,
        _schema(
            ("run_date", DATE),
            ("segment", STRING),
            ("level", STRING),
            ("member_id", STRING),
            ("change", STRING),                   # add | remove
        ),
        keys=("run_date", "segment", "level", "member_id"),
        made_by="segments",
    ),
    TableSpec(
        t.SEGMENT_EXPORTS,
        _schema(
            ("run_date", DATE),
            ("segment", STRING),
            ("label", STRING),                    # <Group>=<Segment>
            ("id_type", STRING),
            ("id", STRING),
            ("change", STRING),                   # add | remove
        ),
        keys=("run_date", "segment", "label", "id_type", "id"),
        made_by="segments",
    ),
    TableSpec(
        t.SEGMENT_RUNS,
        _schema(
            ("run_date", DATE),
            ("segment", STRING),
            ("level", STRING),
            ("members", LongType()),
            ("adds", LongType()),
            ("removes", LongType()),
            ("export_file", STRING),
            ("export_adds", LongType()),
            ("export_removes", LongType()),
            ("skipped_no_consent", LongType()),
            ("skipped_no_email", LongType()),
            ("skipped_no_value", LongType()),     # a segment group's member whose value the file cannot carry
        ),
        keys=("run_date", "segment"),
        made_by="segments",
    ),
    # ------------------------------------------------------------------------ lens-materialize
    # One table per lens.materialize entry, with its query's columns: see spec_for.
    TableSpec(t.lens_table("<name>"), None, made_by="lens-materialize"),
)}


def spec_for(table: str) -> TableSpec | None:
    """The spec of a table name (gold/lens_<name> for every materialized lens query), or None."""
    spec = SPECS.get(table)
    if spec is None and table.startswith(t.LENS_PREFIX):
        return dataclasses.replace(SPECS[t.lens_table("<name>")], name=table)
    return spec
