"""The stages of a nightly run, in order, and the nightly itself.

One ordered registry: `nightly` runs `NIGHTLY` in order; the command line offers each stage (and a
few that are not part of the nightly, such as `groups`) as a sub-command. A stage is a module with
`run(ctx: JobContext, params: RunParams) -> StageResult`; it is imported when it runs, so listing
the stages costs nothing (and pulls in no pyspark). Printing belongs to the caller: progress goes
through a callback, the summary is returned.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from jobs.core import storage, tables
from jobs.core.context import JobContext, RunParams, StageResult
from jobs.core.errors import C360Error, ConfigError, StageFailed
from jobs.report import REPORT_HTML, REPORT_JSON, runs_path

if TYPE_CHECKING:  # imported when a stage runs: listing the stages pulls in no pyspark
    from jobs.ingest.inputs import InputFiles

# The command line sends Python's logging to the run's log file (jobs.cli), beside Spark's lines.
LOG = logging.getLogger("c360")


@dataclass(frozen=True)
class Stage:
    name: str      # the sub-command and the key in the nightly report
    module: str    # defines run(ctx, params) -> StageResult
    help: str
    nightly: bool = True

    def run(self, ctx: JobContext, params: RunParams, **options) -> StageResult:
        """Run the stage (`options`: the module's own keyword arguments); its Spark jobs carry the job
        group `c360-<stage>-<run date>` (the Spark UI names the stage), its summary line goes to the log.
        What it persisted is released when it ends: the next stage reads its tables, not its memory."""
        from jobs.core.session import job_group, storage_released

        with (job_group(ctx.spark, f"c360-{self.name}-{ctx.run_date}", f"c360 {self.name} {ctx.run_date}"),
              storage_released(ctx.spark)):
            result = importlib.import_module(self.module).run(ctx, params, **options) or StageResult()
        LOG.info("%s %s", ctx.run_date, format_result(self.name, result).replace("\n", ";"))
        return result


STAGES: tuple[Stage, ...] = (
    Stage("ingest", "jobs.ingest.stage",
          "read raw events and customer files into bronze Delta tables; bad lines go to quarantine"),
    Stage("stitch", "jobs.identity.stitch",
          "stitch identities: identity graph, rules, connected components, stable customer ids, silver/customers"),
    Stage("activities", "jobs.activities.stage",
          "bronze events -> silver/activity_stream (entity_id = stitched customer_id), gold/groups, group_members, membership history"),
    Stage("groups", "jobs.groups.stage",
          "rebuild gold/groups, gold/group_members and gold/group_membership_history from group and "
          "identify calls (also run by `activities`)",
          nightly=False),
    Stage("rfm", "jobs.rfm.stage",
          "gold/rfm: recency, frequency, monetary per customer, 1-5 quintile scores and a named segment"),
    Stage("traits", "jobs.traits.stage", "gold/traits: the configured computed traits (traits.computed) for every "
          "customer, and gold/group_traits (traits.group) for every group"),
    Stage("segments", "jobs.segments.stage",
          "materialize segments: membership stints, daily changes, Resonate exports "
          "(`segments preview NAME`: count and sample, writes nothing)"),
    Stage("lens-materialize", "jobs.lens_stage.materialize",
          "materialize the configured lens queries (lens.materialize) to gold/lens_<name>"),
)
NIGHTLY: tuple[Stage, ...] = tuple(s for s in STAGES if s.nightly)
# The stage `--resend` is for (it and the stages after it run again on a finished night).
SEGMENTS_STAGE = "segments"

# Tables whose row counts the nightly's summary reports, in catalogue order.
SUMMARY_TABLES = (
    tables.BRONZE_EVENTS, tables.BRONZE_CUSTOMERS, tables.QUARANTINE_EVENTS, tables.IDENTITY_MAP,
    tables.SILVER_CUSTOMERS, tables.ACTIVITY_STREAM, tables.GROUPS, tables.GROUP_MEMBERS,
    tables.RFM, tables.TRAITS, tables.SEGMENT_MEMBERSHIP, tables.SEGMENT_CHANGES,
)


def stage(name: str) -> Stage:
    return next(s for s in STAGES if s.name == name)


def report_path(ctx: JobContext, name: str = REPORT_JSON) -> str:
    """The run's report: the JSON, or `name` beside it (REPORT_HTML, jobs.report.page)."""
    return runs_path(ctx.warehouse, str(ctx.run_date), name)


def run_nightly(ctx: JobContext, params: RunParams,
                progress: Callable[[str], None] = lambda line: None) -> dict:
    """Every nightly stage in order for the context's run date (idempotent for that date). Stages an
    earlier run of the same night finished are skipped, from the first on (jobs.core.completions);
    `params.rebuild` runs them all.

    Returns the run's report (also written to <warehouse>/_runs/<date>/report.json)."""
    from jobs.core import completions
    from jobs.report import data as report_data
    from jobs.report import page

    report: dict = {"run_date": str(ctx.run_date), "config": ctx.config.source,
                    "warehouse": ctx.warehouse.root, "stages": {}}
    started = time.monotonic()
    mistake = ctx.config.segments.resend_mistake(params.resend)
    if mistake:  # before any stage runs
        raise ConfigError(f"{ctx.config.source}: {mistake}")
    night, inputs = _night(ctx, params)
    params = dataclasses.replace(params, inputs=inputs)
    done = {} if params.rebuild or night is None else completions.finished(
        ctx.spark, ctx.warehouse, ctx.run_date, night)
    if params.resend:
        # a resend is the segments stage's work: it and the stages after it run even when finished
        names = [s.name for s in NIGHTLY]
        later = names[names.index(SEGMENTS_STAGE):]
        done = {name: result for name, result in done.items() if name not in later}
    resuming = True
    for i, step in enumerate(NIGHTLY, 1):
        if resuming and step.name in done:
            report["stages"][step.name] = {**done[step.name], "skipped": True}
            progress(f"[{i}/{len(NIGHTLY)}] {step.name}: finished by an earlier run of this night "
                     f"at {done[step.name]['finished_at']} UTC, skipped")
            continue
        resuming = False
        progress(f"[{i}/{len(NIGHTLY)}] {step.name} ...")
        t0 = time.monotonic()
        try:
            result = step.run(ctx, params)
        except C360Error:
            raise
        except Exception as exc:
            raise StageFailed(step.name) from exc
        result.seconds = round(time.monotonic() - t0, 1)
        report["stages"][step.name] = result.to_json()
        if night is not None:
            completions.record(ctx.spark, ctx.warehouse, ctx.run_date, night, step.name, result.to_json())
        progress(f"      {format_result(step.name, result)} ({result.seconds}s)")
    wh = ctx.warehouse
    report["tables"] = {t: wh.read(ctx.spark, t).count() for t in SUMMARY_TABLES if wh.exists(ctx.spark, t)}
    earlier = report_data.earlier_reports(ctx.spark, wh, ctx.run_date)
    report["charts"] = report_data.chart_data(ctx.spark, wh, [r["run_date"] for r in earlier] + [str(ctx.run_date)])
    report["seconds"] = round(time.monotonic() - started, 1)
    storage.write_text(ctx.spark, report_path(ctx), json.dumps(report, indent=2, default=str))
    storage.write_text(ctx.spark, report_path(ctx, REPORT_HTML), page.render_report(report, earlier))
    return report


def _night(ctx: JobContext, params: RunParams) -> tuple[str | None, InputFiles | None]:
    """(the night's identity for jobs.core.completions, the input's listing): the identity is None when
    the input cannot be listed (ingest then says what is wrong with it), the listing is None without
    one. Ingest reads the files of this listing, so the night is named by exactly what it reads."""
    from jobs.core import completions
    from jobs.ingest.inputs import discover_inputs

    if params.input_dir is None:
        return completions.night_of(ctx.config, None), None
    settings = ctx.config.ingest
    try:
        inputs = discover_inputs(ctx.spark, params.input_dir, settings.events_glob, settings.customers_glob)
    except C360Error:
        return None, None
    return completions.night_of(ctx.config, inputs), inputs


def format_result(name: str, result: StageResult) -> str:
    parts = [f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in result.metrics.items()]
    line = f"{name}: " + (", ".join(parts) if parts else "done")
    return "\n".join([line, *(f"  note: {n}" for n in result.notes)])


def summary_text(report: dict, path, page_path) -> str:
    lines = [f"c360 nightly {report['run_date']} finished in {report['seconds']}s"]
    ingest = report["stages"].get("ingest", {}).get("metrics", {})
    if ingest:
        lines.append(
            "  events: read {lines_read:,} = accepted {accepted:,} + duplicates {duplicates:,} + quarantined {quarantined:,}".format(**ingest)
        )
    lines.append("  stages: " + ", ".join(f"{n} skipped" if s.get("skipped") else f"{n} {s['seconds']}s"
                                          for n, s in report["stages"].items()))
    width = max((len(t) for t in report["tables"]), default=0)
    lines.extend(f"  {t.ljust(width)}  {n:>12,} rows" for t, n in report["tables"].items())
    lines.append(f"  report: {path}")
    lines.append(f"  page: {page_path}")
    return "\n".join(lines)
