"""Where the warehouse lives: on the driver's own disk, or on storage only Hadoop reaches.

A warehouse is a plain path (`warehouse`, `/data/c360`), a `file:` URI (`file:///data/c360`), or
any URI a Hadoop FileSystem serves (`hdfs://nn/c360`, `s3a://bucket/c360`, `abfss://...`). Tables,
exports and checkpoints are written by Spark and Hadoop, so they work on all of them. The files the
driver itself writes (the run report) go through Hadoop's FileSystem API too, unless the warehouse
is a plain path. The raw input (`--input`) is listed, and its files' headers and checksums read,
through Hadoop as well, so it may live on any of them. Spark's log file is written by the driver's log4j, so it needs a local
folder: `<warehouse>/_logs` for a local warehouse, else `_logs/` in the current folder
(README: running on a cluster).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:  # config reads locations before any Spark is imported
    from pyspark.sql import SparkSession

# "scheme:" at the start, as in file:/x, file:///x, hdfs://nn/x (a Windows drive letter is one letter)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
LOCAL_SCHEME = "file"
LOGS_FOLDER = "_logs"


def scheme(location: str) -> str | None:
    """The URI scheme of `location` ('file', 's3a', ...), None for a plain path."""
    found = _SCHEME.match(location)
    return found.group(0)[:-1].lower() if found else None


def local_dir(location: str) -> Path | None:
    """`location` as a folder on the driver's disk (a plain path or a file: URI), else None."""
    kind = scheme(location)
    if kind is None:
        return Path(location)
    if kind == LOCAL_SCHEME:
        return Path(unquote(urlparse(location).path))
    return None


def normalized(location: str) -> str:
    """`location` as Hadoop writes it back: a file: URI without the empty authority (`file:///x` is
    `file:/x`), since Delta refuses to create a table whose two spellings of one folder differ;
    anything else as given, less a trailing slash."""
    if scheme(location) == LOCAL_SCHEME:
        return f"{LOCAL_SCHEME}:{local_dir(location).as_posix()}"
    return location.rstrip("/") or "/"


def join(location: str, *parts: str) -> str:
    """`location`/part/..., keeping a URI a URI (pathlib would fold `s3a://b` into `s3a:/b`)."""
    return "/".join([location.rstrip("/") or "/", *[p.strip("/") for p in parts]])


def write_text(spark: SparkSession, location: str, text: str) -> None:
    """Write `text` (UTF-8) to the file at `location`, replacing it: a plain path with Python, a
    URI (file: included) through its Hadoop FileSystem, which makes the folders it needs."""
    if scheme(location) is None:
        file = Path(location)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
        return
    path, fs = _hadoop(spark, location)
    out = fs.create(path, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()
    # the local file system keeps a .crc beside each file it writes; readers want only the file
    fs.delete(spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path.getParent(), f".{path.getName()}.crc"), False)


def logs_dir(warehouse: str) -> Path:
    """The driver-local folder for Spark's log file: <warehouse>/_logs for a warehouse on the
    driver's disk, else _logs/ in the current folder (log4j writes only local files)."""
    folder = local_dir(warehouse)
    return (folder if folder is not None else Path(".")) / LOGS_FOLDER


def _hadoop(spark: SparkSession, location: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(location)
    return path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


@dataclass(frozen=True)
class FileEntry:
    """A file as its Hadoop FileSystem lists it."""

    path: str          # fully qualified (file:/x/y.jsonl, s3a://b/x/y.jsonl), as Spark's readers name it
    size: int          # bytes
    modified_ms: int   # modification time, milliseconds since the epoch


def hidden(name: str) -> bool:
    """A name Spark's file readers skip inside a folder they list (_SUCCESS, .crc files, _temporary)."""
    return name.startswith(("_", "."))


def folder_kind(spark: SparkSession, location: str) -> str | None:
    """'folder', 'file', or None when nothing is at `location` (any path or URI, through Hadoop)."""
    path, fs = _hadoop(spark, location)
    if not fs.exists(path):
        return None
    return "folder" if fs.getFileStatus(path).isDirectory() else "file"


def qualified(spark: SparkSession, location: str) -> str:
    """`location` fully qualified by its Hadoop FileSystem (data -> file:/home/me/data)."""
    path, fs = _hadoop(spark, location)
    return fs.makeQualified(path).toString().rstrip("/")


def list_files(spark: SparkSession, location: str) -> list[FileEntry]:
    """Every file below the folder `location` (recursively, through Hadoop: a plain path, file:,
    hdfs:, s3a:, ...), skipping hidden names at any depth as Spark's readers do; sorted by path.
    Names and sizes only: the listing, not the data, comes to the driver."""
    path, fs = _hadoop(spark, location)
    if not fs.exists(path):
        return []
    root = qualified(spark, location)
    found, files = [], fs.listFiles(path, True)
    while files.hasNext():
        status = files.next()
        name = status.getPath().toString()
        below = name[len(root):].strip("/").split("/") if name.startswith(root) else [status.getPath().getName()]
        if not any(hidden(part) for part in below):
            found.append(FileEntry(name, status.getLen(), status.getModificationTime()))
    return sorted(found, key=lambda f: f.path)


def head_bytes(spark: SparkSession, location: str, count: int) -> bytes:
    """The first `count` bytes of a file (fewer if it is shorter)."""
    path, fs = _hadoop(spark, location)
    stream = fs.open(path)
    try:
        return bytes(b for b in (stream.read() for _ in range(count)) if b >= 0)
    finally:
        stream.close()


def first_line(spark: SparkSession, location: str) -> str | None:
    """The first line of a UTF-8 text file (a byte-order mark dropped), None for an empty file."""
    path, fs = _hadoop(spark, location)
    jvm = spark.sparkContext._jvm
    stream = fs.open(path)
    try:
        line = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8")).readLine()
    finally:
        stream.close()
    return None if line is None else line.lstrip("\ufeff")


def content_sha256(spark: SparkSession, location: str) -> str:
    """SHA-256 of a file's bytes, computed in the driver's JVM as the file streams through it (one
    call; the bytes never cross into Python)."""
    path, fs = _hadoop(spark, location)
    stream = fs.open(path)
    try:
        return spark.sparkContext._jvm.org.apache.commons.codec.digest.DigestUtils.sha256Hex(stream)
    finally:
        stream.close()


def read_text(spark: SparkSession, location: str) -> str | None:
    """The text (UTF-8) of the file at `location`, None when there is none (as write_text reaches it)."""
    if scheme(location) is None:
        file = Path(location)
        return file.read_text() if file.is_file() else None
    path, fs = _hadoop(spark, location)
    if not fs.isFile(path):
        return None
    stream = fs.open(path)
    try:
        reader = spark.sparkContext._jvm.java.io.InputStreamReader(stream, "UTF-8")
        return spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toString(reader)
    finally:
        stream.close()


def folder_names(spark: SparkSession, location: str) -> list[str]:
    """Names of the folders directly inside `location`, sorted; none when it does not exist."""
    if scheme(location) is None:
        folder = Path(location)
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    path, fs = _hadoop(spark, location)
    if not fs.exists(path):
        return []
    return sorted(status.getPath().getName() for status in fs.listStatus(path) if status.isDirectory())
