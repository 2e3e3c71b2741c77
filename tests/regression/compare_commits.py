"""Does a refactor change what the nightly writes? Run two commits on the same input and compare.

    python -m tests.regression.compare_commits --base 9ba82f1 [--head WORKTREE_OR_REV] [--work DIR]

Each commit is checked out in its own git worktree (HEAD may be the working tree itself, `--head .`),
and runs, in a fresh process with that checkout's code:
  day 1: `c360 generate` (the base commit's generator, so both sides read the same bytes) and
         `c360 nightly` on a new warehouse;
  day 2: a second, smaller input for the next date and an incremental `c360 nightly` on top.
After each day every Delta table under both warehouses is read with Spark and compared as a whole
DataFrame with chispa (same columns, same types, same rows; row order ignored), and every export
file is compared byte for byte. Tables only one side has are reported. Exit status 1 on any
difference, so it can gate a refactor; the run's log lists each table and its row count.
"""
from __future__ import annotations

import argparse
import datetime as dt
import filecmp
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAY1 = dt.date(2026, 11, 30)
DAY2 = DAY1 + dt.timedelta(days=1)
# Volatile by construction: the reports carry wall-clock seconds and the config file's path.
SKIP_FOLDERS = ("_runs", "_logs")


def run_c360(tree: Path, *args: str, cwd: Path, log: Path) -> None:
    """`c360 ARGS` with `tree`'s code; Spark's Python workers import the same checkout (PYTHONPATH)."""
    cmd = c360(tree, *args)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        subprocess.run(cmd, cwd=cwd, check=True, stdout=fh, stderr=subprocess.STDOUT, env=env)


def checkout(rev: str, work: Path) -> Path:
    """The code of `rev` as a worktree (or the working tree itself for '.')."""
    if rev == ".":
        return REPO
    tree = work / f"tree-{rev}"
    if not tree.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), rev], check=True,
                       stdout=subprocess.DEVNULL)
    jars = tree / ".jars"
    if not jars.exists():
        jars.symlink_to(REPO / ".jars")
    return tree


def c360(tree: Path, *args: str) -> list[str]:
    """The c360 CLI of `tree`, in a fresh interpreter that imports that tree's packages first."""
    code = "import sys; sys.path.insert(0, sys.argv.pop(1)); from jobs.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, str(tree), *args]


def generate_inputs(tree: Path, work: Path, log: Path) -> tuple[Path, Path]:
    day1, day2 = work / "input-day1", work / "input-day2"
    if not (day1 / "_manifest.json").is_file():
        run_c360(tree, "generate", "--out", str(day1), "--profiles", "2000", "--days", "120", "--seed", "7",
                 "--run-date", str(DAY1), "--force", cwd=work, log=log)
    if not (day2 / "_manifest.json").is_file():
        run_c360(tree, "generate", "--out", str(day2), "--profiles", "200", "--days", "1", "--seed", "8",
                 "--run-date", str(DAY2), "--force", cwd=work, log=log)
    return day1, day2


def run_nights(tree: Path, label: str, inputs: tuple[Path, Path], work: Path, log: Path) -> tuple[Path, Path]:
    """Day 1 then an incremental day 2; a copy of the warehouse after each."""
    warehouse = work / f"warehouse-{label}"
    shutil.rmtree(warehouse, ignore_errors=True)
    snapshots = []
    for day, (date, raw) in enumerate(zip((DAY1, DAY2), inputs), 1):
        run_c360(tree, "nightly", "--warehouse", str(warehouse), "--input", str(raw), "--run-date", str(date),
                 cwd=work, log=log)
        snap = work / f"{label}-day{day}"
        shutil.rmtree(snap, ignore_errors=True)
        shutil.copytree(warehouse, snap, ignore=shutil.ignore_patterns(*SKIP_FOLDERS))
        snapshots.append(snap)
    return snapshots[0], snapshots[1]


def delta_tables(root: Path) -> list[str]:
    """The warehouse's data tables; not its operational state under _-folders (_control/run_lock, the
    lease the command line takes: jobs.core.lock)."""
    found = (str(p.parent.relative_to(root)) for p in root.rglob("_delta_log") if p.is_dir())
    return sorted(name for name in found if not name.startswith("_"))


def export_files(root: Path) -> list[str]:
    exports = root / "exports"
    return sorted(str(p.relative_to(root)) for p in exports.rglob("*") if p.is_file()) if exports.exists() else []


def sortable(df, root: str | tuple[str, ...]):
    """chispa sorts rows to ignore their order; binary values and maps do not sort, so compare
    binary as hex and a map as the JSON of its entries sorted by key (a map has no order); and it
    sorts by names unquoted, so lens answers' dotted column names (entity.member) are renamed. Text
    that names the warehouse's own folder (gold/segment_runs.export_file) reads <warehouse>; `root`
    may be several folders (a warehouse copied from another names both)."""
    from pyspark.sql import functions as F

    df = df.toDF(*[c.replace(".", "__") for c in df.columns])

    kinds = {f.name: f.dataType.typeName() for f in df.schema.fields}

    def anonymous(column: str):
        value = F.col(column)
        # the longest first: a folder's name may start with another's (wh, wh2)
        for folder in sorted((root,) if isinstance(root, str) else root, key=len, reverse=True):
            value = F.replace(value, F.lit(folder), F.lit("<warehouse>"))
        return value

    return df.withColumns({
        **{c: F.hex(c) for c, k in kinds.items() if k == "binary"},
        **{c: F.to_json(F.array_sort(F.map_entries(c))) for c, k in kinds.items() if k == "map"},
        **{c: anonymous(c) for c, k in kinds.items() if k == "string"},
    })


def compare(spark, base: Path, head: Path, roots: tuple[str | tuple[str, ...], str | tuple[str, ...]]) -> list[str]:
    """Differences between two warehouses, one line each (empty when they are equal)."""
    from chispa import assert_df_equality

    problems: list[str] = []
    base_tables, head_tables = delta_tables(base), delta_tables(head)
    for name in sorted(set(base_tables) ^ set(head_tables)):
        problems.append(f"{name}: only in {'base' if name in base_tables else 'head'}")
    for name in sorted(set(base_tables) & set(head_tables)):
        a = spark.read.format("delta").load(str(base / name))
        b = spark.read.format("delta").load(str(head / name))
        a, b = sortable(a, roots[0]), sortable(b, roots[1])
        try:
            assert_df_equality(a, b, ignore_row_order=True, ignore_nullable=False)
            print(f"  equal: {name} ({a.count():,} rows)", flush=True)
        except Exception as exc:  # chispa's DataFramesNotEqualError / SchemasNotEqualError
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # chispa colours its tables
            problems.append(f"{name}: {type(exc).__name__}: {' '.join(text.split())[:400]}")
    base_files, head_files = export_files(base), export_files(head)
    for name in sorted(set(base_files) ^ set(head_files)):
        problems.append(f"{name}: only in {'base' if name in base_files else 'head'}")
    for name in sorted(set(base_files) & set(head_files)):
        if not filecmp.cmp(base / name, head / name, shallow=False):
            problems.append(f"{name}: file contents differ")
        else:
            print(f"  equal: {name}", flush=True)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit before the change")
    parser.add_argument("--head", default=".", help="the commit after it ('.' = this working tree)")
    parser.add_argument("--work", default="/tmp/c360-compare", help="scratch folder (inputs, warehouses, log)")
    parser.add_argument("--reuse-base", action="store_true", help="keep the base's warehouses from an earlier run")
    parser.add_argument("--compare-only", action="store_true", help="compare the warehouses an earlier run left")
    args = parser.parse_args(argv)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "run.log"
    base_tree, head_tree = checkout(args.base, work), checkout(args.head, work)
    inputs = generate_inputs(base_tree, work, log)
    if (args.reuse_base or args.compare_only) and (work / "base-day2").is_dir():
        base_days = (work / "base-day1", work / "base-day2")
    else:
        base_days = run_nights(base_tree, "base", inputs, work, log)
    if args.compare_only and (work / "head-day2").is_dir():
        head_days = (work / "head-day1", work / "head-day2")
    else:
        head_days = run_nights(head_tree, "head", inputs, work, log)

    sys.path.insert(0, str(REPO))
    from jobs.core.session import build_spark  # noqa: E402  (this checkout's session builder)
    from tests.conftest import TEST_SPARK  # noqa: E402

    os.environ.setdefault("C360_LOG_FILE", str(work / "spark.log"))
    spark = build_spark(TEST_SPARK)
    failed = False
    for day, (base, head) in enumerate(zip(base_days, head_days), 1):
        print(f"day {day}: {base} vs {head}", flush=True)
        problems = compare(spark, base, head, (str(work / "warehouse-base"), str(work / "warehouse-head")))
        for line in problems:
            print(f"  DIFFERS: {line}", flush=True)
        failed |= bool(problems)
    print("different" if failed else "equal: every table and export file, both days", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
