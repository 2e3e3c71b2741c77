"""What a night's ingest reads: the files under `--input`, less those an earlier night landed.

The input folder is listed through Hadoop (jobs.core.storage), so it may be a plain path, a `file:`
URI or any URI a Hadoop FileSystem serves (`hdfs://`, `s3a://`, `abfss://`): only the listing
(names, sizes, times) and, for files not seen before, a checksum computed as the bytes stream
through the driver's JVM reach the driver.

Every file a night lands is recorded in the Delta table `<warehouse>/_control/input_files` (the
manifest: path, kind, size, modification time, SHA-256 of its bytes, run date). A later night skips
a listed file that an earlier run date landed:
- the same file: same path, size and modification time (decided from the listing alone);
- the same content re-delivered: another name, or the same name touched, with the bytes of a landed
  file (its SHA-256).
and its summary names what it skipped. A file landed by the same run date is read again when that
date is run again (a re-run after a crash re-reads its night; replays are then counted as duplicates
and change no table). A file whose content changed is read: its messages that bronze already holds
are duplicates, the rest are new.

The late window (`ingest.late_window_days`): once an earlier run date has landed files, an event
whose timestamp is more than that many days before the run date is quarantined as `too_late`
instead of rewriting old history; the first night, a backfill, lands any age.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, LongType, StringType, StructField, StructType, TimestampType
from py4j.protocol import Py4JJavaError

from jobs.core import storage
from jobs.core.errors import InputError
from jobs.core.session import literal_rows
from jobs.core.storage import FileEntry
from jobs.core.tables import Warehouse

INPUT_FILES_TABLE = "_control/input_files"
INPUT_FILES_SCHEMA = StructType([
    StructField("path", StringType()), StructField("kind", StringType()), StructField("size", LongType()),
    StructField("modified_at", TimestampType()), StructField("content_sha256", StringType()),
    StructField("run_date", DateType()),
])
EVENT_SUFFIXES = (".jsonl", ".jsonl.gz")
CUSTOMER_SUFFIXES = (".csv",)
GZIP_MAGIC = b"\x1f\x8b"
KIND_EVENTS, KIND_CUSTOMERS = "events", "customers"
# Why a listed file is not read again.
SAME_FILE = "same file"          # same path, size and modification time
SAME_CONTENT = "same content"    # other name or time, same bytes
# Skipped files the summary names one by one; beyond these it gives the count.
NAMED_SKIPS = 3


@dataclass(frozen=True)
class InputFiles:
    """The input folder's listing: the event and customer files under it (fully qualified paths)."""

    root: str                         # the folder, fully qualified
    event_files: list[FileEntry]
    customer_files: list[FileEntry]

    @property
    def files(self) -> list[FileEntry]:
        return self.event_files + self.customer_files

    def relative(self, entry: FileEntry) -> str:
        """The file's path below the input folder (events/day1/a.jsonl)."""
        return entry.path[len(self.root):].lstrip("/") if entry.path.startswith(self.root) else entry.path


def discover_inputs(spark: SparkSession, location: str | Path, events_glob: str = "events",
                    customers_glob: str = "customers") -> InputFiles:
    """List `location`/<events_glob>/**/*.jsonl(.gz) and `location`/<customers_glob>/**/*.csv."""
    location = os.fspath(location)
    kind = storage.folder_kind(spark, location)
    if kind is None:
        raise InputError(f"input folder {location} does not exist")
    if kind != "folder":
        raise InputError(f"input {location} is not a folder (expected {events_glob}/ and {customers_glob}/ inside it)")
    events = [f for f in storage.list_files(spark, storage.join(location, events_glob)) if f.path.endswith(EVENT_SUFFIXES)]
    customers = [f for f in storage.list_files(spark, storage.join(location, customers_glob))
                 if f.path.endswith(CUSTOMER_SUFFIXES)]
    if not events and not customers:
        raise InputError(
            f"input folder {location} has no *.jsonl / *.jsonl.gz under {events_glob}/ and no *.csv under {customers_glob}/"
        )
    return InputFiles(storage.qualified(spark, location), events, customers)


# ----------------------------------------------------------------------------------------------
# Which files a night reads (pure)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LandedFile:
    """A manifest row: a file some run date landed."""

    path: str
    size: int
    modified_ms: int
    content_sha256: str
    run_date: dt.date


@dataclass(frozen=True)
class Skipped:
    file: FileEntry
    landed: LandedFile
    why: str          # SAME_FILE or SAME_CONTENT


def landed_before(file: FileEntry, landed: list[LandedFile], run_date: dt.date,
                  sha256: str | None = None) -> Skipped | None:
    """Why `file` need not be read on `run_date`: an earlier run date landed the same file, or (given
    its checksum) the same bytes; the earliest such landing. None: read it."""
    earlier = sorted((r for r in landed if r.run_date < run_date), key=lambda r: (r.run_date, r.path))
    for row in earlier:
        if (row.path, row.size, row.modified_ms) == (file.path, file.size, file.modified_ms):
            return Skipped(file, row, SAME_FILE)
    if sha256 is not None:
        for row in earlier:
            if row.content_sha256 == sha256:
                return Skipped(file, row, SAME_CONTENT)
    return None


def late_window_start(run_date: dt.date, late_window_days: int | None, has_history: bool) -> dt.date | None:
    """The first day an event may be in: None (any day) without a window or on the first night."""
    if late_window_days is None or not has_history:
        return None
    return run_date - dt.timedelta(days=late_window_days)


def skipped_note(skipped: list[Skipped]) -> str | None:
    """The summary's note on the files not read, naming the first few."""
    if not skipped:
        return None
    def named(skip: Skipped) -> str:
        name, landed_name = Path(skip.file.path).name, Path(skip.landed.path).name
        if skip.why == SAME_CONTENT:
            same = SAME_CONTENT if skip.file.path == skip.landed.path else f"{SAME_CONTENT} as {landed_name}"
            return f"{name} ({same}, landed {skip.landed.run_date})"
        return f"{name} (landed {skip.landed.run_date})"

    names = [named(s) for s in skipped[:NAMED_SKIPS]]
    more = f" and {len(skipped) - NAMED_SKIPS} more" if len(skipped) > NAMED_SKIPS else ""
    return f"skipped {len(skipped)} input file(s) an earlier night landed: {', '.join(names)}{more}"


# ----------------------------------------------------------------------------------------------
# The manifest (I/O)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NightInput:
    """The files a night reads, their checksums, what it skips, and whether an earlier run date
    has landed input (the late window applies from then on)."""

    event_files: list[FileEntry]
    customer_files: list[FileEntry]
    sha256: dict[str, str] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    has_history: bool = False


def _manifest(spark: SparkSession, wh: Warehouse) -> DataFrame | None:
    """The manifest table; None before the first file is recorded."""
    return wh.read(spark, INPUT_FILES_TABLE) if wh.exists(spark, INPUT_FILES_TABLE) else None


def _landed_where(manifest: DataFrame | None, condition) -> list[LandedFile]:
    """Manifest rows matching `condition`: rows of the night's own files (by path or checksum),
    as many as the listing has, not the manifest's history."""
    if manifest is None:
        return []
    rows = manifest.where(condition).collect()
    return [LandedFile(r["path"], r["size"], _epoch_ms(r["modified_at"]), r["content_sha256"], r["run_date"])
            for r in rows]


def _epoch_ms(moment: dt.datetime) -> int:
    # the session's time zone is UTC, so a stored timestamp comes back naive in UTC
    return round(moment.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)


def _checked_sha256(spark: SparkSession, file: FileEntry) -> str:
    try:
        if file.path.endswith(".gz") and file.size and storage.head_bytes(spark, file.path, 2) != GZIP_MAGIC:
            raise InputError(f"input file {file.path} is named .gz but is not gzip-compressed")
        return storage.content_sha256(spark, file.path)
    except Py4JJavaError as exc:
        reason = exc.java_exception.getMessage() or exc.java_exception.getClass().getSimpleName()
        raise InputError(f"input file {file.path} cannot be read: {reason}") from None


def select_new_files(spark: SparkSession, wh: Warehouse, inputs: InputFiles, run_date: dt.date) -> NightInput:
    """The listed files this night reads (see the module docstring), in listing order."""
    listed = inputs.files
    manifest = _manifest(spark, wh)
    by_path = _landed_where(manifest, F.col("path").isin([f.path for f in listed]))
    skipped, candidates = [], []
    for file in listed:
        same = landed_before(file, by_path, run_date)
        (skipped if same else candidates).append(same or file)
    sha256 = {f.path: _checked_sha256(spark, f) for f in candidates}
    by_content = _landed_where(manifest, F.col("content_sha256").isin(sorted(set(sha256.values())))) if sha256 else []
    to_read = set()
    for file in candidates:
        same = landed_before(file, by_content, run_date, sha256[file.path])
        if same:
            skipped.append(same)
        else:
            to_read.add(file.path)
    return NightInput(
        event_files=[f for f in inputs.event_files if f.path in to_read],
        customer_files=[f for f in inputs.customer_files if f.path in to_read],
        sha256={p: h for p, h in sha256.items() if p in to_read},
        skipped=sorted(skipped, key=lambda s: s.file.path),
        # has a run date before this one landed input files?
        has_history=manifest is not None and bool(manifest.where(F.col("run_date") < F.lit(run_date)).limit(1).count()),
    )


def record_landed(spark: SparkSession, wh: Warehouse, night: NightInput, run_date: dt.date) -> None:
    """Append the night's files to the manifest, after their rows have landed (a night killed in
    between reads them again: replays are kept once). A file this date recorded already (a re-run)
    is not recorded twice."""
    files = [(KIND_EVENTS, f) for f in night.event_files] + [(KIND_CUSTOMERS, f) for f in night.customer_files]
    if not files:
        return
    recorded = {(r.path, r.size, r.modified_ms, r.content_sha256)
                for r in _landed_where(_manifest(spark, wh), (F.col("run_date") == F.lit(run_date))
                                       & F.col("path").isin([f.path for _, f in files]))}
    rows = [
        (f.path, kind, f.size, dt.datetime.fromtimestamp(f.modified_ms / 1000, dt.timezone.utc).replace(tzinfo=None),
         night.sha256[f.path], run_date)
        for kind, f in files
        if (f.path, f.size, f.modified_ms, night.sha256[f.path]) not in recorded
    ]
    if rows:
        literal_rows(spark, INPUT_FILES_SCHEMA, rows).write.format("delta").mode("append").save(wh.path(INPUT_FILES_TABLE))
