"""jobs.core.completions: what identifies a night, and the record of its finished stages."""
from __future__ import annotations

import dataclasses
import datetime as dt
import os

from jobs.core import completions
from jobs.core.config import Config, SparkSettings
from jobs.core.tables import Warehouse

RUN_DATE = dt.date(2026, 3, 2)


def night_files(tmp_path):
    folder = tmp_path / "in"
    (folder / "events").mkdir(parents=True)
    a, b = folder / "events" / "a.jsonl", folder / "events" / "b.jsonl"
    a.write_text("{}\n")
    b.write_text("{}\n")
    return folder, [a, b]


def test_a_night_is_its_input_files_and_the_settings_that_shape_tables(tmp_path):
    folder, files = night_files(tmp_path)
    config = Config()
    night = completions.night_of(config, files, folder)
    assert len(night) == 16 and night == completions.night_of(config, list(files), folder)
    # where and how fast it runs is not part of it
    elsewhere = dataclasses.replace(config, spark=SparkSettings(master="spark://x:7077"), warehouse="/else",
                                    source="other.yml")
    assert completions.night_of(elsewhere, files, folder) == night

    extra = folder / "events" / "c.jsonl"
    extra.write_text("{}\n")
    different = {
        "a file more": completions.night_of(config, [*files, extra], folder),
        "a file fewer": completions.night_of(config, files[:1], folder),
        "a setting": completions.night_of(
            dataclasses.replace(config, ingest=dataclasses.replace(config.ingest, events_glob="ev")), files, folder),
    }
    files[1].write_text("{}\n{}\n")
    different["a file grown"] = completions.night_of(config, files, folder)
    os.utime(files[0], ns=(0, 0))
    different["a file touched"] = completions.night_of(config, files, folder)
    assert {why: value == night for why, value in different.items()} == {why: False for why in different}
    assert len(set(different.values())) == len(different)


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
