"""`c360 lens query` in a fresh process, as a user runs it after a nightly.

In-process tests share one Spark session, where a view an earlier query registered hides a query
that forgets to register it (TABLE_OR_VIEW_NOT_FOUND lens_silver_activity_stream, seen only in a
new process). Here every query is its own `c360` process on a small warehouse (two generated
nights, tests/conftest.py two_nights): each saved query in lens/queries (and each variant), README's
`lens query` examples, and one `lens sql`. Each must exit 0, print a JSON array keyed by
`entity.member`, and keep stack traces off the terminal.

Every process pays Spark's start-up, so the queries run two at a time (the CLI answers one query
per process). Then the same commands through `c360 serve` (Spark Connect, `--remote`) give the same
answers without starting Spark.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import signal
import socket
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from lens.query_format import load_query, variant_names
from tests.conftest import SECOND_NIGHT

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

REPO = Path(__file__).resolve().parents[1]
C360 = REPO / ".venv" / "bin" / "c360"
RUN_DATE = SECOND_NIGHT
PROJECT = "lens/customer_360.yml"
TRACES = ("Traceback", "at org.apache", "py4j")
PARALLEL = 2
TIMEOUT = 900
# set in this process by a Spark session of other tests; a user's shell has none of them
INHERITED = ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "C360_LOG_FILE")
BROKEN = "broken-model"


def saved_queries() -> list[tuple[str, list[str]]]:
    """(id, arguments after `c360`) for each saved query and each of its variants."""
    found = []
    for path in sorted((REPO / "lens" / "queries").glob("*.yml")):
        for variant in [None, *variant_names(path)]:
            args = ["lens", "query", "--model", PROJECT, "--query", str(path.relative_to(REPO))]
            args += ["--variant", variant] if variant else []
            found.append((f"{path.stem}{'-' + variant if variant else ''}", args))
    return found


def readme_examples() -> list[tuple[str, list[str]]]:
    """README's `c360 lens query` commands (continuation lines joined), as written there."""
    text = (REPO / "README.md").read_text().replace("\\\n", " ")
    commands = [without_remote(shlex.split(line)[1:]) for line in text.splitlines()
                if re.match(r"\s*(\.venv/bin/)?c360 lens query ", line)]
    assert commands, "README shows `c360 lens query` examples"
    return [(f"readme-{i}", args) for i, args in enumerate(commands, 1)]


def without_remote(args: list[str]) -> list[str]:
    """A README example that asks `c360 serve` (--remote URL), as it runs starting Spark; the tests
    through the server below add their own server's URL."""
    if "--remote" not in args:
        return args
    at = args.index("--remote")
    return [*args[:at], *args[at + 2:]]


def as_json(args: list[str]) -> list[str]:
    if "--format" in args:
        at = args.index("--format")
        return [*args[:at], "--format", "json", *args[at + 2:]]
    return [*args, "--format", "json"]


def expected_columns(args: list[str]) -> list[str]:
    """The `entity.member` keys a query's JSON rows carry: dimensions, then measures."""
    def values(flag: str) -> list[str]:
        return [args[i + 1] for i, a in enumerate(args) if a == flag]

    if "--query" in args:
        query = load_query(REPO / values("--query")[0], (values("--variant") or [None])[0])
        return [*query.dimensions, *(t.key for t in query.time_dimensions if t.granularity), *query.measures]
    return [*values("--dimension"), *values("--measure")]


# Each distinct command once: README's rfm example is the saved rfm query.
COMMANDS: dict[tuple[str, ...], str] = {}
for _name, _args in saved_queries() + readme_examples():
    COMMANDS.setdefault(tuple(as_json(_args)), _name)
CASES = [(name, list(args)) for args, name in COMMANDS.items()]


def c360(*args: str, warehouse: Path | None = None) -> subprocess.CompletedProcess:
    where = ["--warehouse", str(warehouse), "--run-date", RUN_DATE] if warehouse else []
    env = {k: v for k, v in os.environ.items() if k not in INHERITED}
    return subprocess.run([str(C360), *args, *where], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


def assert_no_trace(stderr: str) -> None:
    for marker in TRACES:
        assert marker not in stderr, f"{marker!r} on the terminal:\n{stderr}"


@pytest.fixture(scope="module")
def warehouse(request) -> Path:
    if not C360.exists():
        pytest.skip(f"{C360} is missing (make setup)")
    return request.getfixturevalue("two_nights").after_both


@pytest.fixture(scope="module")
def broken_model(tmp_path_factory) -> Path:
    """The seed model with a column the activity stream does not have: Spark's analysis fails."""
    text = (REPO / "lens" / "seed" / "customer_360.lens.yml").read_text()
    assert "trim(feature6) as product_classification" in text
    path = tmp_path_factory.mktemp("broken_model") / "broken.yml"
    path.write_text(text.replace("trim(feature6) as product_classification", "trim(feature66) as product_classification", 1))
    return path


@pytest.fixture(scope="module")
def answers(warehouse, broken_model) -> dict[str, Future]:
    """Every command started at once, PARALLEL processes at a time; each test waits for its own."""
    pool = ThreadPoolExecutor(max_workers=PARALLEL)
    broken = ["lens", "query", "--model", str(broken_model), "--measure", "order_placed.frequency", "--format", "json"]
    futures = {name: pool.submit(c360, *args, warehouse=warehouse) for name, args in [*CASES, (BROKEN, broken)]}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("name, args", CASES, ids=[name for name, _ in CASES])
def test_a_lens_query_answers_in_a_fresh_process(answers, name, args):
    done = answers[name].result()
    command = " ".join(["c360", *args])
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stderr}"
    assert_no_trace(done.stderr)
    rows = json.loads(done.stdout)
    assert isinstance(rows, list), command
    columns = expected_columns(args)
    # the warehouse has orders, invoices and rejections: every query answers with rows
    assert rows, f"{command}: no rows"
    assert all(list(row) == columns for row in rows), f"{command}: keys {rows[:1]} != {columns}"


def test_lens_sql_prints_the_query_in_a_fresh_process(warehouse):
    done = c360("lens", "sql", "--model", PROJECT, "--query", "lens/queries/order_outcomes.yml", warehouse=warehouse)
    assert done.returncode == 0, done.stderr
    assert_no_trace(done.stderr)
    assert done.stdout.lstrip().startswith("WITH ") and "`lens_silver_activity_stream`" in done.stdout
    as_of = dt.date.fromisoformat(RUN_DATE) + dt.timedelta(days=1)
    assert f"CAST('{as_of} 00:00:00' AS TIMESTAMP)" in done.stdout   # as of the end of the run date


def test_a_query_spark_rejects_is_one_paragraph_and_exit_2(answers):
    done = answers[BROKEN].result()
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert_no_trace(done.stderr)
    message = done.stderr.strip()
    assert message.startswith("c360 lens: error:") and "feature66" in message and "\n" not in message


# ---------------------------------------------------------------------------------------------
# The same read commands through `c360 serve` (Spark Connect): the answers a fresh process gives
# starting Spark itself, and a server that is not there said in one paragraph.
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(warehouse) -> str:
    """`c360 serve` on the warehouse; its URL. Stopped by SIGTERM at the end, which it must obey."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in INHERITED}
    proc = subprocess.Popen([str(C360), "serve", "--port", str(port), "--warehouse", str(warehouse), "--run-date", RUN_DATE],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = proc.stdout.readline()
    if f"Spark Connect at sc://localhost:{port}" not in ready:
        proc.kill()
        pytest.fail(f"c360 serve did not start: {ready}{proc.stderr.read()}")
    yield f"sc://localhost:{port}"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, out.strip()) == (0, "c360 serve: stopped"), (proc.returncode, out, err)
    assert_no_trace(err)


def test_lens_queries_through_c360_serve_answer_as_starting_spark(answers, warehouse, server):
    for name, args in CASES:
        local = answers[name].result()
        remote = c360(*args, "--remote", server, warehouse=warehouse)
        assert remote.returncode == 0, f"{name} through {server}: {remote.stderr}"
        assert_no_trace(remote.stderr)
        assert json.loads(remote.stdout) == json.loads(local.stdout), name


def test_identity_explain_and_segments_preview_through_c360_serve(warehouse, server):
    from deltalake import DeltaTable

    from jobs.core.config import load_config

    rows = DeltaTable(str(warehouse / "gold" / "identity_map")).to_pyarrow_table().to_pylist()
    by_customer: dict[str, list[str]] = {}
    for row in sorted(rows, key=lambda r: (r["customer_id"], r["identifier_type"], r["identifier_value"])):
        by_customer.setdefault(row["customer_id"], []).append(f"{row['identifier_type']}:{row['identifier_value']}")
    linked = next(ids for ids in by_customer.values() if len(ids) >= 2)
    segment = load_config(REPO / "conf" / "local.yml").segments.definitions[0].name
    for args in (["identity", "explain", *linked[:2]], ["segments", "preview", segment]):
        local = c360(*args, warehouse=warehouse)
        remote = c360(*args, "--remote", server, warehouse=warehouse)
        assert local.returncode == remote.returncode == 0, (local.stderr, remote.stderr)
        assert_no_trace(remote.stderr)
        assert remote.stdout == local.stdout and local.stdout.strip(), args


def test_a_server_that_is_not_there_is_one_paragraph_and_exit_2(warehouse):
    url = f"sc://localhost:{free_port()}"
    done = c360("lens", "query", "--model", PROJECT, "--measure", "order_placed.frequency", "--remote", url,
                warehouse=warehouse)
    assert done.returncode == 2, done.stderr
    assert_no_trace(done.stderr)
    message = done.stderr.strip()
    assert message.startswith(f"c360 lens: error: no Spark Connect server answers at {url}") and "c360 serve" in message
    assert "\n" not in message


def test_a_reader_that_leaves_early_ends_the_command_quietly(warehouse, server):
    """`c360 lens query ... | head`: the reader closes the pipe before c360 writes; c360 stops at once
    with the status a shell gives a writer whose reader left (141), and says nothing."""
    query = shlex.join([str(C360), "lens", "query", "--model", PROJECT, "--query", "lens/queries/rfm.yml",
                        "--remote", server, "--warehouse", str(warehouse), "--run-date", RUN_DATE])
    env = {k: v for k, v in os.environ.items() if k not in INHERITED}
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {query} | true"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert (done.returncode, done.stderr) == (141, "")
