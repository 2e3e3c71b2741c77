"""One end-to-end nightly on generated data: counts agree with what the generator planted."""
from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from jobs import pipeline
from jobs.core import completions, tables
from jobs.core.context import RunParams
from jobs.cli import main as cli_main
from jobs.ingest import inputs
from jobs.ingest import stage as ingest_stage

RUN_DATE = "2026-03-31"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("raw") / "sample"
    status = cli_main(["generate", "--out", str(out), "--profiles", "400", "--days", "45", "--seed", "11",
                       "--run-date", RUN_DATE])
    assert status == 0
    return out, json.loads((out / "_manifest.json").read_text())


def report_data_first_month(run_date: str) -> str:
    """The oldest cohort month the report shows: COHORT_MONTHS - 1 months before the run date's."""
    from jobs.report.data import COHORT_MONTHS

    day = dt.date.fromisoformat(run_date)
    index = day.year * 12 + day.month - 1 - (COHORT_MONTHS - 1)
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


@pytest.mark.slow
def test_nightly_on_generated_data(make_ctx, spark, generated, monkeypatch):
    raw, manifest = generated
    ctx = make_ctx(RUN_DATE)
    listings, real = [], inputs.discover_inputs

    def listing(*args, **kwargs):  # the real listing, counted
        listings.append(args[1])
        return real(*args, **kwargs)

    # pipeline imports it when it runs, ingest when it is imported
    monkeypatch.setattr(inputs, "discover_inputs", listing)
    monkeypatch.setattr(ingest_stage, "discover_inputs", listing)
    pipeline.run_nightly(ctx, RunParams(input_dir=Path(raw), rebuild=False, rewind=False))
    monkeypatch.undo()
    assert listings == [Path(raw)]  # the input folder is listed once a night
    report = json.loads((ctx.warehouse.local_dir / "_runs" / RUN_DATE / "report.json").read_text())
    ingest = report["stages"]["ingest"]["metrics"]
    planted = manifest["events"]
    assert ingest["lines_read"] == planted["lines"]
    assert ingest["quarantined"] == planted["malformed_lines"]
    assert ingest["duplicates"] == planted["replayed_lines"]
    assert ingest["accepted"] == planted["unique_valid_messages"]
    assert {k.removeprefix("quarantined_"): v for k, v in ingest.items() if k.startswith("quarantined_")} == {
        reason: n for reason, n in planted["malformed_by_reason"].items() if n
    }
    customers = manifest["customers"]
    assert ingest["customer_rows_read"] == customers["rows"]
    assert ingest["customer_rows_quarantined"] == customers["missing_customer_id"]
    assert ingest["customer_rows_duplicates"] == customers["duplicate_rows"]
    assert report["tables"][tables.BRONZE_EVENTS] == planted["unique_valid_messages"]
    # one quarantine row per rejected line or row, identical bad lines included
    assert report["tables"][tables.QUARANTINE_EVENTS] == planted["malformed_lines"] + customers["missing_customer_id"]

    # The page beside the JSON holds every plot, and the plotted aggregates agree with the tables.
    page = (ctx.warehouse.local_dir / "_runs" / RUN_DATE / "report.html").read_text()
    for title in ("Stage seconds per run", "Rows in and out per stage", "Quarantined event lines by reason",
                  "Stitched customers by number of identifiers", "RFM segment sizes",
                  "Segment adds and removes per run"):
        assert f"<title>{title}</title>" in page
    wh = ctx.warehouse
    customers_mapped = {r["customer_id"] for r in wh.read(spark, tables.IDENTITY_MAP).collect()}
    assert sum(report["charts"]["cluster_sizes"].values()) == len(customers_mapped)
    assert report["charts"]["rfm_segments"] == dict(Counter(r["rfm_segment"] for r in wh.read(spark, tables.RFM).collect()))
    changes = Counter(r["change"] for r in wh.read(spark, tables.SEGMENT_CHANGES).collect())
    assert report["charts"]["segment_changes"] == {RUN_DATE: dict(changes)}
    # the first run: every scored customer arrives from "(not scored)"; every customer with an order
    # placed is in the cohort of its first order's month
    segments = Counter(r["rfm_segment"] for r in wh.read(spark, tables.RFM).collect())
    assert report["charts"]["rfm_migration"] == {"from_run_date": None, "moves": {"(not scored)": dict(segments)}}
    first_months = Counter()
    for row in wh.read(spark, tables.ACTIVITY_STREAM).filter(
            f"activity = 'order_placed' AND entity_id IS NOT NULL AND to_date(activity_ts) <= '{RUN_DATE}'") \
            .groupBy("entity_id").agg({"activity_ts": "min"}).collect():
        first_months[str(row[1])[:7]] += 1
    assert {m: c["customers"] for m, c in report["charts"]["cohort_retention"].items()} == {
        m: n for m, n in first_months.items() if m >= report_data_first_month(RUN_DATE)}
    assert "id='cohort-retention'" in page

    # Re-running the same night skips every stage its first run finished (jobs.core.completions).
    pipeline.run_nightly(ctx, RunParams(input_dir=Path(raw), rebuild=False, rewind=False))
    skipped = json.loads((ctx.warehouse.local_dir / "_runs" / RUN_DATE / "report.json").read_text())
    assert skipped["tables"] == report["tables"]
    assert {name: stage.pop("skipped") for name, stage in skipped["stages"].items()} == {
        name: True for name in report["stages"]}
    assert {name: {k: v for k, v in stage.items() if k != "finished_at"} for name, stage in skipped["stages"].items()
            } == report["stages"], "the recorded results are the first run's"

    # `--resend` on the finished night runs segments and the stages after it again, the others stay
    # skipped; the first file was the complete list already, so the resent one is the same file.
    exports = ctx.warehouse.local_dir / "exports"
    first_file = (exports / "rfm_champions" / f"{RUN_DATE}.csv").read_text()
    pipeline.run_nightly(ctx, RunParams(input_dir=Path(raw), resend=("rfm_champions",)))
    resent = json.loads((ctx.warehouse.local_dir / "_runs" / RUN_DATE / "report.json").read_text())
    later = [name for name in report["stages"]][[name for name in report["stages"]].index("segments"):]
    assert {name: bool(stage.get("skipped")) for name, stage in resent["stages"].items()} == {
        name: name not in later for name in report["stages"]}
    assert (exports / "rfm_champions" / f"{RUN_DATE}.csv").read_text() == first_file
    assert first_file.count("\n") > 1 and all(line.endswith(",") for line in first_file.splitlines()[1:])
    assert any("rfm_champions (customer)" in n and "the complete list" in n for n in resent["stages"]["segments"]["notes"])

    # Without its records each stage runs again, and changes nothing (what resuming relies on).
    shutil.rmtree(ctx.warehouse.local_dir / completions.COMPLETIONS_TABLE)
    pipeline.run_nightly(ctx, RunParams(input_dir=Path(raw), rebuild=False, rewind=False))
    again = json.loads((ctx.warehouse.local_dir / "_runs" / RUN_DATE / "report.json").read_text())
    assert again["tables"] == report["tables"]
    assert again["stages"]["ingest"]["metrics"]["accepted"] == 0
    assert not any(stage.get("skipped") for stage in again["stages"].values())
