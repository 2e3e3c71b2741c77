"""Paired measurement: A, B, then B, A, ... in one session; report the median of the paired ratios A/B.

These machines are shared and noisy, so an absolute time alone proves nothing: each pair runs back
to back under the same conditions and only their ratio is compared.
"""
from __future__ import annotations

import json
import resource
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"
WORK = Path(__file__).resolve().parent / "work"


def bench_session(app_name: str, log_name: str, shuffle_partitions: int = 4):
    """A bench's SparkSession (local[2], 8 GB driver, no UI); Spark's log lines go to
    bench/work/_logs/<log_name>, as c360's go to _logs/, not to the terminal."""
    import os

    from jobs.core.config import SparkSettings
    from jobs.core.console import divert_jvm_output
    from jobs.core.session import LOG_FILE_ENV, build_spark

    os.environ[LOG_FILE_ENV] = str(divert_jvm_output(WORK / "_logs" / log_name))
    return build_spark(SparkSettings(master="local[2]", app_name=app_name, shuffle_partitions=shuffle_partitions,
                                     driver_memory="8g", conf={"spark.ui.enabled": "false"}))


@dataclass
class Comparison:
    id: str
    name: str
    a_label: str
    b_label: str
    a_seconds: list[float] = field(default_factory=list)
    b_seconds: list[float] = field(default_factory=list)
    target: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.a_seconds, self.b_seconds) if b > 0]

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else float("nan")

    def to_json(self) -> dict:
        return {**asdict(self), "ratios": [round(r, 3) for r in self.ratios], "median_ratio": round(self.median_ratio, 3)}


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def paired(cmp: Comparison, run_a: Callable[[], object], run_b: Callable[[], object], pairs: int,
           check: Callable[[object, object], None] | None = None) -> Comparison:
    """Run A and B back to back `pairs` times, recording seconds; `check(a_value, b_value)` guards
    correctness. Every other pair runs B first, so that going first or second (warm caches, the
    other run's garbage still to collect) favours neither side."""
    for i in range(pairs):
        if i % 2 == 0:
            seconds_a, value_a = timed(run_a)
            seconds_b, value_b = timed(run_b)
        else:
            seconds_b, value_b = timed(run_b)
            seconds_a, value_a = timed(run_a)
        if check is not None:
            check(value_a, value_b)
        cmp.a_seconds.append(round(seconds_a, 3))
        cmp.b_seconds.append(round(seconds_b, 3))
        print(f"  {cmp.id} pair: {cmp.a_label} {seconds_a:.2f}s vs {cmp.b_label} {seconds_b:.2f}s", flush=True)
    return cmp


def driver_peak_rss_mb() -> float:
    """Peak resident memory of this Python driver process and its children (the JVM), in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


def jvm_peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of a live process, from /proc; None when unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def memory_meta(spark) -> dict:
    """Peak memory of the Python driver and of the JVM behind `spark`, for a results file."""
    proc = spark.sparkContext._gateway.proc
    return {"driver_python_peak_rss_mb": driver_peak_rss_mb(),
            "driver_jvm_peak_rss_mb": jvm_peak_rss_mb(proc.pid) if proc else None}


def _comparison(data: dict) -> Comparison:
    return Comparison(**{k: data[k] for k in ("id", "name", "a_label", "b_label", "a_seconds", "b_seconds",
                                               "target", "extra")})


def write_results(scale: str, comparisons: list[Comparison], meta: dict) -> tuple[Path, Path]:
    """Write the scale's results. Comparisons measured by an earlier run (`--only` others) are kept
    unless this run measured them again; each keeps its own pairs and the meta of the latest run."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS / f"{scale}.json"
    md_path = RESULTS / f"{scale}.md"
    measured = {(c.id, c.name) for c in comparisons}
    earlier = json.loads(json_path.read_text()).get("comparisons", []) if json_path.is_file() else []
    kept = [_comparison(c) for c in earlier if (c["id"], c["name"]) not in measured]
    order = {"B4": 0, "B5": 1, "B3": 2, "B2": 3, "B6": 4}
    comparisons = sorted(kept + comparisons, key=lambda c: order.get(c.id, len(order)))
    json_path.write_text(json.dumps({"scale": scale, **meta, "comparisons": [c.to_json() for c in comparisons]}, indent=2))
    lines = [
        f"# c360 bench — scale {scale}",
        "",
        ", ".join(f"{k}: {v}" for k, v in meta.items()),
        "",
        "| id | measurement | A | B | A seconds | B seconds | median A/B | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        lines.append(
            f"| {c.id} | {c.name} | {c.a_label} | {c.b_label} | {', '.join(f'{s:.2f}' for s in c.a_seconds)} | "
            f"{', '.join(f'{s:.2f}' for s in c.b_seconds)} | **{c.median_ratio:.2f}** | {c.target} |"
        )
        for key, value in c.extra.items():
            lines.append(f"|  | {key}: {value} |  |  |  |  |  |  |")
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path
