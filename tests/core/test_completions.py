"""jobs.core.completions: what identifies a night, and the record of its finished stages."""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil

from jobs.core import completions
from jobs.core.config import Config, SparkSettings
from jobs.core.tables import Warehouse
from jobs.ingest.inputs import discover_inputs

RUN_DATE = dt.date(2026, 3, 2)


def night_files(tmp_path):
    folder = tmp_path / "in"
    (folder / "events").mkdir(parents=True)
    a, b = folder / "events" / "a.jsonl", folder / "events" / "b.jsonl"
    a.write_text("{}\n")
    b.write_text("{}\n")
    return folder, [a, b]


def test_a_night_is_its_input_files_and_the_settings_that_shape_tables(spark, tmp_path):
    folder, files = night_files(tmp_path)
    config = Config()

    def night(cfg=config, where=folder):
        return completions.night_of(cfg, discover_inputs(spark, where))

    first = night()
    assert len(first) == 16 and first == night()
    # where and how fast it runs is not part of it, nor where the input folder is
    elsewhere = dataclasses.replace(config, spark=SparkSettings(master="spark://x:7077"), warehouse="/else",
                                    source="other.yml")
    assert night(elsewhere) == first
    moved = tmp_path / "moved"
    shutil.copytree(folder, moved)
    for name in ("a.jsonl", "b.jsonl"):
        shutil.copystat(folder / "events" / name, moved / "events" / name)
    assert night(where=moved) == first
    assert night(where=f"file://{folder}") == first

    extra = folder / "events" / "c.jsonl"
    extra.write_text("{}\n")
    different = {
        "a file more": night(),
        "a setting": night(dataclasses.replace(config, ingest=dataclasses.replace(config.ingest, late_window_days=3))),
    }
    extra.unlink()
    files[1].write_text("{}\n{}\n")
    different["a file grown"] = night()
    os.utime(files[0], ns=(0, 0))
    different["a file touched"] = night()
    files[1].unlink()
    different["a file fewer"] = night()
    assert {why: value == first for why, value in different.items()} == {why: False for why in different}
    assert len(set(different.values())) == len(different)
    assert completions.night_of(config, None) not in different.values()


def test_finished_stages_are_those_recorded_for_the_date_and_night(spark, tmp_path):
    wh = Warehouse(tmp_path / "wh")
    assert completions.finished(spark, wh, RUN_DATE, "n1") == {}
    ingest = {"metrics": {"accepted": 3}, "notes": [], "seconds": 1.5}
    completions.record(spark, wh, RUN_DATE, "n1", "ingest", ingest)
    completions.record(spark, wh, RUN_DATE, "n1", "stitch", {"metrics": {}, "notes": ["x"], "seconds": 2.0})
    completions.record(spark, wh, RUN_DATE, "n2", "ingest", ingest)                          # another night
    completions.record(spark, wh, RUN_DATE + dt.timedelta(days=1), "n1", "rfm", ingest)   # another date

    found = completions.finished(spark, wh, RUN_DATE, "n1")
    assert list(found) == ["ingest", "stitch"]
    assert {k: v for k, v in found["ingest"].items() if k != "finished_at"} == ingest
    finished_at = dt.datetime.strptime(found["ingest"]["finished_at"], "%Y-%m-%d %H:%M:%S")
    assert abs(finished_at - dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)) < dt.timedelta(minutes=5)
    assert list(completions.finished(spark, wh, RUN_DATE, "n2")) == ["ingest"]
