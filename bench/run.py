"""`make bench SCALE=S|M|L`: generate the scale's data once (cached under bench/work/), then run the
paired measurements in one SparkSession and write bench/results/<scale>.{json,md}."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import WORK, Comparison, bench_session, memory_meta, paired, timed, write_results
from jobs.core.steps import STEP_NOTE

# benchmarks.md: customers per scale; ~20 events per customer.
SCALES = {"S": 10_000, "M": 200_000, "L": 1_000_000}
PAIRS = {"S": 5, "M": 3, "L": 2}
# A whole nightly at M takes about a quarter of an hour on 2 cores: one pair there, as many as asked at S.
NIGHTLY_PAIRS = {"S": 3, "M": 1, "L": 1}
# Lens questions take seconds: more pairs, so that a few noisy ones do not move the median.
LENS_PAIRS = {"S": 9, "M": 15, "L": 5}
SEED = 42
DAYS = 180
RUN_DATE = dt.date(2026, 6, 30)


def generated_input(scale: str) -> Path:
    """The scale's raw input, generated once with a fixed seed and reused by later bench runs."""
    out = WORK / f"data-{scale}"
    if (out / "_manifest.json").is_file():
        return out
    c360 = Path(sys.executable).parent / "c360"
    cmd = [str(c360), "generate", "--out", str(out), "--profiles", str(SCALES[scale]), "--days", str(DAYS),
           "--seed", str(SEED), "--run-date", str(RUN_DATE), "--force"]
    print("generating:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=sys.stdout, stderr=sys.stderr)  # the terminal, not the JVM log
    return out


def scale_of(data: Path) -> str:
    """The scale a generated input folder (generated_input) is for."""
    return data.name.removeprefix("data-")


def bench_spark():
    """The bench's session; Spark's log lines go to bench/work/_logs/bench.log."""
    return bench_session("c360-bench", "bench.log")


def bare_read(spark, events_dir: Path) -> int:
    """The floor of the format (benchmarks.md): a bare spark.read.json + count."""
    return spark.read.json(str(events_dir)).count()


def b4_ingest(spark, data: Path, pairs: int) -> list[Comparison]:
    """B4: our ingest of the raw JSON vs a bare spark.read.json + count of the same files; and, as
    the floor under it, ingest's parse and checks of every line with no write at all."""
    from jobs.ingest import stage as ingest
    from jobs.core.tables import Warehouse

    target = WORK / "b4-warehouse"
    events_dir = data / "events"
    event_files = [f.path for f in ingest.discover_inputs(spark, data).event_files]
    counts: dict = {}

    def run_ingest():
        shutil.rmtree(target, ignore_errors=True)
        metrics = ingest.ingest_events(spark, Warehouse(target), event_files, RUN_DATE)
        counts.update(metrics)
        return metrics["lines_read"]

    planted = json.loads((data / "_manifest.json").read_text())["events"]["lines"]

    def same_lines(ours, _bare):
        # spark.read.json's count is not a line count (a top-level JSON array becomes one row per
        # element), so ingest is checked against the generator's manifest instead.
        if ours != planted:
            raise AssertionError(f"ingest read {ours} lines, the generator wrote {planted}")

    cmp = Comparison("B4", "ingest raw JSON → bronze + quarantine", "c360 ingest", "spark.read.json + count",
                     target="≤ 1.5")
    paired(cmp, run_ingest, lambda: bare_read(spark, events_dir), pairs, check=same_lines)
    lines = counts["lines_read"]
    cores = 2
    cmp.extra["lines"] = f"{lines:,} (accepted {counts['accepted']:,}, duplicates {counts['duplicates']:,}, quarantined {counts['quarantined']:,})"
    best = min(cmp.a_seconds)
    cmp.extra["ingest events/s per core"] = f"{lines / best / cores:,.0f}"
    return [cmp, b4_parse_floor(spark, events_dir, event_files, pairs)]


def b4_parse_floor(spark, events_dir: Path, event_files: list[str], pairs: int) -> Comparison:
    """What ingest cannot do without: parse every line with its schema and run its checks. Nothing
    is written, cached or deduplicated; Spark's `noop` sink evaluates every column and discards it."""
    from jobs.ingest import stage as ingest

    def parse_and_check():
        ingest.classify_event_lines(spark, event_files, RUN_DATE).write.format("noop").mode("overwrite").save()

    cmp = Comparison("B4", "floor: ingest's parse and checks, nothing written", "parse + checks",
                     "spark.read.json + count")
    return paired(cmp, parse_and_check, lambda: bare_read(spark, events_dir), pairs)


def nightly_ctx(spark, warehouse: Path, run_date: dt.date):
    from jobs.core.config import load_config
    from jobs.core.context import JobContext

    return JobContext(config=load_config(overrides={"warehouse": str(warehouse)}), run_date=run_date, _spark=spark)


def run_nightly(spark, warehouse: Path, data: Path, run_date: dt.date, full: bool = False) -> dict:
    from jobs import pipeline
    from jobs.core.context import RunParams

    ctx = nightly_ctx(spark, warehouse, run_date)
    pipeline.run_nightly(ctx, RunParams(input_dir=Path(data), rebuild=full, rewind=full))
    return json.loads((warehouse / "_runs" / str(run_date) / "report.json").read_text())


def built_warehouse(spark, scale: str, data: Path) -> Path:
    """The scale's warehouse after one nightly on its data (built once, reused by B2/B3)."""
    warehouse = WORK / f"warehouse-{scale}"
    if not (warehouse / "_runs" / str(RUN_DATE) / "report.json").is_file():
        shutil.rmtree(warehouse, ignore_errors=True)
        run_nightly(spark, warehouse, data, RUN_DATE)
    return warehouse


def _execute(df) -> None:
    """Run a query to the end without the cost of keeping its output."""
    df.write.format("noop").mode("overwrite").save()


def b2_lens(spark, data: Path, pairs: int) -> list[Comparison]:
    """B2: each seed Lens question, compiled from the model vs the hand-written Spark SQL."""
    from jobs.core.config import REPO_ROOT, load_config
    from lens.execute import compile_for, run_compiled, views_for, warehouse_catalog
    from lens.model import load_model
    from lens.query_format import load_query
    from tests.reference_sql import REFERENCES

    scale = scale_of(data)
    warehouse = built_warehouse(spark, scale, data)
    settings = load_config().lens
    catalog = warehouse_catalog(settings.catalog, warehouse)
    model = load_model(REPO_ROOT / "lens" / "customer_360.yml")
    views = views_for(catalog)
    activity_view = views["icebase.audience.activity_streams_large_data"]
    customers_view = views["icebase.audience.customers_large_data"]
    out = []
    for ref in REFERENCES:
        compiled = compile_for(model, load_query(REPO_ROOT / ref.query_file, ref.variant), RUN_DATE, catalog)
        lens_df = run_compiled(spark, compiled, catalog)  # registers the views too
        hand_df = spark.sql(ref.sql(RUN_DATE, activity_view, customers_view))
        columns = hand_df.columns
        diff = lens_df.select(*[f"`{c}`" for c in columns]).exceptAll(hand_df).count() + \
            hand_df.exceptAll(lens_df.select(*[f"`{c}`" for c in columns])).count()
        if diff:
            raise AssertionError(f"B2 {ref.name}: lens answer differs from the hand-written SQL in {diff} rows")
        cmp = Comparison("B2", f"lens: {ref.name}", "compiled lens", "hand-written SQL", target="≤ 1.05")
        _execute(lens_df), _execute(hand_df)  # warm-up: Delta snapshots and file caches for both
        paired(cmp, lambda: _execute(lens_df), lambda: _execute(hand_df), max(pairs, LENS_PAIRS[scale]))
        cmp.extra["rows"] = f"{hand_df.count():,}, equal to the hand-written answer"
        out.append(cmp)
    return out


def b5_nightly(spark, data: Path, pairs: int) -> Comparison:
    """B5: the whole nightly on a fresh warehouse vs B4's floor (bare read) × number of stages.

    The last nightly's warehouse is the scale's warehouse that B2 then queries. Each stage's rate is
    reported too: the input events over the stage's seconds, per core.
    """
    from jobs import pipeline

    scale = scale_of(data)
    pairs = min(pairs, NIGHTLY_PAIRS[scale])
    stages = len(pipeline.NIGHTLY)
    target = WORK / f"warehouse-{scale}"
    events_dir = data / "events"
    reports = []
    cores = os.cpu_count() or 1

    def run_all():
        shutil.rmtree(target, ignore_errors=True)
        reports.append(run_nightly(spark, target, data, RUN_DATE))

    def floor():
        for _ in range(stages):
            bare_read(spark, events_dir)

    cmp = Comparison("B5", f"whole nightly ({stages} stages)", "c360 nightly", f"bare read × {stages}")
    paired(cmp, run_all, floor, pairs)
    lines = reports[-1]["stages"]["ingest"]["metrics"]["lines_read"]
    cmp.extra["events"] = f"{lines:,} lines in"
    cmp.extra["events/s per core, whole nightly"] = f"{lines / min(cmp.a_seconds) / cores:,.0f}"
    peaks = memory_meta(spark)
    cmp.extra["driver peak memory"] = (f"Python {peaks['driver_python_peak_rss_mb']} MB, "
                                       f"JVM {peaks['driver_jvm_peak_rss_mb']} MB (whole bench session so far)")
    for name, stage in reports[-1]["stages"].items():
        cmp.extra[f"stage {name}"] = f"{stage['seconds']} s, {lines / max(stage['seconds'], 0.1) / cores:,.0f} events/s per core"
    return cmp


def b6_read_commands(spark, data: Path, pairs: int) -> Comparison:
    """B6: `c360 lens query` answered through `c360 serve` (Spark Connect, `--remote`) vs the same
    command starting Spark itself; each a fresh process, as a user types it. The answers must be
    equal. Also: how long the server takes to be ready, and its first answer."""
    import signal
    import socket
    from jobs.core.config import REPO_ROOT

    warehouse = built_warehouse(spark, scale_of(data), data)
    c360 = str(Path(sys.executable).parent / "c360")
    with socket.socket() as probe:  # a free port for the server
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    where = ["--warehouse", str(warehouse), "--run-date", str(RUN_DATE)]
    query = [c360, "lens", "query", "--model", "lens/customer_360.yml", "--query", "lens/queries/rfm.yml",
             "--format", "json", *where]
    remote = ["--remote", f"sc://localhost:{port}"]

    def ask(extra: list[str]) -> str:
        done = subprocess.run([*query, *extra], capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
        if done.returncode != 0:
            raise AssertionError(f"B6: {' '.join([*query, *extra])} exited {done.returncode}: {done.stderr[-2000:]}")
        return done.stdout

    def same_answer(through_server: str, starting_spark: str) -> None:
        if json.loads(through_server) != json.loads(starting_spark):
            raise AssertionError("B6: the answer through c360 serve differs from the one starting Spark")

    started = time.monotonic()
    server = subprocess.Popen([c360, "serve", "--port", str(port), *where], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        ready_line = server.stdout.readline()
        if "Spark Connect at" not in ready_line:
            raise AssertionError(f"B6: c360 serve did not start: {ready_line}{server.stderr.read()[-2000:]}")
        ready = time.monotonic() - started
        first, _ = timed(lambda: ask(remote))
        cmp = Comparison("B6", "lens query (rfm), a fresh `c360` process", "through c360 serve", "starting Spark",
                         target="< 5 s through the server")
        paired(cmp, lambda: ask(remote), lambda: ask([]), pairs, check=same_answer)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
    cmp.extra["c360 serve ready after"] = f"{ready:.1f} s (Spark start, Connect service, every table read once)"
    cmp.extra["first answer through the server"] = f"{first:.2f} s"
    cmp.extra["later answers through the server"] = ", ".join(f"{s:.2f} s" for s in cmp.a_seconds)
    return cmp


def next_day_input(scale: str) -> Path:
    """B3's second day: 1 % of the scale's profiles with a day of new events on RUN_DATE + 1.
    Profiles are numbered, so these are the first 1 % of the first day's customers (same user ids,
    new anonymous ids, emails, orders); message ids carry the data set's prefix, so none is a replay."""
    out = WORK / f"data-{scale}-next-day"
    if (out / "_manifest.json").is_file():
        return out
    c360 = Path(sys.executable).parent / "c360"
    cmd = [str(c360), "generate", "--out", str(out), "--profiles", str(SCALES[scale] // 100), "--days", "1",
           "--seed", str(SEED + 1), "--run-date", str(RUN_DATE + dt.timedelta(days=1)), "--force"]
    print("generating:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=sys.stdout, stderr=sys.stderr)  # the terminal, not the JVM log
    return out


def b3_incremental(spark, data: Path, pairs: int) -> Comparison:
    """B3: the next day's nightly with 1 % new events, incremental vs a full rebuild of the same day,
    each on a copy of the first day's warehouse."""
    scale = scale_of(data)
    pairs = min(pairs, NIGHTLY_PAIRS[scale])
    first_day = built_warehouse(spark, scale, data)
    next_day, next_date = next_day_input(scale), RUN_DATE + dt.timedelta(days=1)
    reports: dict[str, dict] = {}

    def second_night(label: str, full: bool):
        def run():
            target = WORK / f"b3-{label}-{scale}"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(first_day, target)
            reports[label] = run_nightly(spark, target, next_day, next_date, full=full)
        return run

    cmp = Comparison("B3", "second nightly, 1 % new events", "incremental", "full rebuild")
    # Unmeasured: the session's first nightly pays the JVM's warm-up (code generation, JIT, Delta's
    # first snapshots: ingest at M 37 s cold, 9 s warm), and with one pair the incremental night
    # always goes first (`--only B3` at M: 289 s cold, 171 s warm).
    second_night("incremental", False)()
    paired(cmp, second_night("incremental", False), second_night("full", True), pairs)
    lines = reports["incremental"]["stages"]["ingest"]["metrics"]["lines_read"]
    cmp.extra["new lines"] = f"{lines:,}"
    for label, report in reports.items():
        cmp.extra[f"{label} stage seconds (share of the night)"] = stage_shares(report["stages"])
    for label, report in reports.items():
        # the stages' own splits of their time (a summary note "seconds: evidence 3.1, ...")
        for stage, result in report["stages"].items():
            steps = [n for n in result.get("notes", []) if n.startswith(STEP_NOTE)]
            if steps:
                cmp.extra[f"{label} {stage} steps (s)"] = steps[0].removeprefix(STEP_NOTE)
    return cmp


def stage_shares(stages: dict) -> str:
    """'ingest 10.9 (5 %), stitch 60.6 (30 %), ...': each stage's seconds and share of their sum."""
    total = sum(st["seconds"] for st in stages.values()) or 1.0
    return ", ".join(f"{name} {st['seconds']} ({100 * st['seconds'] / total:.0f} %)" for name, st in stages.items())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="S")
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument("--only", nargs="*", help="measurement ids to run (default: all)")
    args = parser.parse_args(argv)
    pairs = args.pairs or PAIRS[args.scale]
    data = generated_input(args.scale)
    spark = bench_spark()
    # B5 before B2: its last nightly builds the warehouse B2 queries.
    measurements = {"B4": b4_ingest, "B5": b5_nightly, "B2": b2_lens, "B3": b3_incremental, "B6": b6_read_commands}
    comparisons = []
    for mid, fn in measurements.items():
        if args.only and mid not in args.only:
            continue
        print(f"{mid} at scale {args.scale} ({pairs} pairs)", flush=True)
        result = fn(spark, data, pairs)
        comparisons.extend(result if isinstance(result, list) else [result])
    meta = {
        "customers": SCALES[args.scale],
        "pairs": pairs,
        "cores": os.cpu_count(),
        **memory_meta(spark),
        "date": str(dt.date.today()),
    }
    json_path, md_path = write_results(args.scale, comparisons, meta)
    print(md_path.read_text())
    print(f"results: {json_path}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
