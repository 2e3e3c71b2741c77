"""`c360 nightly`: every stage in order for one run date; idempotent for that date."""
from __future__ import annotations

import argparse
import importlib
import json
import time

from jobs import tables
from jobs.cli import COMMANDS, format_result
from jobs.context import JobContext, StageResult

HELP = "run the whole pipeline for a run date: ingest, stitch, activities, ... (idempotent)"
NEEDS_SPARK = True

# Stage order. A stage runs when its command is registered in jobs.cli.COMMANDS.
STAGE_ORDER = ("ingest", "stitch", "activities", "rfm", "traits", "segments", "lens-materialize")

# Tables whose row counts the summary reports, in catalogue order.
SUMMARY_TABLES = (
    tables.BRONZE_EVENTS, tables.BRONZE_CUSTOMERS, tables.QUARANTINE_EVENTS, tables.IDENTITY_MAP,
    tables.SILVER_CUSTOMERS, tables.ACTIVITY_STREAM, tables.GROUPS, tables.GROUP_MEMBERS,
    tables.RFM, tables.TRAITS, tables.SEGMENT_MEMBERSHIP, tables.SEGMENT_CHANGES,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="raw input folder (events/, customers/)")
    parser.add_argument("--full", action="store_true", help="rebuild derived tables instead of incremental")


def stages() -> list[str]:
    return [name for name in STAGE_ORDER if name in COMMANDS]


def run(ctx: JobContext, args: argparse.Namespace) -> StageResult:
    names = stages()
    report: dict = {"run_date": str(ctx.run_date), "config": ctx.config.source,
                    "warehouse": str(ctx.warehouse.root), "stages": {}}
    started = time.monotonic()
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ...", flush=True)
        t0 = time.monotonic()
        result = importlib.import_module(COMMANDS[name]).run(ctx, args) or StageResult()
        result.seconds = round(time.monotonic() - t0, 1)
        report["stages"][name] = result.to_json()
        print(f"      {format_result(name, result)} ({result.seconds}s)", flush=True)
    counts = {t: ctx.warehouse.read(ctx.spark, t).count() for t in SUMMARY_TABLES if ctx.warehouse.exists(ctx.spark, t)}
    report["tables"] = counts
    report["seconds"] = round(time.monotonic() - started, 1)
    out = ctx.warehouse.root / "_runs" / str(ctx.run_date) / "report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(summary_text(report, out), flush=True)
    return StageResult(metrics={"stages": len(names)})


def summary_text(report: dict, path) -> str:
    lines = [f"c360 nightly {report['run_date']} finished in {report['seconds']}s"]
    ingest = report["stages"].get("ingest", {}).get("metrics", {})
    if ingest:
        lines.append(
            "  events: read {lines_read:,} = accepted {accepted:,} + duplicates {duplicates:,} + quarantined {quarantined:,}".format(**ingest)
        )
    lines.append("  stages: " + ", ".join(f"{n} {s['seconds']}s" for n, s in report["stages"].items()))
    width = max((len(t) for t in report["tables"]), default=0)
    lines.extend(f"  {t.ljust(width)}  {n:>12,} rows" for t, n in report["tables"].items())
    lines.append(f"  report: {path}")
    return "\n".join(lines)
