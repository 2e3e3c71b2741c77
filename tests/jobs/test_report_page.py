"""The run report page (jobs.report.page, jobs.report.charts): pure Python, no Spark.

Every bar is read back from the SVG (its data attributes) and compared with the numbers of the
hand-built reports below, so a chart that drew the wrong value, or none, fails."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from jobs.report.charts import Series, bar_chart, nice_top
from jobs.report.page import render_report, rows_in_out

SVG_NS = "{http://www.w3.org/2000/svg}"

EARLIER = {"run_date": "2026-06-29", "tables": {},
           "stages": {"ingest": {"seconds": 50.0, "metrics": {}}, "stitch": {"seconds": 100.0, "metrics": {}}}}
REPORT = {
    "run_date": "2026-06-30", "seconds": 120.5, "warehouse": "/tmp/wh", "config": "conf/local.yml",
    "stages": {
        "ingest": {"seconds": 30.0, "notes": [], "metrics": {
            "lines_read": 1000, "accepted": 950, "duplicates": 30, "quarantined": 20,
            "quarantined_invalid_json": 12, "quarantined_bad_timestamp": 8, "quarantined_missing_type": 0,
            "customer_rows_read": 100, "customer_rows_accepted": 98}},
        "stitch": {"seconds": 60.0, "metrics": {"mode": "incremental", "new_observations": 1100,
                                                  "customer_rows_written": 400}},
        "activities": {"seconds": 20.0, "metrics": {"mode": "merge", "rows_inserted": 700, "rows_updated": 50,
                                                      "rows_deleted": 3}},
        "rfm": {"seconds": 5.0, "metrics": {"customers": 380}},
        "segments": {"seconds": 3.0, "skipped": True, "metrics": {"members": 90}},
    },
    "tables": {"bronze/events": 950, "gold/rfm": 380},
    "charts": {
        "cluster_sizes": {"1": 100, "2": 200, "6-10": 4},
        "rfm_segments": {"Champions": 50, "Lost": 30, "At Risk <&>": 7},
        "segment_changes": {"2026-06-29": {"add": 80}, "2026-06-30": {"add": 12, "remove": 9}},
        "rfm_migration": {"from_run_date": "2026-06-29", "moves": {
            "(not scored)": {"Lost": 5}, "Champions": {"Champions": 40, "Lost": 2}, "Lost": {"Champions": 8}}},
        "cohort_retention": {"2026-05": {"customers": 10, "active": [10, 3]}, "2026-06": {"customers": 4, "active": [4]}},
    },
}


def svgs(page: str) -> dict[str, ET.Element]:
    """Each inline chart of the page by its title."""
    found = {}
    for text in re.findall(r"<svg .*?</svg>", page, flags=re.S):
        svg = ET.fromstring(text)
        found[svg.find(f"{SVG_NS}title").text] = svg
    return found


def bars(svg: ET.Element) -> dict[tuple[str, str], float]:
    """(series, category) -> value of every bar drawn."""
    return {(r.get("data-series"), r.get("data-category")): float(r.get("data-value"))
            for r in svg.iter(f"{SVG_NS}rect") if r.get("class") == "bar"}


@pytest.fixture(scope="module")
def charts():
    return svgs(render_report(REPORT, [EARLIER]))


def test_the_page_has_each_plot(charts):
    assert sorted(charts) == sorted([
        "Stage seconds per run", "Rows in and out per stage", "Quarantined event lines by reason",
        "Stitched customers by number of identifiers", "RFM segment sizes", "Segment adds and removes per run"])


def test_stage_seconds_over_runs(charts):
    assert bars(charts["Stage seconds per run"]) == {
        ("ingest", "2026-06-29"): 50.0, ("stitch", "2026-06-29"): 100.0,
        ("ingest", "2026-06-30"): 30.0, ("stitch", "2026-06-30"): 60.0, ("activities", "2026-06-30"): 20.0,
        ("rfm", "2026-06-30"): 5.0, ("segments", "2026-06-30"): 3.0,
    }


def test_rows_in_and_out(charts):
    assert rows_in_out(REPORT) == (["ingest", "stitch", "activities", "rfm", "segments"],
                                   [1100, 1100, 0, 0, 0], [1048, 400, 753, 380, 90])
    assert bars(charts["Rows in and out per stage"]) == {
        ("rows in", "ingest"): 1100, ("rows out", "ingest"): 1048, ("rows in", "stitch"): 1100,
        ("rows out", "stitch"): 400, ("rows out", "activities"): 753, ("rows out", "rfm"): 380,
        ("rows out", "segments"): 90,
    }


def test_quarantine_reasons_cluster_sizes_rfm_and_segment_changes(charts):
    assert bars(charts["Quarantined event lines by reason"]) == {
        ("lines", "bad_timestamp"): 8, ("lines", "invalid_json"): 12}
    assert bars(charts["Stitched customers by number of identifiers"]) == {
        ("customers", "1"): 100, ("customers", "2"): 200, ("customers", "6-10"): 4}
    assert bars(charts["RFM segment sizes"]) == {
        ("customers", "Champions"): 50, ("customers", "Lost"): 30, ("customers", "At Risk <&>"): 7}
    assert bars(charts["Segment adds and removes per run"]) == {
        ("adds", "2026-06-29"): 80, ("adds", "2026-06-30"): 12, ("removes", "2026-06-30"): 9}


def test_a_figure_without_data_says_so():
    bare = {"run_date": "2026-06-30", "stages": {"rfm": {"seconds": 1.0, "metrics": {"customers": 0}}}, "tables": {}}
    page = render_report(bare, [])
    assert sorted(svgs(page)) == ["Rows in and out per stage", "Stage seconds per run"]
    for words in ("No event line was quarantined in this run.", "No customer is stitched yet.",
                  "gold/rfm has no rows.", "No segment changed in these runs."):
        assert words in page


def test_bar_lengths_follow_the_values():
    svg = ET.fromstring(bar_chart("t", ["a", "b"], [Series("s", (10.0, 5.0))], horizontal=True))
    widths = {r.get("data-category"): float(r.get("width")) for r in svg.iter(f"{SVG_NS}rect") if r.get("class") == "bar"}
    assert widths["a"] == pytest.approx(2 * widths["b"], abs=0.1)
    svg = ET.fromstring(bar_chart("t", ["a", "b"], [Series("s", (10.0, 5.0))]))
    heights = {r.get("data-category"): float(r.get("height")) for r in svg.iter(f"{SVG_NS}rect") if r.get("class") == "bar"}
    assert heights["a"] == pytest.approx(2 * heights["b"], abs=0.1)


def test_a_series_must_have_a_value_per_category():
    with pytest.raises(ValueError, match="series 's' has 1 values for 2 categories"):
        bar_chart("t", ["a", "b"], [Series("s", (1.0,))])


@pytest.mark.parametrize("value, expected", [(2521.2, (3000, 1000)), (100, (100, 50)), (7, (8, 2)),
                                             (0.3, (0.3, 0.1)), (103316, (150000, 50000))])
def test_axis_ticks_are_round_numbers(value, expected):
    top, step = nice_top(value)
    assert (round(top, 9), round(step, 9)) == expected


def heat_cells(page: str, table_id: str) -> dict[tuple[str, ...], tuple[str, str]]:
    """(data attributes but value) -> (data-value, text shown) of every cell of a heat table."""
    table = re.search(rf"<table class='heat' id='{table_id}'>(.*?)</table>", page, flags=re.S).group(1)
    cells = {}
    for attributes, text in re.findall(r"<td class='n' ([^>]*)>([^<]*)</td>", table):
        found = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', attributes))
        value = found.pop("value")
        cells[tuple(found.values())] = (value, text)
    return cells


def test_migration_matrix_and_cohort_retention():
    page = render_report(REPORT, [EARLIER])
    # segments by customers they hold on either side: Champions 90, Lost 15, "(not scored)" last
    assert heat_cells(page, "rfm-migration") == {
        ("Champions", "Champions"): ("40", "40"), ("Champions", "Lost"): ("2", "2"),
        ("Champions", "(not scored)"): ("0", "0"), ("Lost", "Champions"): ("8", "8"), ("Lost", "Lost"): ("0", "0"),
        ("Lost", "(not scored)"): ("0", "0"), ("(not scored)", "Champions"): ("0", "0"),
        ("(not scored)", "Lost"): ("5", "5"), ("(not scored)", "(not scored)"): ("0", "0"),
    }
    header = re.search(r"id='rfm-migration'><tr>(.*?)</tr>", page).group(1)
    assert re.findall(r"<th>([^<]*)</th>", header)[1:] == ["Champions", "Lost", "(not scored)"]
    assert heat_cells(page, "cohort-retention") == {
        ("2026-05", "0"): ("10", "100 %"), ("2026-05", "1"): ("3", "30 %"), ("2026-06", "0"): ("4", "100 %")}
    assert "Customers from their segment on 2026-06-29 (rows)" in page


def test_migration_and_cohorts_without_data_say_so():
    first_run = {**REPORT, "charts": {"rfm_migration": {"from_run_date": None, "moves": {"(not scored)": {"Lost": 5}}}}}
    page = render_report(first_run, [])
    assert "No earlier run in gold/rfm_history to compare with." in page
    assert "No customer has placed an order." in page
    assert "id='rfm-migration'" not in page and "id='cohort-retention'" not in page
