"""jobs.core.storage: warehouse locations as plain paths or URIs, and the driver's own writes."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from jobs.core import storage
from jobs.core.tables import Warehouse


@pytest.mark.parametrize("location, kind, local", [
    ("warehouse", None, Path("warehouse")),
    ("/data/c360", None, Path("/data/c360")),
    ("file:///data/c360", "file", Path("/data/c360")),
    ("file:/data/my%20c360", "file", Path("/data/my c360")),
    ("hdfs://namenode:8020/c360", "hdfs", None),
    ("s3a://bucket/c360", "s3a", None),
    ("abfss://box@account.dfs.core.windows.net/c360", "abfss", None),
])
def test_scheme_and_local_dir(location, kind, local):
    assert (storage.scheme(location), storage.local_dir(location)) == (kind, local)


@pytest.mark.parametrize("root, table, path", [
    ("s3a://bucket/c360", "gold/identity_map", "s3a://bucket/c360/gold/identity_map"),
    ("s3a://bucket/c360/", "gold/identity_map", "s3a://bucket/c360/gold/identity_map"),
    ("file:///data/c360", "_runs/2026-02-01/report.json", "file:/data/c360/_runs/2026-02-01/report.json"),
    ("file:/data/c360/", "gold/rfm", "file:/data/c360/gold/rfm"),
    ("/data/c360", "silver/customers", "/data/c360/silver/customers"),
])
def test_warehouse_paths_keep_the_uri(root, table, path):
    assert Warehouse(root).path(table) == path


def test_logs_stay_on_the_driver():
    assert storage.logs_dir("/data/c360") == Path("/data/c360/_logs")
    assert storage.logs_dir("file:///data/c360") == Path("/data/c360/_logs")
    assert storage.logs_dir("s3a://bucket/c360") == Path("_logs")


@pytest.mark.parametrize("as_uri", [False, True])
def test_write_text_replaces_the_file_and_leaves_no_checksum(spark, tmp_path, as_uri):
    target = tmp_path / "wh" / "_runs" / "2026-02-01" / "report.json"
    location = target.as_uri() if as_uri else str(target)
    storage.write_text(spark, location, "first")
    storage.write_text(spark, location, '{"run_date": "2026-02-01", "名前": "ü"}')
    assert target.read_text(encoding="utf-8") == '{"run_date": "2026-02-01", "名前": "ü"}'
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


@pytest.mark.parametrize("as_uri", [False, True])
def test_read_text_and_folder_names(spark, tmp_path, as_uri):
    root = tmp_path / "wh" / "_runs"
    place = (lambda p: p.as_uri()) if as_uri else str
    assert storage.folder_names(spark, place(root)) == []
    assert storage.read_text(spark, place(root / "2026-02-01" / "report.json")) is None
    for day in ("2026-02-02", "2026-02-01"):
        storage.write_text(spark, place(root / day / "report.json"), f'{{"run_date": "{day}", "名前": "ü"}}')
    (root / "notes.txt").write_text("a file, not a folder")
    assert storage.folder_names(spark, place(root)) == ["2026-02-01", "2026-02-02"]
    assert storage.read_text(spark, place(root / "2026-02-02" / "report.json")) == '{"run_date": "2026-02-02", "名前": "ü"}'


@pytest.mark.parametrize("as_uri", [False, True])
def test_input_files_are_listed_and_read_through_hadoop(spark, tmp_path, as_uri):
    root = tmp_path / "in"
    files = {
        "events/a.jsonl": b'{"x": 1}\n',
        "events/day 2/b.jsonl.gz": b"\x1f\x8b\x08rest",
        "events/_temporary/c.jsonl": b"hidden folder",
        "events/.d.jsonl.crc": b"hidden file",
        "events/_SUCCESS": b"",
        "customers/c.csv": "\ufeffcustomer_id,name\nu1,\u00e9\n".encode(),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    location = f"file://{root}" if as_uri else str(root)

    listed = storage.list_files(spark, storage.join(location, "events"))
    assert [(f.path, f.size) for f in listed] == [
        (f"file:{root}/events/a.jsonl", 9), (f"file:{root}/events/day 2/b.jsonl.gz", 7)]
    assert listed[0].modified_ms == (root / "events/a.jsonl").stat().st_mtime_ns // 1_000_000
    assert storage.list_files(spark, storage.join(location, "nothing")) == []
    assert storage.qualified(spark, location) == f"file:{root}"
    assert (storage.folder_kind(spark, location), storage.folder_kind(spark, listed[0].path),
            storage.folder_kind(spark, storage.join(location, "nothing"))) == ("folder", "file", None)

    assert storage.head_bytes(spark, listed[1].path, 2) == b"\x1f\x8b"
    assert storage.head_bytes(spark, listed[0].path, 100) == b'{"x": 1}\n'
    assert storage.first_line(spark, storage.join(location, "customers/c.csv")) == "customer_id,name"
    for f in listed:
        data = files[f.path.split(f"{root}/", 1)[1]]
        assert storage.content_sha256(spark, f.path) == hashlib.sha256(data).hexdigest()
