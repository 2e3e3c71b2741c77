"""Resonate-style differential exports (interface §6, docs/segments.md): exports/<segment>/<D>.<psv|csv>.

For every exported segment, the HEMSHA2 ids (SHA-256 of the normalized email) of its consenting
members' usable emails (every email of a customer); each run logs the adds and removes that take the
receiver from what earlier exports sent (gold/segment_exports) to that set, and writes them as one
delimited file through the Hadoop file system API (the only single-partition write in c360).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from jobs.core import tables
from jobs.core.errors import ConfigError
from jobs.core.session import computed
from jobs.identity.identifiers import EMAIL, normalize_email, sha256_email
from jobs.segments.conditions import CUSTOMER_SOURCES, Inputs
from jobs.segments.evaluate import set_changes
from jobs.segments.settings import CUSTOMER_LEVEL, GROUP_LEVEL, SegmentDefinition, SegmentExport, SegmentSettings
from jobs.segments.state import ADD, REMOVE, replace_from

HEMSHA2 = "HEMSHA2"
EXPORT_COLUMNS = ("ID Type", "ID", "Add", "Remove")
# exports/<D>.manifest.csv: one line per file sent on D, for the receiver to check an upload whole.
MANIFEST_COLUMNS = ("file", "group", "segment", "rows", "adds", "removes")
# A segment group's value becomes part of a label written unquoted: values holding a delimiter, a
# quote or a line break are not exported.
UNEXPORTABLE_VALUE = r'[|,"\r\n]'
# A usable email for export: something@domain.tld after normalization (trim, lower case).
USABLE_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def consent_given(consent: Column, values: list[str]) -> Column:
    return F.coalesce(F.lower(F.trim(consent)).isin(*[v.strip().lower() for v in values]), F.lit(False))


def export_candidates(members: DataFrame, inputs: Inputs, consent_values: list[str]) -> DataFrame:
    """(segment, member_id, email, consented): one row per member of an exported segment and email
    of theirs. At customer level every email of the customer, the one silver/customers keeps and
    every one stitched into them (gold/identity_map), so the receiver matches the person by any
    address they use (the match rate); a member with none has one row with a null email. At group
    level every email of every member of the group (gold/group_members), each with its customer's
    consent. At identifier:email level the identifier itself, with its customer's consent."""
    customers = inputs.customers.select("customer_id", "consent")
    emails = inputs.customers.select("customer_id", "email")
    by_email = members.filter(~F.col("level").isin(CUSTOMER_LEVEL, GROUP_LEVEL)).withColumn("email", F.col("member_id"))
    if inputs.identity_map is not None:
        owned = inputs.identity_map.filter(F.col("identifier_type") == EMAIL).select(
            "customer_id", F.col("identifier_value").alias("email"))
        emails = emails.unionByName(owned)
        by_email = by_email.join(owned.withColumnRenamed("email", "member_id"), on="member_id", how="left")
    else:
        by_email = by_email.withColumn("customer_id", F.lit(None).cast(StringType()))
    by_customer = members.filter(F.col("level") == CUSTOMER_LEVEL).withColumn("customer_id", F.col("member_id"))
    if inputs.group_members is not None:
        group_people = inputs.group_members.select(F.col("group_id").alias("member_id"), "customer_id")
        by_customer = by_customer.unionByName(
            members.filter(F.col("level") == GROUP_LEVEL).join(group_people, on="member_id", how="inner"))
    by_customer = by_customer.join(emails, on="customer_id", how="left")
    return (
        by_customer.unionByName(by_email)
        .join(customers, on="customer_id", how="left")
        .select("segment", "member_id", normalize_email(F.col("email")).alias("email"),
                consent_given(F.col("consent"), consent_values).alias("consented"))
        .distinct()
    )


def previously_exported(log: DataFrame, run_date: dt.date) -> DataFrame:
    """(segment, label, id) the receiver holds after every export before `run_date`."""
    return (
        log.filter(F.col("run_date") < F.lit(run_date))
        .groupBy("segment", "label", "id_type", "id")
        .agg(F.max_by("change", "run_date").alias("last_change"))
        .filter(F.col("last_change") == ADD)
        .drop("last_change")
    )


def segment_values(inputs: Inputs, exported: list[SegmentDefinition]) -> DataFrame | None:
    """(segment, member_id, value) of every segment group (export.segment_from) among `exported`:
    each customer's value of the field, as text. None when there is no segment group."""
    parts = []
    for d in exported:
        if not d.export.segment_from:
            continue
        source, column = d.export.segment_from.split(".", 1)
        table = inputs.customer_source(source)
        if table is None or column not in table.columns:
            raise ConfigError(f"segment '{d.name}': export.segment_from {d.export.segment_from!r} is not a column "
                              f"of {CUSTOMER_SOURCES[source]}" + ("" if table is not None else " (it does not exist)"))
        parts.append(table.select(F.lit(d.name).alias("segment"), F.col("customer_id").alias("member_id"),
                                  F.trim(F.col(column).cast("string")).alias("value")))
    return reduce(DataFrame.unionByName, parts) if parts else None


def exportable_value(value: Column) -> Column:
    """Whether a segment group's value can be part of a label (null for a null value)."""
    return (value != "") & ~value.rlike(UNEXPORTABLE_VALUE)


def with_labels(eligible: DataFrame, labels: DataFrame, values: DataFrame | None) -> DataFrame:
    """(segment, label, id_type, id): each eligible (segment, member_id, id_type, id) with its label:
    the segment's, or for a segment group <group>=<the member's value>. A member whose value is
    null or empty, or holds a character an export file cannot carry unquoted, is left out."""
    rows = eligible.join(labels.select("segment", "label", "by_value"), on="segment", how="inner")
    if values is None:
        return rows.select("segment", "label", "id_type", "id").distinct()
    valued = F.concat(F.col("label"), F.lit("="), F.col("value"))
    return (
        rows.join(values, on=["segment", "member_id"], how="left")
        .withColumn("label", F.when(~F.col("by_value"), F.col("label"))
                    .when(exportable_value(F.col("value")), valued))
        .filter(F.col("label").isNotNull())
        .select("segment", "label", "id_type", "id").distinct()
    )


def export_changes(eligible: DataFrame, exported_before: DataFrame, labels: DataFrame, run_date: dt.date) -> DataFrame:
    """The log rows (run_date, segment, label, id_type, id, change) that take the receiver from what
    it holds to `eligible` (segment, label, id_type, id), for the segments of `labels` (segment,
    label, static, by_value, full_list): adds and removes; a static segment's ids are never removed.
    A full-list segment's file is every id the receiver holds after it, so its ids held before and
    kept are logged as added again (the file lists them; its removes stay in the log, for what the
    receiver holds, and out of the file, which replaces the labels it names: file_log).

    Only the current label's history counts (for a segment group, every <group>=<value> label): a
    renamed group or segment starts with the full list.
    """
    keys = ["segment", "label", "id_type", "id"]
    current = labels.select("segment", F.col("label").alias("_current"), "by_value")
    before = (
        exported_before.join(current, on="segment", how="inner")
        .filter((F.col("label") == F.col("_current"))
                | (F.col("by_value") & F.col("label").startswith(F.concat(F.col("_current"), F.lit("=")))))
        .select(*keys)
    )
    changes = (set_changes(eligible, before, keys, run_date)
               .join(labels.select("segment", "static"), on="segment", how="inner")
               .filter(~F.col("static") | (F.col("change") == ADD)).drop("static"))
    kept_by_full_lists = (
        before.join(labels.filter(F.col("full_list")).select("segment"), on="segment", how="left_semi")
        .join(changes, on=keys, how="left_anti")
        .select(F.lit(run_date).alias("run_date"), *keys, F.lit(ADD).alias("change"))
    )
    return changes.unionByName(kept_by_full_lists)


def file_log(todays: DataFrame, full_lists: list[str]) -> DataFrame:
    """The log rows of `todays` (one run's gold/segment_exports rows) that its files carry: every
    row, but of a full-list segment only its adds, and the removes of labels its list no longer names
    (the receiver replaces the segments a file names: a label with no id left, a segment group's
    value nobody has any more, or an emptied segment, is cleared by its removes)."""
    if not full_lists:
        return todays
    full = F.col("segment").isin(*full_lists)
    listed = (todays.filter(full & (F.col("change") == ADD)).select("segment", "label").distinct()
              .withColumn("_listed", F.lit(True)))
    return (todays.join(listed, on=["segment", "label"], how="left")
            .filter(~full | (F.col("change") == ADD) | F.col("_listed").isNull())
            .drop("_listed"))


def export_rows(log_of_segment: DataFrame) -> DataFrame:
    """The file's rows, one per id: its Add and its Remove label (a member of a segment group who
    moved has both, `Tier=Gold|Tier=Silver`). Rows with an Add first, then removes only, each by id
    (a deterministic order, byte-exact re-runs)."""
    side = lambda change, name: (log_of_segment.filter(F.col("change") == change)  # noqa: E731
                                 .select("id_type", "id", F.col("label").alias(name)))
    add, remove = EXPORT_COLUMNS[2], EXPORT_COLUMNS[3]
    return (
        side(ADD, add).join(side(REMOVE, remove), on=["id_type", "id"], how="full_outer")
        .coalesce(1)
        .sortWithinPartitions(F.col(add).isNull(), "id", add, remove)
        .select(F.col("id_type").alias(EXPORT_COLUMNS[0]), F.col("id").alias(EXPORT_COLUMNS[1]), add, remove)
    )


def write_single_file(df: DataFrame, path: str, delimiter: str) -> None:
    """Write `df` (one partition) as one delimited file with a header at `path`, on any Hadoop FS.

    Only for exports: their size is bounded by the segment's size, and the receiver wants one file.
    """
    spark = df.sparkSession
    jvm = spark.sparkContext._jvm
    target = jvm.org.apache.hadoop.fs.Path(path)
    staging = jvm.org.apache.hadoop.fs.Path(target.getParent(), f"_{target.getName()}.tmp")
    df.write.mode("overwrite").option("header", True).option("sep", delimiter).csv(str(staging.toString()))
    fs = target.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    parts = [s.getPath() for s in fs.listStatus(staging) if s.getPath().getName().startswith("part-")]
    if len(parts) != 1:
        raise RuntimeError(f"expected one part file in {staging.toString()}, found {len(parts)}")
    fs.delete(target, False)
    fs.rename(parts[0], target)
    # the local file system keeps a .crc beside each file; the receiver wants only the export
    fs.delete(jvm.org.apache.hadoop.fs.Path(target.getParent(), f".{target.getName()}.crc"), False)
    fs.delete(staging, True)


def export_path(wh: tables.Warehouse, name: str, export: SegmentExport, run_date: dt.date, sequence: int) -> str:
    return wh.path(f"{tables.EXPORTS}/{export.file_path(name, run_date, sequence)}")


def files_sent_before(spark: SparkSession, wh: tables.Warehouse, run_date: dt.date) -> dict[str, int]:
    """How many files each segment sent before `run_date` (gold/segment_runs: a row per segment
    and run, with its export_file when one was sent); a handful of rows."""
    runs = wh.read(spark, tables.SEGMENT_RUNS).filter((F.col("run_date") < F.lit(run_date)) & F.col("export_file").isNotNull())
    return {r["segment"]: r["count"] for r in runs.groupBy("segment").count().collect()}


def manifest_path(wh: tables.Warehouse, run_date: dt.date) -> str:
    return wh.path(f"{tables.EXPORTS}/{run_date.isoformat()}.manifest.csv")


def manifest_text(settings: SegmentSettings, files: dict[str, str], root: str,
                  file_counts: dict[str, tuple[int, int, int]]) -> str:
    """The manifest of a run's export `files` (segment -> path): each file's path under `root`
    (exports/), its group and segment (`<field>` for a segment group), and what it carries
    (`file_counts`: data rows, adds, removes). A '|'-delimited export's names may hold commas, so
    the csv module quotes where needed."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    exports = {d.name: d.export for d in settings.definitions}
    for name, path in sorted(files.items()):
        export = exports[name]
        writer.writerow([path.removeprefix(root).lstrip("/"), export.group,
                         f"<{export.segment_from}>" if export.segment_from else export.segment,
                         *file_counts.get(name, (0, 0, 0))])
    return out.getvalue()


def full_list_names(settings: SegmentSettings, run_date: dt.date, resend: tuple[str, ...] = ()) -> list[str]:
    """The exported segments whose file `run_date` sends as the complete list: export.full_list on
    an export day, and every segment `resend` names (on any day)."""
    return [d.name for d in settings.definitions if d.export.enabled
            and (d.name in resend or (d.export.full_list and d.export.due(run_date)))]


def run_exports(spark: SparkSession, wh: tables.Warehouse, inputs: Inputs, settings: SegmentSettings,
                run_date: dt.date, resend: tuple[str, ...] = ()) -> tuple[dict[str, str], dict, DataFrame]:
    """Log today's adds/removes per exported segment and write its file; `resend` names segments
    whose file is the complete list today (full_list_names).

    Returns the file per segment, what each file carries (data rows, adds, removes) per segment, and
    (segment, metric, n) rows counting the members its file leaves out (skipped_members).
    """
    # the segments that send a file today (export.cadence, or a resend); the others keep their log
    # as it is, so their next file carries every change since the last one sent
    exported = [d for d in settings.definitions
                if d.export.enabled and (d.export.due(run_date) or d.name in resend)]
    full_lists = full_list_names(settings, run_date, resend)
    members = wh.read(spark, tables.SEGMENT_MEMBERSHIP).filter(
        F.col("exited_on").isNull() & F.col("segment").isin(*[d.name for d in exported]))
    # read twice: by today's export log and by the counts of the members the files leave out
    # (skipped_members, counted with the run's); computed once, not joined to the identity map twice
    candidates = computed(export_candidates(members, inputs, settings.consent_values).withColumn(
        "usable", F.coalesce(F.col("email").rlike(USABLE_EMAIL), F.lit(False))))
    labels = spark.createDataFrame(
        [(d.name, d.export.label, d.export.static, d.export.segment_from is not None, d.name in full_lists)
         for d in exported],
        "segment string, label string, static boolean, by_value boolean, full_list boolean")
    values = segment_values(inputs, exported)
    eligible = with_labels(
        candidates.filter(F.col("consented") & F.col("usable")).select(
            "segment", "member_id", F.lit(HEMSHA2).alias("id_type"), sha256_email(F.col("email")).alias("id")),
        labels, values)
    changes = export_changes(eligible, previously_exported(wh.read(spark, tables.SEGMENT_EXPORTS), run_date),
                             labels, run_date)
    replace_from(wh, changes, tables.SEGMENT_EXPORTS, run_date)
    in_files = file_log(wh.read(spark, tables.SEGMENT_EXPORTS).filter(F.col("run_date") == F.lit(run_date)),
                        full_lists)
    # what each file carries: its rows (one per id, a move's add and remove together), adds, removes;
    # a row per segment
    file_counts = {r["segment"]: (r["rows"], r["adds"], r["removes"]) for r in in_files.groupBy("segment").agg(
        F.count_distinct("id_type", "id").alias("rows"), F.count_if(F.col("change") == ADD).alias("adds"),
        F.count_if(F.col("change") == REMOVE).alias("removes")).collect()}
    files, sent_before = {}, files_sent_before(spark, wh, run_date)
    for definition in exported:
        sequence = sent_before.get(definition.name, 0) + 1
        files[definition.name] = export_path(wh, definition.name, definition.export, run_date, sequence)
        write_single_file(export_rows(in_files.filter(F.col("segment") == definition.name)), files[definition.name],
                          definition.export.delimiter)
    return files, file_counts, skipped_members(candidates, labels, values)


SKIPPED_METRICS = ("skipped_no_consent", "skipped_no_email", "skipped_no_value")


def skipped_members(candidates: DataFrame, labels: DataFrame, values: DataFrame | None) -> DataFrame:
    """(segment, metric, n): the members of each exported segment left out of its file, by the first
    reason that applies: without consent; consenting with no usable email among theirs (a
    household: none of its people consented, or none who did has a usable email); for a segment
    group, a value that is missing, empty or holds a character the file cannot carry (with_labels)."""
    per_member = candidates.groupBy("segment", "member_id").agg(
        F.bool_or("consented").alias("consented"), F.bool_or(F.col("consented") & F.col("usable")).alias("usable"))
    valued = per_member.join(labels.select("segment", "by_value"), on="segment", how="inner")
    exportable = F.lit(False)  # no segment group: by_value is false for every segment
    if values is not None:
        valued = valued.join(values, on=["segment", "member_id"], how="left")
        exportable = F.coalesce(exportable_value(F.col("value")), F.lit(False))
    counts = valued.withColumn("valued", ~F.col("by_value") | exportable).groupBy("segment").agg(
        F.count_if(~F.col("consented")).alias("skipped_no_consent"),
        F.count_if(F.col("consented") & ~F.col("usable")).alias("skipped_no_email"),
        F.count_if(F.col("consented") & F.col("usable") & ~F.col("valued")).alias("skipped_no_value"),
    )
    return counts.unpivot("segment", list(SKIPPED_METRICS), "metric", "n")
