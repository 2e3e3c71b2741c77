"""The worked examples of docs/*.md run verbatim after a nightly, as a reader pastes them after
`make run`, in a fresh copy of the repo and fresh processes (tests/test_readme_commands.py's way).

`make run` itself (2,000 profiles over 120 days) is replaced by a smaller nightly on the same run
date, today (UTC), which is what the examples' `$(date ...)` arithmetic starts from."""
from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from fractions import Fraction

import pytest

from jobs.core.config import REPO_ROOT
from tests.test_readme_commands import (
    JVM_NOTICE,
    TIMEOUT,
    assert_clean_terminal,
    fresh_copy,
)

pytestmark = pytest.mark.subprocess


def doc_commands(name: str) -> list[str]:
    """The lines of the page's ```sh blocks as written (bash expands their `$(date ...)`), comment
    lines and blank lines left out."""
    text = (REPO_ROOT / "docs" / name).read_text()
    return [line.strip() for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)
            for line in re.sub(r"\\\n\s*", " ", block).splitlines() if line.strip() and not line.startswith("#")]


def run(command: str, repo, env) -> str:
    proc = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"{command}\nexit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert_clean_terminal(proc, command)
    assert [line for line in proc.stderr.splitlines() if line.strip() and line != JVM_NOTICE] == [], proc.stderr
    return proc.stdout


def table_rows(text: str) -> list[list[str]]:
    """The data rows of `lens query`'s table output (cells split on two or more spaces)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return [re.split(r"\s{2,}", line.strip()) for line in lines[2:] if not line.startswith("(")]


@pytest.fixture(scope="module")
def after_make_run(tmp_path_factory):
    repo = fresh_copy(tmp_path_factory.mktemp("docs") / "c360")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_", "C360_"))}
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    run(f".venv/bin/c360 generate --out data/sample --profiles 300 --days 120 --seed 7 --run-date {today} --force",
        repo, env)
    run(f".venv/bin/c360 nightly --input data/sample --run-date {today}", repo, env)
    return repo, env, dt.date.fromisoformat(today)


def worked_example(after_make_run, page: str, commands: int):
    """Run the page's example commands in order: (repo, today, their outputs)."""
    repo, env, today = after_make_run
    found = doc_commands(page)
    assert len(found) == commands, found
    return repo, today, [run(c, repo, env) for c in found]


@pytest.mark.slow
def test_rfm_worked_example(after_make_run, spark):
    repo, today, outputs = worked_example(after_make_run, "rfm.md", 4)
    rows = spark.read.format("delta").load(str(repo / "warehouse" / "gold" / "rfm_history")).collect()
    tomorrow = today + dt.timedelta(days=1)
    assert sorted({r["run_date"] for r in rows}) == [today, tomorrow]
    customers = sum(1 for r in rows if r["run_date"] == today)
    repeat = sum(1 for r in rows if r["run_date"] == today and r["frequency"] >= 2)
    [[got_customers, got_repeat, got_rate]] = table_rows(outputs[0])
    assert (int(got_customers.replace(",", "")), int(got_repeat.replace(",", ""))) == (customers, repeat)
    assert abs(Fraction(got_rate) - Fraction(repeat, customers)) < Fraction(1, 10**4)
    # the cohort triangle: a cohort row for each month from its own to this one
    cohorts = table_rows(outputs[1])
    assert cohorts and all(row[0] <= today.isoformat() for row in cohorts)
    assert "rfm: customers=" in outputs[2]
    # the migration from today to tomorrow moves every customer scored on either day
    moved = sum(int(row[-1].replace(",", "")) for row in table_rows(outputs[3]))
    assert moved == len({r["customer_id"] for r in rows})


@pytest.mark.slow
def test_segments_worked_example(after_make_run, spark):
    repo, today, outputs = worked_example(after_make_run, "segments.md", 3)
    membership = spark.read.format("delta").load(str(repo / "warehouse" / "gold" / "segment_membership"))
    for name, text in zip(("churn_risk", "churn_risk_since_last_month"), outputs):
        members = membership.filter(f"segment = '{name}' AND exited_on IS NULL").count()
        assert f"segment {name} (customer) as of {today}: {members:,} members" in text, text
    lines = outputs[2].splitlines()
    assert lines[0] == "file,group,segment,rows,adds,removes"
    sent = {line.split(",")[0] for line in lines[1:]}
    assert sent == {f"churn_risk/{today}.psv", f"rfm_champions/{today}.csv"}
    for line in lines[1:]:
        name, rows, adds, removes = line.split(",")[0], *map(int, line.split(",")[3:])
        data = (repo / "warehouse" / "exports" / name).read_text().splitlines()[1:]
        assert rows == len(data) == adds + removes


@pytest.mark.slow
def test_levels_worked_example(after_make_run, spark):
    repo, today, [output] = worked_example(after_make_run, "levels.md", 1)
    membership = spark.read.format("delta").load(str(repo / "warehouse" / "gold" / "segment_membership"))
    households = membership.filter("segment = 'household_champions' AND exited_on IS NULL")
    assert households.filter("level <> 'group'").count() == 0
    members = households.count()
    assert f"segment household_champions (group) as of {today}: {members:,} members" in output, output
    shown = sorted(r.member_id for r in households.collect())[:3]
    lines = output.splitlines()
    for group_id in shown:
        # the household, with the rfm.rfm_segment of a member that qualifies it
        assert any(line.split()[:2] == [group_id, "Champions"] for line in lines), (group_id, output)
