"""B1: connected components on 1M- and 10M-edge identity-like graphs (benchmarks.md).

    .venv/bin/python -m bench.b1_stitch --edges 1M 10M

Edge tables are generated once per (size, seed) as Parquet under bench/work/ before any timing:
power-law component sizes (random trees plus a few extra edges), long chains of 10,000 hops and a
few hubs, over random 64-bit ids (like hashed identifiers), written in chunks so 10M edges stay
small in memory. Then, in ONE SparkSession, the methods run round-robin (the order rotates every
pair) and every result is checked for exact agreement with scipy's partition.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.harness import RESULTS, WORK, bench_session, memory_meta, timed

SEED = 20260701
CHAIN_HOPS = 10_000
CHUNK_EDGES = 1_000_000
# Power-law component sizes: P(size >= s) ~ s^-POWER_LAW_ALPHA, from 2 up to MAX_COMPONENT.
POWER_LAW_ALPHA = 1.3
MAX_COMPONENT = 200_000
EXTRA_EDGE_SHARE = 0.1  # cycles inside components (several identifiers seen together)
DUPLICATE_SHARE = 0.02  # the same pair seen again
HUBS = 5
HUB_SHARE = 0.01  # each hub links to this share of all vertices: a few giant merges
SIZES = {"1M": 1_000_000, "10M": 10_000_000}


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def edges_path(label: str, seed: int) -> Path:
    return WORK / f"b1-edges-{label}-seed{seed}.parquet"


def build_edges(label: str, seed: int) -> Path:
    """Write the edge table for `label` (1M / 10M) once; later runs reuse it."""
    path = edges_path(label, seed)
    if path.is_file():
        return path
    target = SIZES[label]
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    schema = pa.schema([("src", pa.int64()), ("dst", pa.int64())])
    hubs = random_ids(rng, HUBS)
    written = 0
    with pq.ParquetWriter(tmp, schema) as writer:
        def write(src: np.ndarray, dst: np.ndarray) -> None:
            nonlocal written
            writer.write_table(pa.table({"src": src, "dst": dst}, schema=schema))
            written += src.size

        for _ in range(max(1, target // 500_000)):  # long chains: only 10,000 hops link their ends
            ids = random_ids(rng, CHAIN_HOPS + 1)
            write(ids[:-1], ids[1:])
        while written < target:
            chunk = min(CHUNK_EDGES, target - written)
            hub_edges = int(chunk * HUBS * HUB_SHARE)
            src, dst = forest_chunk(rng, chunk - hub_edges)
            # A few hubs (think shared junk identifiers) each link a slice of this chunk's vertices.
            leaves = rng.choice(src, size=hub_edges, replace=False)
            write(np.concatenate([src, np.repeat(hubs, hub_edges // HUBS + 1)[:hub_edges]]),
                  np.concatenate([dst, leaves]))
    tmp.rename(path)
    return path


def random_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, size=n, dtype=np.int64)


def forest_chunk(rng: np.random.Generator, edges: int) -> tuple[np.ndarray, np.ndarray]:
    """About `edges` edges of random trees with power-law sizes, plus cycles and duplicates."""
    tree_edges = int(edges / (1 + EXTRA_EDGE_SHARE + DUPLICATE_SHARE))
    sizes = []
    total = 0
    while total < tree_edges:
        batch = np.minimum((2 * (1 - rng.random(10_000)) ** (-1 / POWER_LAW_ALPHA)).astype(np.int64), MAX_COMPONENT)
        sizes.append(batch)
        total += int((batch - 1).sum())
    size = np.concatenate(sizes)
    size = size[: np.searchsorted(np.cumsum(size - 1), tree_edges) + 1]
    n = int(size.sum())
    ids = random_ids(rng, n)
    start = np.repeat(np.cumsum(size) - size, size)  # first index of each vertex's component
    local = np.arange(n) - start
    child = np.flatnonzero(local > 0)
    # Random recursive tree: each vertex hangs under a random earlier vertex of its component.
    parent = start[child] + (rng.random(child.size) * local[child]).astype(np.int64)
    src, dst = ids[child], ids[parent]
    extra = rng.choice(child, size=int(child.size * EXTRA_EDGE_SHARE))
    extra_dst = start[extra] + (rng.random(extra.size) * (local[extra] + 1)).astype(np.int64)
    dup = rng.integers(0, src.size, size=int(src.size * DUPLICATE_SHARE))
    src = np.concatenate([src, ids[extra], dst[dup]])
    dst = np.concatenate([dst, ids[extra_dst], src[dup]])
    order = rng.permutation(src.size)
    return src[order], dst[order]


# ----------------------------------------------------------------------------------------------
# Methods
# ----------------------------------------------------------------------------------------------


@dataclass
class Method:
    name: str
    # -> (ids, component) sorted by id (scipy), graph.Components (c360), or a labels DataFrame (GraphFrames)
    run: Callable[[], object]
    shuffle_partitions: int | None = None
    seconds: list[float] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    agree: list[bool] = field(default_factory=list)
    notes: set[str] = field(default_factory=set)


def scipy_floor(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The single-machine floor: read the Parquet on the driver, scipy connected components."""
    from jobs.identity.graph import local_components

    table = pq.read_table(path)
    ids, component = local_components(table.column("src").to_numpy(), table.column("dst").to_numpy())
    order = np.argsort(ids)
    return ids[order], component[order]


def spark_method(spark, path: Path, checkpoint_dir: Path, local_threshold: int, partition_edges: int | None = None):
    from jobs.identity.graph import DEFAULT_PARTITION_EDGES, connected_components

    def run():
        edges = spark.read.parquet(str(path))
        return connected_components(edges, checkpoint_dir=str(checkpoint_dir), local_threshold=local_threshold,
                                    partition_edges=partition_edges or DEFAULT_PARTITION_EDGES)

    return run


def shuffle_pass(spark, path: Path, out: Path):
    """The distributed floor unit: one symmetric groupBy pass over the same edges (each edge counted
    at both endpoints), written out, in the same session as the methods."""
    from pyspark.sql import functions as F

    def run():
        edges = spark.read.parquet(str(path))
        ends = edges.select(F.col("src").alias("v")).unionByName(edges.select(F.col("dst").alias("v")))
        ends.groupBy("v").count().write.mode("overwrite").parquet(str(out))

    return run


def partition_of(result) -> tuple[np.ndarray, np.ndarray]:
    """(ids, component) sorted by id, collected as Arrow (outside the timed part)."""
    table = result.toArrow()
    ids = table.column("id").to_numpy()
    comp = table.column("component").to_numpy()
    order = np.argsort(ids, kind="stable")
    return ids[order], comp[order]


def same_partition(reference: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray]) -> bool:
    """Exact agreement: same vertex set and, per vertex, the same component minimum."""
    return reference[0].size == got[0].size and bool(np.array_equal(reference[0], got[0])) and bool(
        np.array_equal(reference[1], got[1])
    )


def bench_size(spark, label: str, seed: int, pairs: int, partitions: list[int], methods_wanted: list[str],
               partition_edges: list[int]) -> dict:
    from jobs.identity import graph

    path = build_edges(label, seed)
    checkpoints = WORK / "b1-checkpoints"
    methods: list[Method] = []
    for p in partitions:
        if "distributed" in methods_wanted:
            for budget in partition_edges:
                methods.append(Method(f"distributed (local_threshold=0, partition_edges={budget:,}), {p} partitions",
                                      spark_method(spark, path, checkpoints, 0, budget), p))
        if "default" in methods_wanted:
            methods.append(Method(f"default (local_threshold={graph.DEFAULT_LOCAL_THRESHOLD:,}), {p} partitions",
                                  spark_method(spark, path, checkpoints, graph.DEFAULT_LOCAL_THRESHOLD), p))
        if "driver" in methods_wanted:
            methods.append(Method(f"driver path (local_threshold={2 * SIZES[label]:,}), {p} partitions",
                                  spark_method(spark, path, checkpoints, 2 * SIZES[label]), p))
    if "graphframes" in methods_wanted:
        from bench import graphframes_baseline

        for p in partitions:
            methods.append(Method(f"GraphFrames two_phase (re-implemented), {p} partitions",
                                  graphframes_baseline.method(spark, path, checkpoints), p))
    floor = Method("one shuffle pass: symmetric groupBy over the edges (distributed floor unit)",
                   shuffle_pass(spark, path, checkpoints / "floor"), partitions[0])
    methods.append(floor)
    scipy = Method("scipy on the driver (floor)", lambda: scipy_floor(path))
    methods.append(scipy)
    reference = scipy_floor(path)
    for pair in range(pairs):
        order = methods[pair % len(methods):] + methods[: pair % len(methods)]
        for method in order:
            if method.shuffle_partitions:
                spark.conf.set("spark.sql.shuffle.partitions", str(method.shuffle_partitions))
            shutil.rmtree(checkpoints, ignore_errors=True)
            seconds, result = timed(method.run)
            if method is scipy:
                got = result
            elif method is floor:
                got = None  # not a labelling: nothing to compare
            elif method.name.startswith("GraphFrames"):
                from bench import graphframes_baseline

                got = partition_of(result)
                method.rounds.append(graphframes_baseline.LAST_ITERATIONS[0])
            else:
                labels, stats = result  # graph.Components
                got = partition_of(labels)
                method.rounds.append(stats.rounds)
                method.notes.add(f"path={stats.path}")
                if stats.local_edges:
                    method.notes.add(f"finished on driver with {stats.local_edges:,} edges")
                if stats.active_edges:
                    method.notes.add("edges left after each round: " + ", ".join(f"{a:,}" for a in stats.active_edges))
                    method.notes.add("buckets per round: " + ", ".join(map(str, stats.buckets)))
            method.seconds.append(round(seconds, 2))
            if got is not None:
                method.agree.append(same_partition(reference, got))
            print(f"  {label} pair {pair + 1}: {method.name}: {seconds:.2f}s agree={method.agree[-1] if got is not None else '-'}"
                  f" rounds={method.rounds[-1] if method.rounds else '-'}", flush=True)
    shutil.rmtree(checkpoints, ignore_errors=True)
    rows = []
    measured = measured_on()
    graphframes = next((m for m in methods if m.name.startswith("GraphFrames")), None)
    for method in methods:
        ratios = [a / b for a, b in zip(method.seconds, scipy.seconds)]
        if graphframes is not None and method is not graphframes and method is not scipy:
            versus = [a / b for a, b in zip(method.seconds, graphframes.seconds)]
            method.notes.add(f"median paired ratio vs GraphFrames two_phase: {statistics.median(versus):.2f}")
        if method is not floor and method is not scipy:
            passes = [a / b for a, b in zip(method.seconds, floor.seconds)]
            method.notes.add(f"shuffle-pass equivalents (paired, median): {statistics.median(passes):.1f}")
        rows.append({
            "method": method.name, "seconds": method.seconds, "median_seconds": statistics.median(method.seconds),
            "median_ratio_vs_scipy": round(statistics.median(ratios), 2), "rounds": method.rounds,
            "agree": all(method.agree) if method.agree else None, "notes": sorted(method.notes),
            "measured": measured,
        })
    vertices = int(reference[0].size)
    components = int(np.unique(reference[1]).size)
    return {"edges": label, "edge_rows": pq.ParquetFile(path).metadata.num_rows, "vertices": vertices,
            "components": components, "largest_component": int(np.bincount(np.unique(reference[1], return_inverse=True)[1]).max()),
            "pairs": pairs, "methods": rows}


def measured_on() -> str:
    """The date and the code a row was measured with (rows of earlier invocations stay in the
    report, so each says which code it timed)."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parent)

    try:
        commit = git("rev-parse", "--short", "HEAD").stdout.strip()
        # changed code, not the results this bench writes, makes the row's code "changed"
        changed = git("diff", "--quiet", "HEAD", "--", ".", ":(exclude)bench/results").returncode != 0
    except OSError:
        commit, changed = "", False
    return f"{dt.date.today()} at {commit or 'an unknown commit'}{' with changes' if changed else ''}"


def write_report(sizes: list[dict], meta: dict) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path, md_path = RESULTS / "b1.json", RESULTS / "b1.md"
    # Rows measured in an earlier invocation (another size, or other methods) are kept unless this
    # run re-measured the same method on the same size; each row's ratio comes from its own pairs.
    previous = {s["edges"]: s for s in json.loads(json_path.read_text()).get("sizes", [])} if json_path.is_file() else {}
    for size in sizes:
        old = previous.get(size["edges"])
        if old:
            names = {row["method"] for row in size["methods"]}
            size["methods"] = [row for row in old["methods"] if row["method"] not in names] + size["methods"]
        previous[size["edges"]] = size
    sizes = sorted(previous.values(), key=lambda s: s["edge_rows"])
    json_path.write_text(json.dumps({**meta, "sizes": sizes}, indent=2))
    lines = ["# B1 — connected components (identity stitching graph)", "",
             ", ".join(f"{k}: {v}" for k, v in meta.items()), ""]
    for size in sizes:
        lines += [f"## {size['edges']} edges ({size['edge_rows']:,} rows, {size['vertices']:,} vertices, "
                  f"{size['components']:,} components, largest {size['largest_component']:,})", "",
                  "| method | seconds (per pair) | median s | median ratio vs scipy (paired) | rounds | agrees with scipy | measured |",
                  "|---|---|---|---|---|---|---|"]
        for row in size["methods"]:
            lines.append(f"| {row['method']} | {', '.join(f'{s:.2f}' for s in row['seconds'])} | {row['median_seconds']:.2f} | "
                         f"{row['median_ratio_vs_scipy']:.2f} | {', '.join(map(str, row['rounds'])) or '-'} | "
                         f"{'-' if row['agree'] is None else 'yes' if row['agree'] else 'NO'} | "
                         f"{row.get('measured', 'before 2026-12-07, code not recorded')} |")
        lines.append("")
        for row in size["methods"]:
            for note in row["notes"]:
                lines.append(f"- {row['method']}: {note}")
        lines.append("")
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edges", nargs="+", choices=sorted(SIZES), default=["1M", "10M"])
    parser.add_argument("--pairs", type=int, nargs="+", default=None, help="pairs per size (default 3 at 1M, 2 at 10M)")
    parser.add_argument("--partitions", type=int, nargs="+", default=[4, 8], help="shuffle partitions to try")
    parser.add_argument("--methods", nargs="+", default=["distributed", "default"],
                        choices=["distributed", "default", "driver", "graphframes"])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--partition-edges", type=int, nargs="+", default=None,
                        help="distributed path: edges per bucket to try (default: the identity default)")
    args = parser.parse_args(argv)
    for label in args.edges:  # all data exists before anything is timed
        build_edges(label, args.seed)
    spark = bench_session("c360-b1", "b1.log", shuffle_partitions=args.partitions[0])
    sizes = []
    for i, label in enumerate(args.edges):
        pairs = args.pairs[min(i, len(args.pairs) - 1)] if args.pairs else (3 if label == "1M" else 2)
        print(f"B1 {label}: {pairs} pairs", flush=True)
        from jobs.identity.graph import DEFAULT_PARTITION_EDGES

        sizes.append(bench_size(spark, label, args.seed, pairs, args.partitions, args.methods,
                                args.partition_edges or [DEFAULT_PARTITION_EDGES]))
    meta = {"master": "local[2]", "driver_memory": "8g", "seed": args.seed, "cores": os.cpu_count(),
            **memory_meta(spark), "date": str(dt.date.today())}
    json_path, md_path = write_report(sizes, meta)
    spark.stop()
    print(md_path.read_text(), f"results: {json_path}", sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
