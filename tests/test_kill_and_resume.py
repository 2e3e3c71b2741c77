"""Crash safety: `c360 nightly` killed (SIGKILL, the driver and its JVM) in the middle of each stage in
turn, run again each time, resumes at the stage it was killed in (jobs.core.completions), and the
warehouse it ends with equals an uninterrupted night's, table by table (chispa)."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jobs import pipeline
from jobs.core import lock
from jobs.core.config import REPO_ROOT
from jobs.core.tables import Warehouse
from tests.regression.compare_commits import compare

C360 = str(Path(sys.executable).parent / "c360")
STAGES = [stage.name for stage in pipeline.NIGHTLY]
PROCESS_TIMEOUT_S = 900
POLL_S = 0.02


def newest_commit(warehouse: Path) -> float:
    """The modification time of the warehouse's newest data-table commit (not under _-folders, where
    _control/ and the stages' scratch come and go while the run is walked)."""
    newest = 0.0
    for folder, dirs, files in os.walk(warehouse):  # errors (a folder removed meanwhile) are skipped
        if folder == str(warehouse):
            dirs[:] = [d for d in dirs if not d.startswith("_")]
        if os.path.basename(folder) == "_delta_log":
            for name in files:
                if name.endswith(".json"):
                    with contextlib.suppress(FileNotFoundError):
                        newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime)
    return newest


class Night:
    """One `c360 nightly` process, in its own process group (so a kill takes its JVM too), whose
    progress lines are read as they come."""

    def __init__(self, raw: Path, warehouse: Path, run_date: str):
        self.proc = subprocess.Popen(
            [C360, "nightly", "--input", str(raw), "--warehouse", str(warehouse), "--run-date", run_date],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def started(self, stage: str) -> bool:
        return any(line.endswith(f"] {stage} ...") for line in self.lines)

    def finished(self, stage: str) -> bool:
        return any(line.strip().startswith(f"{stage}:") for line in self.lines)

    def kill_inside(self, stage: str, warehouse: Path) -> str:
        """SIGKILL the run at its first commit inside `stage` (or as the stage ends, if it commits
        nothing the poll sees); returns where the kill landed."""
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while not self.started(stage):
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
            time.sleep(POLL_S)
        before = newest_commit(warehouse)
        while newest_commit(warehouse) <= before and not self.finished(stage):
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
            time.sleep(POLL_S)
        where = "as it ended" if self.finished(stage) else "after a commit"
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        return where

    def output(self) -> str:
        return "\n".join(self.lines) + "\n" + (self.proc.stderr.read() if self.proc.poll() is not None else "")

    def finish(self) -> None:
        self.proc.wait(timeout=PROCESS_TIMEOUT_S)
        self.reader.join(timeout=60)
        assert self.proc.returncode == 0, self.output()


def skipped_stages(lines: list[str]) -> list[str]:
    return [line.split("] ", 1)[1].split(":", 1)[0] for line in lines if line.endswith(", skipped")]


@pytest.mark.slow
def test_a_night_killed_in_each_stage_in_turn_resumes_and_ends_as_an_uninterrupted_one(spark, two_nights, tmp_path):
    # the first night uninterrupted (the session's two_nights); the second, the incremental one,
    # killed in a copy of it, against the session's uninterrupted second night
    killed = tmp_path / "killed"
    shutil.copytree(two_nights.after_first, killed)
    second, run_date = two_nights.second_input, two_nights.second_date

    landed, resume_at = {}, 0
    for index, stage in enumerate(STAGES):
        night = Night(second, killed, run_date)
        landed[stage] = night.kill_inside(stage, killed)
        # stages finished by earlier runs are skipped; the run starts again at the one killed last
        assert skipped_stages(night.lines) == STAGES[:resume_at], night.output()
        assert night.started(STAGES[resume_at]), night.output()
        resume_at = index + 1 if landed[stage] == "as it ended" else index
        # a killed run leaves its lease; the user clears it (`c360 unlock --force`, tests/jobs/test_cli.py)
        assert [h.command for h in lock.force_unlock(spark, Warehouse(killed))] == ["nightly"]

    last = Night(second, killed, run_date)
    last.finish()
    assert skipped_stages(last.lines) == STAGES[:resume_at], last.output()
    assert f"c360 nightly {run_date} finished" in last.output()

    # the copy's first-night rows name the first night's warehouse (gold/segment_runs.export_file)
    problems = compare(spark, two_nights.after_both, killed, (two_nights.roots, (str(killed), str(two_nights.after_first))))
    assert problems == [], f"killed {landed}:\n" + "\n".join(problems)
