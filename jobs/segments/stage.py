"""`c360 segments [preview NAME]`: audiences, membership stints, daily changes, Resonate exports.

A segment (config `segments.definitions`, jobs/segments/settings.py) is a condition over a level's
members: customers, groups (households, accounts) or identifiers of one type (identifier:email).
Fields come from silver/customers, gold/traits, gold/rfm, gold/groups (`group.<attr>`) and, at
identifier level, the identifier itself. A customer in several groups qualifies when any of its
groups satisfies the condition; a group qualifies when its own
attributes and at least one member's satisfy it together; an identifier is judged with its
customer's fields.

Each run for run date D (docs/segments.md):
1. checks every field and value against the input schemas (ConfigError before anything is written);
2. refuses D earlier than the last applied run (gold/segment_runs) unless --full, which rewinds;
   re-running D first rewinds D's own effects, so a re-run yields the same tables and files;
3. writes gold/segment_changes for D (members who entered / left since the open stints), then MERGEs
   them into gold/segment_membership: a new stint per entry, exited_on set on exit;
4. for exported segments writes the HEMSHA2 differential file exports/<segment>/<D>.<psv|csv> from
   gold/segment_exports (the log of what each export added and removed);
5. records gold/segment_runs, which marks D as applied.

The package: settings (the config section, condition parsing) and operators (the condition
language's operator names); conditions (field catalog, condition -> Column); evaluate (levels,
current members, membership changes); state (the state tables, their MERGEs and rewinds); export
(the differential files); this module (inputs, the run, the preview).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.core import storage, tables
from jobs.core.context import JobContext, RunParams, StageResult
from jobs.core.errors import ConfigError, InputError
from jobs.segments.conditions import FieldCatalog, Inputs, compile_segment, compile_segments, parsed_condition
from jobs.segments.evaluate import MEMBER, current_members, evaluation_frame, membership_changes
from jobs.segments.export import full_list_names, manifest_path, manifest_text, run_exports
from jobs.segments.settings import (
    CUSTOMER_LEVEL,
    GROUP_LEVEL,
    SegmentDefinition,
    SegmentSettings,
    identifier_type_of,
    rules_of,
)
from jobs.segments.state import (
    EXPORT_LOG_SCHEMA,
    STATE_TABLES,
    apply_changes,
    last_applied,
    record_run,
    replace_from,
    rewind,
)


def load_inputs(spark: SparkSession, wh: tables.Warehouse, settings: SegmentSettings, names: list[str], file: str) -> Inputs:
    """Read what the named segments need; a missing required table is an InputError naming it."""
    indexed = [(i, d) for i, d in enumerate(settings.definitions) if d.name in names]
    rules = [r for i, d in indexed for r in rules_of(parsed_condition(i, d, file))]
    levels = {d.level for _, d in indexed}
    needs_groups = GROUP_LEVEL in levels or any(r.source == "group" for r in rules)
    needs_identity = any(identifier_type_of(level) for level in levels)
    # a group segment exports its members' emails
    exports_customers = any(d.export.enabled and d.level in (CUSTOMER_LEVEL, GROUP_LEVEL) for _, d in indexed)

    def optional(table: str) -> DataFrame | None:
        # traits and RFM are read when they exist; a rule naming a missing one says which stage to run
        return wh.read(spark, table) if wh.exists(spark, table) else None

    def needed(condition: bool, table: str) -> DataFrame | None:
        return wh.read(spark, table) if condition else None

    groups = needed(needs_groups, tables.GROUPS)
    group_traits = optional(tables.GROUP_TRAITS) if groups is not None else None
    if group_traits is not None:
        # the group traits (traits.group, gold/group_traits) are group fields beside gold/groups' columns
        groups = groups.join(group_traits, on="group_id", how="left")
    return Inputs(
        customers=wh.read(spark, tables.SILVER_CUSTOMERS),
        traits=optional(tables.TRAITS),
        rfm=optional(tables.RFM),
        groups=groups,
        group_members=needed(needs_groups, tables.GROUP_MEMBERS),
        # an exported customer segment sends every email stitched into the customer (the match rate)
        identity_map=(needed(needs_identity, tables.IDENTITY_MAP) if needs_identity or not exports_customers
                      else optional(tables.IDENTITY_MAP)),
    )


def materialize(ctx: JobContext, full: bool, resend: tuple[str, ...] = ()) -> StageResult:
    spark, wh, settings, run_date = ctx.spark, ctx.warehouse, ctx.config.segments, ctx.run_date
    mistake = settings.resend_mistake(resend)
    if mistake:
        raise ConfigError(f"{ctx.config.source}: {mistake}")
    if not settings.definitions:
        return StageResult(metrics={"segments": 0}, notes=["no segments.definitions configured"])
    for table in STATE_TABLES:
        # a table from before a column was added to its spec (gold/segment_runs.skipped_no_value) gains it
        wh.create(spark, table) or wh.add_missing_columns(spark, table)
    last = last_applied(spark, wh)
    if last is not None and run_date < last and not full:
        raise InputError(
            f"run date {run_date} is earlier than the last applied segments run {last} ({wh.path(tables.SEGMENT_RUNS)}): "
            f"segment history is applied in date order; run {last} or later, or pass --full to rewind it to {run_date}"
        )
    inputs = load_inputs(spark, wh, settings, [d.name for d in settings.definitions], ctx.config.source)
    segments = compile_segments(settings, FieldCatalog.of(inputs, ctx.config.source), run_date)
    if last is not None and run_date <= last:
        rewind(spark, wh, run_date)
    names = [s.name for s in segments]
    open_stints = wh.read(spark, tables.SEGMENT_MEMBERSHIP).filter(F.col("exited_on").isNull() & F.col("segment").isin(*names))
    replace_from(wh, membership_changes(current_members(inputs, segments), open_stints, run_date),
                 tables.SEGMENT_CHANGES, run_date)
    todays_changes = wh.read(spark, tables.SEGMENT_CHANGES).filter(F.col("run_date") == F.lit(run_date))
    apply_changes(spark, wh, todays_changes, run_date)
    if any(s.definition.export.enabled for s in segments):
        files, file_counts, skipped = run_exports(spark, wh, inputs, settings, run_date, resend)
    else:
        # still clear the export log from this date on (a rewound run may have exported)
        replace_from(wh, spark.createDataFrame([], EXPORT_LOG_SCHEMA), tables.SEGMENT_EXPORTS, run_date)
        files, file_counts, skipped = {}, {}, None
    rows = record_run(spark, wh, settings, run_date, files, skipped)
    if files:
        storage.write_text(spark, manifest_path(wh, run_date),
                           manifest_text(settings, files, wh.path(tables.EXPORTS), file_counts))
    return summarize(rows, full_list_names(settings, run_date, resend))


def summarize(rows: list[dict], full_lists: Collection[str] = ()) -> StageResult:
    total = lambda key: sum(r[key] or 0 for r in rows)  # noqa: E731
    metrics = {"segments": len(rows), "members": total("members"), "adds": total("adds"), "removes": total("removes"),
               "export_files": sum(1 for r in rows if r["export_file"]), "export_adds": total("export_adds"),
               "export_removes": total("export_removes"), "skipped_no_consent": total("skipped_no_consent"),
               "skipped_no_email": total("skipped_no_email"), "skipped_no_value": total("skipped_no_value")}
    notes = []
    for r in rows:
        line = f"{r['segment']} ({r['level']}): {r['members']:,} members, +{r['adds']:,} -{r['removes']:,}"
        if r["export_file"]:
            sent = (f"the complete list, {r['export_adds']:,} ids ({r['export_removes']:,} no longer in it)"
                    if r["segment"] in full_lists else f"+{r['export_adds']:,} -{r['export_removes']:,}")
            no_value = (f", {r['skipped_no_value']:,} whose segment value the file cannot carry"
                        if r["skipped_no_value"] else "")
            line += (f"; export {r['export_file']}: {sent} "
                     f"(skipped: {r['skipped_no_consent']:,} without consent, {r['skipped_no_email']:,} without a usable email"
                     f"{no_value})")
        notes.append(line)
    return StageResult(metrics=metrics, notes=notes)


def preview(ctx: JobContext, name: str | None, rows: int | None) -> str:
    """The segment's member count and a sample as of the run date; writes nothing."""
    settings = ctx.config.segments
    found = settings.find(name) if name else None
    if found is None:
        known = ", ".join(d.name for d in settings.definitions) or "none"
        raise ConfigError(f"{ctx.config.source}: no segment named {name!r} to preview (configured: {known})"
                          if name else "`c360 segments preview` needs the NAME of a segment")
    index, definition = found
    spark, wh = ctx.spark, ctx.warehouse
    inputs = load_inputs(spark, wh, settings, [definition.name], ctx.config.source)
    segment = compile_segment(index, definition, FieldCatalog.of(inputs, ctx.config.source), ctx.run_date)
    matching = evaluation_frame(inputs, definition.level, list(segment.fields)).filter(
        F.col(MEMBER).isNotNull() & segment.condition)
    count = matching.select(MEMBER).distinct().count()
    shown = [MEMBER, *[f.alias for f in segment.fields]]
    limit = rows or settings.preview_rows
    sample = matching.select(*shown).distinct().orderBy(*shown).limit(limit).collect()  # at most `limit` rows
    return format_preview(definition, ctx.run_date, count, [f.label for f in segment.fields], sample)


def format_preview(definition: SegmentDefinition, run_date: dt.date, count: int, labels: list[str], sample) -> str:
    header = ["member_id", *labels]
    cells = [["null" if v is None else str(v) for v in row] for row in sample]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(header)]
    line = lambda values: "  " + "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    out = [f"segment {definition.name} ({definition.level}) as of {run_date}: {count:,} members"]
    if cells:
        out += [line(header), *(line(c) for c in cells),
                f"  (first {len(cells)} of {count:,} by member_id; nothing was written)"]
    else:
        out.append("  (no members; nothing was written)")
    return "\n".join(out)


def run(ctx: JobContext, params: RunParams) -> StageResult | None:
    return materialize(ctx, full=params.rewind, resend=params.resend)
