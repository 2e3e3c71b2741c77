"""`c360 ingest --input DIR`: raw files -> bronze/events, bronze/customers, quarantine/events.

Events: DIR/events/**/*.jsonl(.gz), one Segment message per line, parsed with an explicit schema.
Customers: DIR/customers/**/*.csv with a header row (interface §3).

Nothing is lost: a line that fails a check goes to quarantine/events with the first failing reason,
and for every run  lines read = accepted + duplicates + quarantined  (likewise for customer rows).
A messageId seen before (in this batch or an earlier run) is a replay and is kept once; a customer
row identical to one seen before is kept once. Re-running the same input changes no table.
Blank lines are not messages and are not counted. DIR may be any location Hadoop reads, and a night
reads only the files an earlier night has not landed (jobs.ingest.inputs: the manifest
_control/input_files, the late window).

Cost model (bench B4): the input is parsed once (traits and context only for the fields ingest
uses) and the shaped rows are cached; counts, the quarantine write and the bronze write all read
that cache. bronze/events keeps `properties` for the activity stream; traits and context stay in
`raw`, read from there by the few stages that need more of them (groups, survivorship).
Deduplication never moves the full rows: only the keys are shuffled, to find the few that repeat or
were seen before, and that small set is broadcast to the rows.
"""
from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from jobs.core import tables
from jobs.core.session import BROADCAST_KEYS_MAX, session_conf
from jobs.core.storage import first_line
from jobs.core.catalog import SPECS, TableSpec
from jobs.core.config import IngestSettings
from jobs.core.context import JobContext, RunParams, StageResult
from jobs.core.errors import InputError
from jobs.identity.identifiers import normalize_email, normalize_id
from jobs.ingest.inputs import (
    discover_inputs,
    late_window_start,
    record_landed,
    select_new_files,
    skipped_note,
)
from jobs.ingest.reasons import (  # the quarantine reasons' one definition (shared with the generator)
    BAD_TIMESTAMP,
    EVENT_REASONS,  # noqa: F401  (re-exported: the reasons in the order they are checked)
    INVALID_JSON,
    MISSING_CUSTOMER_ID,
    MISSING_EVENT,
    MISSING_GROUP_ID,
    MISSING_IDENTITY,
    MISSING_MESSAGE_ID,
    MISSING_PREVIOUS_ID,
    MISSING_TIMESTAMP,
    MISSING_TYPE,
    NOT_AN_OBJECT,
    TOO_LATE,
    UNKNOWN_TYPE,
)
from jobs.ingest.schemas import (
    CONTACT_FIELDS,
    CONTEXT_FIELDS,
    CORRUPT_RECORD,
    CUSTOMER_COLUMNS,
    EVENT_TYPES,
    MESSAGE_TEXT_FIELDS,
    RAW_EVENT_SCHEMA,
    RAW_EVENT_TEXT_SCHEMA,
)


KIND_EVENT = "event"
KIND_CUSTOMER = "customer"

# ISO-8601 with an explicit zone: `Z` or an offset (+05:30, -0400). A timestamp without a zone is
# ambiguous and is quarantined rather than guessed.
ISO_TIMESTAMP_WITH_ZONE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$"
FIELD_SEPARATOR = "\u0001"
# Strict JSON: Spark's parser accepts single-quoted strings by default, JSONL producers do not.
JSON_OPTIONS = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_RECORD, "allowSingleQuotes": "false"}
# Working columns of the landing (never written).
COPIES, SEEN, RANK = "_copies", "_seen", "_rank"
CACHE_COMPRESSION = "spark.sql.inMemoryColumnarStorage.compressed"
MB = 1024 * 1024
# The tables ingest writes (schemas, keys, partitioning, table properties: jobs.core.catalog).
EVENTS_SPEC = SPECS[tables.BRONZE_EVENTS]
CUSTOMERS_SPEC = SPECS[tables.BRONZE_CUSTOMERS]
QUARANTINE_SPEC = SPECS[tables.QUARANTINE_EVENTS]


# ----------------------------------------------------------------------------------------------
# Input: listing, the files a night reads and their manifest are jobs.ingest.inputs
# ----------------------------------------------------------------------------------------------


def read_csv_header(spark: SparkSession, path: str) -> list[str]:
    line = first_line(spark, path)
    header = next(csv.reader([line]), None) if line is not None else None
    if not header:
        raise InputError(f"customer file {path} is empty (a header row is required)")
    names = [h.strip() for h in header]
    if "customer_id" not in names:
        raise InputError(f"customer file {path}: header has no customer_id column (found: {', '.join(names)})")
    return names


# ----------------------------------------------------------------------------------------------
# Events: pure transformations
# ----------------------------------------------------------------------------------------------


def _blank(col: Column) -> Column:
    return col.isNull() | (F.trim(col) == "")


def _message_type(m: Column) -> Column:
    return F.lower(F.trim(m["type"]))


def parse_event_lines(lines: DataFrame) -> DataFrame:
    """[raw, source_file] -> raw, source_file and the parsed message (`m`).

    One parse per line: RAW_EVENT_SCHEMA reads the contact fields of `traits` and `context` directly
    and skips the rest. A line it rejects is either invalid JSON or has a `traits` / `context` that
    is not an object; only those lines are parsed again, every field as text, which tells the two
    apart (CASE WHEN evaluates the second parse for them alone)."""
    typed = F.col("_typed")
    rejected = typed.isNull() | typed[CORRUPT_RECORD].isNotNull()
    # Only a line that does not start as an object needs the check that tells "valid JSON, but not
    # an object" from "not JSON".
    starts_as_object = F.ltrim("raw").startswith("{")
    first = lines.select(
        "raw",
        "source_file",
        F.from_json("raw", RAW_EVENT_SCHEMA, JSON_OPTIONS).alias("_typed"),
        starts_as_object.alias("starts_as_object"),
        F.when(~starts_as_object, F.get_json_object("raw", "$").isNotNull()).alias("is_json"),
    )
    # A rejected line's fields, in RAW_EVENT_SCHEMA's shape: an object that was not one reads as null.
    # Written inline, the text parse runs once per field, for the rejected lines only (a handful).
    text = F.from_json("raw", RAW_EVENT_TEXT_SCHEMA, JSON_OPTIONS)
    from_text = F.struct(
        *[text[name].alias(name) for name in MESSAGE_TEXT_FIELDS],
        F.from_json(text["traits"], CONTACT_FIELDS).alias("traits"),
        F.from_json(text["context"], CONTEXT_FIELDS).alias("context"),
        text[CORRUPT_RECORD].alias(CORRUPT_RECORD),
    )
    return first.select(
        "raw",
        "source_file",
        F.when(rejected, from_text).otherwise(typed).alias("m"),
        "starts_as_object",
        "is_json",
    )


def event_rejection_reason(df: DataFrame) -> DataFrame:
    """Adds `reason`: the first failing check, or null for an acceptable message."""
    m = F.col("m")
    msg_type = _message_type(m)
    has_identity = ~_blank(m["userId"]) | ~_blank(m["anonymousId"])
    # A track with a group id and no user is an event of the whole group (interface §3; Blueshift's
    # group transactions): it reaches every member.
    group_event = (msg_type == "track") & ~_blank(F.coalesce(m["groupId"], m["context"]["groupId"]))
    starts_as_object = F.col("starts_as_object")
    reason = (
        F.when(starts_as_object & (m.isNull() | m[CORRUPT_RECORD].isNotNull()), F.lit(INVALID_JSON))
        .when(~starts_as_object & F.col("is_json"), F.lit(NOT_AN_OBJECT))
        .when(~starts_as_object, F.lit(INVALID_JSON))
        .when(_blank(m["messageId"]), F.lit(MISSING_MESSAGE_ID))
        .when(_blank(m["type"]), F.lit(MISSING_TYPE))
        .when(~msg_type.isin(*EVENT_TYPES), F.lit(UNKNOWN_TYPE))
        .when(_blank(m["timestamp"]), F.lit(MISSING_TIMESTAMP))
        .when(
            ~F.trim(m["timestamp"]).rlike(ISO_TIMESTAMP_WITH_ZONE) | F.col("parsed_ts").isNull(),
            F.lit(BAD_TIMESTAMP),
        )
        .when((msg_type == "alias") & _blank(m["userId"]), F.lit(MISSING_IDENTITY))
        .when(~has_identity & ~group_event, F.lit(MISSING_IDENTITY))
        .when((msg_type == "track") & _blank(m["event"]), F.lit(MISSING_EVENT))
        .when((msg_type == "group") & _blank(m["groupId"]), F.lit(MISSING_GROUP_ID))
        .when((msg_type == "alias") & _blank(m["previousId"]), F.lit(MISSING_PREVIOUS_ID))
    )
    return df.withColumn("parsed_ts", F.expr("try_cast(trim(m.timestamp) AS TIMESTAMP)")).withColumn("reason", reason)


def reject_late(df: DataFrame, earliest: dt.date | None) -> DataFrame:
    """An acceptable message timestamped before `earliest` (the late window's first day, UTC) gets
    the reason TOO_LATE; None accepts any age."""
    if earliest is None:
        return df
    late = F.col("reason").isNull() & (F.col("parsed_ts") < F.lit(dt.datetime.combine(earliest, dt.time())))
    return df.withColumn("reason", F.when(late, F.lit(TOO_LATE)).otherwise(F.col("reason")))


def to_bronze_events(df: DataFrame, run_date) -> DataFrame:
    """Classified messages -> the bronze/events columns (identifiers normalized, UTC timestamp),
    plus `reason` (null = accepted), so one parse serves the quarantine and the bronze rows."""
    m = F.col("m")
    msg_type = _message_type(m)

    def contact(name: str) -> Column:
        # A group call's traits describe the group, not the caller: only identify traits (and any
        # message's context.traits) carry the user's own email and phone.
        return F.coalesce(F.when(msg_type == "identify", m["traits"][name]), m["context"]["traits"][name])

    # Accepted rows are valid UTF-8 everywhere (a byte sequence that is not becomes U+FFFD), so
    # every Delta reader can read bronze; a rejected line keeps its exact bytes for the quarantine.
    valid = F.make_valid_utf8
    return df.select(
        valid(F.trim(m["messageId"])).alias("message_id"),
        msg_type.alias("type"),
        valid(F.trim(m["event"])).alias("event"),
        valid(normalize_id(m["userId"])).alias("user_id"),
        valid(normalize_id(m["anonymousId"])).alias("anonymous_id"),
        valid(normalize_id(m["previousId"])).alias("previous_id"),
        valid(normalize_id(F.coalesce(m["groupId"], m["context"]["groupId"]))).alias("group_id"),
        F.col("parsed_ts").alias("timestamp"),
        valid(normalize_email(contact("email"))).alias("email"),
        # As received (trimmed): the identity stage reads it as E.164 (jobs.identity.phones), once per value.
        valid(normalize_id(contact("phone"))).alias("phone"),
        valid(m["properties"]).alias("properties"),
        F.when(F.col("reason").isNull(), valid(F.col("raw"))).otherwise(F.col("raw")).alias("raw"),
        "source_file",
        F.lit(run_date).cast("date").alias("run_date"),
        "reason",
    )


def keys_to_resolve(batch_keys: DataFrame, table_keys: DataFrame | None, key: str, *,
                    broadcast_batch: bool = False) -> DataFrame:
    """[key] of a batch -> [key, _seen]: the keys that are not simply new, i.e. repeated within the
    batch (`_seen` false) or already in the table (`_seen` true). Replays are a small share of a
    batch, so this is a small table, and only key columns are shuffled to find it.

    `broadcast_batch` (a batch small next to the table, see jobs.core.session.BROADCAST_KEYS_MAX): the batch's
    keys are broadcast and the table's key column is probed as it is scanned, so the table's keys
    are never shuffled (a night's input against all of bronze)."""
    copies = batch_keys.groupBy(key).agg(F.count(F.lit(1)).alias(COPIES))
    if table_keys is None:
        return copies.filter(F.col(COPIES) > 1).select(key, F.lit(False).alias(SEEN))
    if broadcast_batch:
        # distinct: one row per key even if the table held a key twice (the result is a few rows)
        in_table = table_keys.join(F.broadcast(copies.select(key)), on=key, how="left_semi").distinct()
    else:
        # left_semi keeps at most one row per batch key, whatever the table holds.
        in_table = copies.join(table_keys, on=key, how="left_semi")
    seen = in_table.select(key, F.lit(True).alias(SEEN))
    return (
        copies.join(seen, on=key, how="left")
        .filter((F.col(COPIES) > 1) | F.col(SEEN).isNotNull())
        .select(key, F.coalesce(F.col(SEEN), F.lit(False)).alias(SEEN))
    )


def keep_new_first_copies(rows: DataFrame, to_resolve: DataFrame, key: str) -> DataFrame:
    """Rows whose key the table does not hold yet, one per key: a replay within the batch keeps
    its first copy by (source_file, raw), so the pick is stable. `to_resolve` comes from
    keys_to_resolve; when it is small (materialized, so its size is known) it is broadcast. Only the
    rows of repeated keys are then ranked (a shuffle of a few rows); every other row stays put."""
    marked = rows.join(to_resolve, on=key, how="left")
    first = Window.partitionBy(key).orderBy("source_file", "raw")
    ranked = (
        marked.filter(~F.col(SEEN))
        .withColumn(RANK, F.row_number().over(first))
        .filter(F.col(RANK) == 1)
        .drop(RANK)
    )
    return marked.filter(F.col(SEEN).isNull()).unionByName(ranked).drop(SEEN)


def to_quarantine(df: DataFrame, kind: str, run_date) -> DataFrame:
    """One row per rejected line. The same bad line twice in one file is two rows: the key numbers
    identical lines within their file, so a re-run finds the same keys and a count still adds up.

    A line is kept exactly as received in `raw_bytes`; `raw` is its text with any byte sequence that
    is not UTF-8 replaced by U+FFFD, so every Delta reader can read the table (Spark's text source
    passes invalid bytes through, and Arrow-based readers such as delta-rs reject them)."""
    same_line = Window.partitionBy("source_file", "raw").orderBy("reason")
    return df.withColumn("_copy", F.row_number().over(same_line)).select(
        F.lit(kind).alias("kind"),
        F.make_valid_utf8("raw").alias("raw"),
        F.col("raw").cast("binary").alias("raw_bytes"),
        "reason",
        "source_file",
        F.sha2(F.concat_ws(FIELD_SEPARATOR, "source_file", "raw", F.col("_copy").cast("string")), 256).alias("line_hash"),
        F.lit(run_date).cast("date").alias("run_date"),
    )


# ----------------------------------------------------------------------------------------------
# Customers: pure transformations
# ----------------------------------------------------------------------------------------------


def to_bronze_customers(df: DataFrame, run_date) -> DataFrame:
    """Rows with the customer columns (strings) -> bronze/customers; `reason` set for bad rows."""
    values = [F.trim(F.col(c)).alias(c) for c in CUSTOMER_COLUMNS]
    trimmed = df.select(*values, "source_file", "raw")
    row_hash = F.sha2(F.concat_ws(FIELD_SEPARATOR, *[F.coalesce(F.col(c), F.lit("")) for c in CUSTOMER_COLUMNS]), 256)
    return trimmed.select(
        *[F.when(F.col(c) != "", F.col(c)).alias(c) for c in CUSTOMER_COLUMNS],
        row_hash.alias("row_hash"),
        "source_file",
        F.lit(run_date).cast("date").alias("run_date"),
        "raw",
        F.when(_blank(F.col("customer_id")), F.lit(MISSING_CUSTOMER_ID)).alias("reason"),
    )


# ----------------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------------


def read_event_lines(spark: SparkSession, files: list[str]) -> DataFrame:
    lines = spark.read.text(files)
    return lines.select(F.col("value").alias("raw"), F.col("_metadata.file_path").alias("source_file")).filter(
        F.trim("raw") != ""
    )


def read_customer_rows(spark: SparkSession, files: list[str]) -> DataFrame | None:
    """All customer CSVs as string columns in CUSTOMER_COLUMNS order, whatever each file's column order."""
    by_header: dict[tuple[str, ...], list[str]] = {}
    for path in files:
        by_header.setdefault(tuple(read_csv_header(spark, path)), []).append(path)
    frames = []
    for header, paths in sorted(by_header.items()):
        schema = StructType([StructField(h, StringType()) for h in header])
        df = spark.read.csv(paths, header=True, schema=schema, mode="PERMISSIVE", multiLine=True, escape='"')
        present = [c for c in header]
        frames.append(
            df.select(
                *[(F.col(f"`{c}`") if c in present else F.lit(None).cast("string")).alias(c) for c in CUSTOMER_COLUMNS],
                F.col("_metadata.file_path").alias("source_file"),
                F.to_json(F.struct(*[F.col(f"`{h}`") for h in header])).alias("raw"),
            )
        )
    if not frames:
        return None
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def append_new(spark: SparkSession, wh, rows: DataFrame, spec: TableSpec, row_count: int | None = None) -> int:
    """Append rows whose key (the spec's one key column) the table has not seen, one per key;
    returns how many were written. A missing table is created from its spec first. `row_count`
    (how many `rows` there are, when known) lets a small batch probe the table by broadcast."""
    table, (key,) = spec.name, spec.keys
    before = wh.version(spark, table)
    table_keys = wh.read(spark, table).select(key) if before >= 0 else None
    small = row_count is not None and row_count <= BROADCAST_KEYS_MAX
    to_resolve = keys_to_resolve(rows.select(key), table_keys, key, broadcast_batch=small).persist()
    try:
        # Materialized first, the planner sees its true (small) size and broadcasts it to the
        # rows instead of shuffling every full row to meet it.
        to_resolve.count()
        new_rows = keep_new_first_copies(rows, to_resolve, key)
        if before < 0:
            wh.create(spark, spec)
        wh.append(new_rows.select(*spec.columns), table, partition_by=list(spec.partition_by))
    finally:
        to_resolve.unpersist()
    return wh.operation_metrics_since(spark, table, before).get("numOutputRows", 0)


def quarantine_new(spark: SparkSession, wh, rows: DataFrame) -> None:
    """Insert quarantined lines not quarantined before. to_quarantine numbers identical lines, so
    line_hash is already unique within the batch: only the table's keys need checking."""
    table = QUARANTINE_SPEC.name
    if wh.exists(spark, table):
        rows = rows.join(wh.read(spark, table).select("line_hash"), on="line_hash", how="left_anti")
    else:
        wh.create(spark, QUARANTINE_SPEC)
    # mergeSchema: a table written before raw_bytes existed gains the column (null in older rows).
    wh.append(rows.select(*QUARANTINE_SPEC.columns), table, partition_by=list(QUARANTINE_SPEC.partition_by),
              options={"mergeSchema": "true"})


def landing_storage(input_bytes: int, settings: IngestSettings) -> StorageLevel:
    """Where a landing keeps its parsed rows between the counts and the two writes: in memory (and
    disk) for an input up to `memory_cache_max_mb`, else on local disk only. Spark's columnar cache
    builds its buffers outside the memory it accounts for, so caching an input near the size of the
    heap in memory dies of OutOfMemoryError instead of spilling (bench L: 7 GB of JSON, 4 GB driver,
    "Java heap space" in ColumnBuilder.ensureFreeSpace after 30 of 53 partitions)."""
    if input_bytes > settings.memory_cache_max_mb * MB:
        return StorageLevel.DISK_ONLY
    return StorageLevel.MEMORY_AND_DISK


def persist_uncompressed(spark: SparkSession, df: DataFrame, storage: StorageLevel = StorageLevel.MEMORY_AND_DISK) -> DataFrame:
    """`df.persist(storage)` with the columnar cache's compression off. The rows being landed are mostly
    distinct JSON text, which its run-length and dictionary encodings barely shrink (by 8 % at
    bench scale S) while trying them costs about 0.4 s of a 1.7 s parse-and-cache there. The setting
    is read when the cache is defined, so it is switched off only around `persist`."""
    with session_conf(spark, CACHE_COMPRESSION, "false"):
        return df.persist(storage)


def _reason_counts(df: DataFrame) -> dict[str | None, int]:
    # At most one row per reason: a handful of rows, whatever the input size.
    return {row["reason"]: row["count"] for row in df.groupBy("reason").count().collect()}


@dataclass(frozen=True)
class Landing:
    """Counts of one landing: read = accepted + duplicates + quarantined."""

    read: int
    accepted: int
    duplicates: int
    quarantined: int
    by_reason: dict[str, int]


def land(spark: SparkSession, wh, classified: DataFrame, *, kind: str, spec: TableSpec, run_date,
         storage: StorageLevel = StorageLevel.MEMORY_AND_DISK) -> Landing:
    """Quarantine the rows with a `reason`, append the others (first per key, not seen before) to
    the spec's table. `classified` has its columns plus raw, source_file and reason; it is cached
    (`storage`, see landing_storage), so one parse serves the counts and both writes (the first
    action, the counts, fills the cache)."""
    classified = persist_uncompressed(spark, classified, storage)
    try:
        by_reason = _reason_counts(classified)
        valid = by_reason.pop(None, 0)
        quarantined = sum(by_reason.values())
        if quarantined:
            quarantine_new(spark, wh, to_quarantine(classified.filter("reason IS NOT NULL"), kind, run_date))
        accepted = append_new(spark, wh, classified.filter("reason IS NULL"), spec, row_count=valid)
    finally:
        classified.unpersist()
    return Landing(valid + quarantined, accepted, valid - accepted, quarantined, by_reason)


def classify_event_lines(spark: SparkSession, files: list[str], run_date, earliest: dt.date | None = None) -> DataFrame:
    """Every non-blank line of the event files, parsed, checked and shaped as bronze/events + `reason`
    (`earliest`: the late window's first day, see reject_late)."""
    return (
        read_event_lines(spark, files)
        .transform(parse_event_lines)
        .transform(event_rejection_reason)
        .transform(lambda df: reject_late(df, earliest))
        .transform(lambda df: to_bronze_events(df, run_date))
    )


def ingest_events(spark: SparkSession, wh, files: list[str], run_date,
                  storage: StorageLevel = StorageLevel.MEMORY_AND_DISK, earliest: dt.date | None = None) -> dict[str, int]:
    classified = classify_event_lines(spark, files, run_date, earliest)
    landed = land(spark, wh, classified, kind=KIND_EVENT, spec=EVENTS_SPEC, run_date=run_date, storage=storage)
    return {
        "lines_read": landed.read,
        "accepted": landed.accepted,
        "duplicates": landed.duplicates,
        "quarantined": landed.quarantined,
        **{f"quarantined_{reason}": n for reason, n in sorted(landed.by_reason.items())},
    }


def ingest_customers(spark: SparkSession, wh, files: list[str], run_date) -> dict[str, int]:
    rows = read_customer_rows(spark, files)
    if rows is None:
        return {}
    classified = rows.transform(lambda df: to_bronze_customers(df, run_date))
    landed = land(spark, wh, classified, kind=KIND_CUSTOMER, spec=CUSTOMERS_SPEC, run_date=run_date)
    return {
        "customer_rows_read": landed.read,
        "customer_rows_accepted": landed.accepted,
        "customer_rows_duplicates": landed.duplicates,
        "customer_rows_quarantined": landed.quarantined,
    }


def run(ctx: JobContext, params: RunParams) -> StageResult:
    settings = ctx.config.ingest
    if params.input_dir is None:
        raise InputError("ingest needs the raw input folder (--input DIR)")
    spark, wh = ctx.spark, ctx.warehouse
    # the nightly's listing when it made one (RunParams.inputs), so the folder is listed once a night
    inputs = params.inputs or discover_inputs(spark, params.input_dir, settings.events_glob, settings.customers_glob)
    night = select_new_files(spark, wh, inputs, ctx.run_date)
    metrics: dict[str, int] = {"lines_read": 0, "accepted": 0, "duplicates": 0, "quarantined": 0}
    if night.event_files:
        level = landing_storage(sum(f.size for f in night.event_files), settings)
        earliest = late_window_start(ctx.run_date, settings.late_window_days, night.has_history)
        metrics.update(ingest_events(spark, wh, [f.path for f in night.event_files], ctx.run_date, level, earliest))
    metrics.update(ingest_customers(spark, wh, [f.path for f in night.customer_files], ctx.run_date))
    metrics.update(files_read=len(night.event_files) + len(night.customer_files), files_skipped=len(night.skipped))
    # The table exists after every run, empty when nothing was ever quarantined.
    wh.create(spark, QUARANTINE_SPEC)
    record_landed(spark, wh, night, ctx.run_date)
    result = StageResult(metrics=metrics)
    if metrics["lines_read"] and metrics["quarantined"] / metrics["lines_read"] > settings.warn_quarantine_ratio:
        result.notes.append(
            f"{metrics['quarantined']:,} of {metrics['lines_read']:,} event lines were quarantined; "
            f"see {wh.path(tables.QUARANTINE_EVENTS)}"
        )
    skipped = skipped_note(night.skipped)
    if skipped:
        result.notes.append(skipped)
    return result
