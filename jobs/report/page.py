"""The nightly's run report as one self-contained HTML page (`_runs/<run date>/report.html`).

Pure: the page is a function of this run's report (pipeline.run_nightly, with its `charts` data from
jobs.report.data) and the reports of earlier runs. Six figures, each an inline SVG bar chart
(jobs.report.charts): stage seconds over the last runs, rows in and out per stage, quarantined lines
by reason, stitched customers by size, RFM segment sizes, segment adds and removes over the last runs;
and two heat tables: the RFM migration matrix since the previous run and monthly cohort retention.
A figure without data says so in words instead of drawing an empty chart.
"""
from __future__ import annotations

from html import escape

from jobs.report.charts import Series, bar_chart

QUARANTINED_PREFIX = "quarantined_"
# A stage's rows in and rows out, from its metrics (None: the stage does not report that side).
# activities writes a change set on an incremental night (inserted + updated + deleted rows) and
# every row on a full one (`activities`).
ROWS_IN = {"ingest": ("lines_read", "customer_rows_read"), "stitch": ("new_observations",)}
ROWS_OUT = {
    "ingest": ("accepted", "customer_rows_accepted"),
    "stitch": ("customer_rows_written",),
    "activities": ("activities", "rows_inserted", "rows_updated", "rows_deleted"),
    "rfm": ("customers",),
    "traits": ("customers",),
    "segments": ("members",),
    "lens-materialize": ("rows",),
}
STYLE = """
body { font-family: sans-serif; margin: 24px auto; max-width: 760px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 15px; margin: 28px 0 6px; }
table { border-collapse: collapse; font-size: 12px; } td, th { padding: 2px 10px 2px 0; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 0; } figcaption, .none { font-size: 12px; color: #555; }
table.heat td.n { min-width: 34px; } table.heat th { font-weight: normal; color: #555; }
"""
# Heat-table cells: the value's share of the table's largest, as the opacity of one colour.
HEAT_RGB = "0, 114, 178"
NOT_SCORED = "(not scored)"  # jobs.rfm.retention.NOT_SCORED (this module does not import Spark)


def _sum_of(metrics: dict, names: tuple[str, ...]) -> int | None:
    found = [metrics[n] for n in names if isinstance(metrics.get(n), int)]
    return sum(found) if found else None


def rows_in_out(report: dict) -> tuple[list[str], list[int], list[int]]:
    """Stages, their rows in (0 where not reported) and rows out, in run order."""
    names, ins, outs = [], [], []
    for name, stage in report["stages"].items():
        metrics = stage.get("metrics", {})
        names.append(name)
        ins.append(_sum_of(metrics, ROWS_IN.get(name, ())) or 0)
        outs.append(_sum_of(metrics, ROWS_OUT.get(name, ())) or 0)
    return names, ins, outs


def _figure(title: str, caption: str, svg: str | None, empty: str) -> str:
    body = svg if svg is not None else f'<p class="none">{escape(empty)}</p>'
    return f"<h2>{escape(title)}</h2><figure>{body}<figcaption>{escape(caption)}</figcaption></figure>"


def stage_seconds_figure(runs: list[dict]) -> str:
    dates = [r["run_date"] for r in runs]
    stages = list(dict.fromkeys(name for r in runs for name in r.get("stages", {})))
    series = [Series(name, tuple(float(r.get("stages", {}).get(name, {}).get("seconds", 0) or 0) for r in runs))
              for name in stages]
    svg = bar_chart("Stage seconds per run", dates, series, stacked=True, unit=" s") if stages else None
    return _figure("Stage seconds, last runs", f"{len(runs)} run(s) up to {dates[-1]}; a stage skipped by a resumed "
                   "run shows the seconds of the run that finished it.", svg, "No stage ran.")


def rows_figure(report: dict) -> str:
    names, ins, outs = rows_in_out(report)
    series = [Series("rows in", tuple(float(v) for v in ins)), Series("rows out", tuple(float(v) for v in outs))]
    svg = bar_chart("Rows in and out per stage", names, series, horizontal=True) if names else None
    return _figure("Rows in and out per stage", "In: lines and customer rows read (ingest), new observations "
                   "(stitch). Out: rows accepted, customer rows written, stream rows written, customers scored, "
                   "segment members, lens rows.", svg, "No stage ran.")


def quarantine_figure(report: dict) -> str:
    metrics = report["stages"].get("ingest", {}).get("metrics", {})
    reasons = {k.removeprefix(QUARANTINED_PREFIX): v for k, v in sorted(metrics.items())
               if k.startswith(QUARANTINED_PREFIX) and v}
    svg = (bar_chart("Quarantined event lines by reason", list(reasons),
                     [Series("lines", tuple(float(v) for v in reasons.values()))], horizontal=True)
           if reasons else None)
    return _figure("Quarantined event lines by reason", "This run's input; the lines are in quarantine/events.",
                   svg, "No event line was quarantined in this run.")


def cluster_figure(charts: dict) -> str:
    sizes = charts.get("cluster_sizes", {})
    svg = (bar_chart("Stitched customers by number of identifiers", list(sizes),
                     [Series("customers", tuple(float(v) for v in sizes.values()))]) if sizes else None)
    return _figure("Stitched customers by size", "Identifiers per customer in gold/identity_map.", svg,
                   "No customer is stitched yet.")


def rfm_figure(charts: dict) -> str:
    segments = charts.get("rfm_segments", {})
    svg = (bar_chart("RFM segment sizes", list(segments),
                     [Series("customers", tuple(float(v) for v in segments.values()))], horizontal=True)
           if segments else None)
    return _figure("RFM segment sizes", "Customers per named segment in gold/rfm.", svg, "gold/rfm has no rows.")


def segment_changes_figure(charts: dict) -> str:
    by_date = charts.get("segment_changes", {})
    dates = sorted(by_date)
    series = [Series(label, tuple(float(by_date[d].get(change, 0)) for d in dates))
              for change, label in (("add", "adds"), ("remove", "removes"))]
    svg = bar_chart("Segment adds and removes per run", dates, series) if dates else None
    return _figure("Segment adds and removes, last runs", "Members entering and leaving every segment "
                   "(gold/segment_changes), summed over segments.", svg, "No segment changed in these runs.")


def _heat_cell(text: str, share: float, attributes: dict[str, object]) -> str:
    data = " ".join(f'data-{k}="{escape(str(v))}"' for k, v in attributes.items())
    colour = "#fff" if share > 0.6 else "#222"
    return (f"<td class='n' {data} style='background: rgba({HEAT_RGB}, {share:.2f}); color: {colour}'>"
            f"{escape(text)}</td>")


def migration_figure(charts: dict) -> str:
    """The RFM migration matrix: customers from each segment of the previous run (rows) to each
    segment of this run (columns); segments by size, "(not scored)" last."""
    matrix = charts.get("rfm_migration", {})
    moves = matrix.get("moves", {})
    if not moves or not matrix.get("from_run_date"):
        return _figure("RFM migration", "Customers moving between segments since the previous run "
                       "(gold/rfm_migration).", None, "No earlier run in gold/rfm_history to compare with.")
    totals: dict[str, int] = {}
    for source, targets in moves.items():
        for target, n in targets.items():
            totals[source] = totals.get(source, 0) + n
            totals[target] = totals.get(target, 0) + n
    order = sorted(totals, key=lambda name: (name == NOT_SCORED, -totals[name], name))
    top = max(n for targets in moves.values() for n in targets.values())
    head = "<tr><th>previous ↓ · this run →</th>" + "".join(f"<th>{escape(name)}</th>" for name in order) + "</tr>"

    def cell(source: str, target: str) -> str:
        n = moves.get(source, {}).get(target, 0)
        return _heat_cell(f"{n:,}", n / top, {"from": source, "to": target, "value": n})

    body = "".join(f"<tr><th>{escape(source)}</th>" + "".join(cell(source, target) for target in order) + "</tr>"
                   for source in order)
    return _figure("RFM migration", f"Customers from their segment on {matrix['from_run_date']} (rows) to their "
                   "segment in this run (columns), gold/rfm_migration; (not scored): no order yet, or merged.",
                   f"<table class='heat' id='rfm-migration'>{head}{body}</table>", "")


def cohort_figure(charts: dict) -> str:
    """Monthly cohort retention: per first-order month, the share of its customers who ordered in
    each month since."""
    cohorts = charts.get("cohort_retention", {})
    if not cohorts:
        return _figure("Cohort retention", "gold/cohort_retention.", None, "No customer has placed an order.")
    width = max(len(c["active"]) for c in cohorts.values())
    head = "<tr><th>cohort</th><th>customers</th>" + "".join(f"<th>+{m}</th>" for m in range(width)) + "</tr>"
    body = "".join(
        f"<tr><th>{escape(month)}</th><td class='n'>{c['customers']:,}</td>" + "".join(
            _heat_cell(f"{100 * active / c['customers']:.0f} %", active / c["customers"],
                       {"cohort": month, "months-since": m, "value": active})
            for m, active in enumerate(c["active"])) + "</tr>"
        for month, c in cohorts.items())
    return _figure("Cohort retention", "Customers by the month of their first order placed, and the share of "
                   "them who placed an order each month since (+0 is the cohort month; the run's month so far), "
                   "gold/cohort_retention.", f"<table class='heat' id='cohort-retention'>{head}{body}</table>", "")


def render_report(report: dict, earlier: list[dict]) -> str:
    """The page for `report` (this run), with `earlier` runs' reports (oldest first) for the trends."""
    runs = [*earlier, report]
    charts = report.get("charts", {})
    ingest = report["stages"].get("ingest", {}).get("metrics", {})
    lines = ""
    if "lines_read" in ingest:
        lines = (f"<p>Events: read {ingest['lines_read']:,} = accepted {ingest.get('accepted', 0):,} + "
                 f"duplicates {ingest.get('duplicates', 0):,} + quarantined {ingest.get('quarantined', 0):,}</p>")
    stage_rows = "".join(
        f"<tr><td>{escape(name)}</td><td class='n'>{'skipped' if s.get('skipped') else str(s.get('seconds', '')) + ' s'}"
        f"</td><td>{escape(', '.join(s.get('notes', [])[:1]))}</td></tr>"
        for name, s in report["stages"].items())
    table_rows = "".join(f"<tr><td>{escape(t)}</td><td class='n'>{n:,}</td></tr>"
                         for t, n in report.get("tables", {}).items())
    figures = [stage_seconds_figure(runs), rows_figure(report), quarantine_figure(report), cluster_figure(charts),
               rfm_figure(charts), migration_figure(charts), cohort_figure(charts), segment_changes_figure(charts)]
    title = f"c360 nightly {report['run_date']}"
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f"<p>Finished in {report.get('seconds', 0)} s · warehouse {escape(str(report.get('warehouse', '')))} · "
        f"config {escape(str(report.get('config', '')))}</p>{lines}"
        f"<h2>Stages</h2><table>{stage_rows}</table>{''.join(figures)}"
        f"<h2>Tables</h2><table>{table_rows}</table></body></html>"
    )
