"""The nightly run report: the JSON and the page beside it under `_runs/<run date>/` (jobs.report.data:
table aggregates and earlier runs; jobs.report.charts: SVG charts; jobs.report.page: the page).

The file names live here, free of pyspark, so the pipeline and the command line name them without
loading Spark."""
from __future__ import annotations

RUNS_FOLDER = "_runs"
REPORT_JSON, REPORT_HTML = "report.json", "report.html"


def runs_path(wh, run_date: str, name: str) -> str:
    """<warehouse>/_runs/<run date>/<name> (`wh`: a jobs.core.tables.Warehouse)."""
    return wh.path(f"{RUNS_FOLDER}/{run_date}/{name}")
