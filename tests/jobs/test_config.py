"""Config is validated at load: errors name the file and the dotted key. Defaults are written once,
in the dataclasses: the shipped files set only what differs. Loading a config needs no Spark."""
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jobs.core.config import CONNECT_DEFAULT_PORT, REPO_ROOT, Config, connect_address, load_config
from jobs.core.errors import ConfigError

@pytest.mark.parametrize("name", ["local.yml", "cluster.yml"])
def test_shipped_configs_load(name):
    cfg = load_config(REPO_ROOT / "conf" / name)
    assert cfg.source.endswith(name)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, message",
    [
        ("spark:\n  mastr: local[2]\n", r"c\.yml: unknown key 'spark\.mastr' \(did you mean 'spark\.master'\?\)"),
        ("sparkk: {}\n", r"unknown key 'sparkk' \(did you mean 'spark'\?\)"),
        ("spark:\n  shuffle_partitions: many\n", r"'spark\.shuffle_partitions' must be a whole number, got 'many'"),
        ("spark:\n  shuffle_partitions: 0\n", r"'spark\.shuffle_partitions' must be at least 1"),
        ("spark:\n  concurrent_jobs: 0\n", r"'spark\.concurrent_jobs' must be at least 1"),
        ("spark:\n  concurrent_jobs: two\n", r"'spark\.concurrent_jobs' must be a whole number, got 'two'"),
        ("ingest:\n  memory_cache_max_mb: -1\n", r"'ingest\.memory_cache_max_mb' must be 0 or more"),
        ("ingest:\n  late_window_days: -1\n", r"'ingest\.late_window_days' must be 0 or more days, or null"),
        ("spark:\n  remote: localhost:15002\n", r"'spark\.remote' must be a Spark Connect URL such as sc://localhost:15002"),
        ("spark:\n  remote: sc://host:port\n", r"'spark\.remote' must be a Spark Connect URL"),
        ("spark: [1, 2]\n", r"'spark' must be a mapping, got list"),
        ("spark:\n  master: [local\n", r"c\.yml: not valid YAML at line 3, column 1: expected"),
        ("- a\n- b\n", r"the top level must be a mapping"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yml does not exist"):
        load_config(tmp_path / "nope.yml")


def test_override_wins(tmp_path):
    cfg = load_config(_write(tmp_path, "warehouse: a\n"), overrides={"warehouse": str(tmp_path / "b")})
    assert cfg.warehouse_location() == str(tmp_path / "b")


@pytest.mark.parametrize("written, location", [
    ("wh", str(REPO_ROOT / "wh")),  # relative paths are taken from the current folder (the repo here)
    ("file:///data/c360", "file:///data/c360"),
    ("s3a://bucket/c360", "s3a://bucket/c360"),
    ("hdfs://namenode:8020/c360", "hdfs://namenode:8020/c360"),
])
def test_warehouse_location_keeps_uris_and_makes_paths_absolute(tmp_path, monkeypatch, written, location):
    monkeypatch.chdir(REPO_ROOT)
    assert load_config(_write(tmp_path, f"warehouse: {written}\n")).warehouse_location() == location


def repeated_defaults(data: dict, loaded, default, key: str = "") -> list[str]:
    """Dotted keys of `data` (a config file's YAML) that set their default value. Sections are
    compared key by key; any other value (a list, a mapping such as spark.conf) as a whole."""
    found = []
    for name, value in data.items():
        dotted = f"{key}.{name}" if key else name
        got, expected = getattr(loaded, name), getattr(default, name)
        if dataclasses.is_dataclass(got) and isinstance(value, dict):
            found += repeated_defaults(value, got, expected, dotted)
        elif got == expected:
            found.append(dotted)
    return found


@pytest.mark.parametrize("name", ["local.yml", "cluster.yml"])
def test_shipped_configs_set_no_key_to_its_default(name):
    file = REPO_ROOT / "conf" / name
    assert repeated_defaults(yaml.safe_load(file.read_text()), load_config(file), Config()) == []


def test_repeated_defaults_finds_a_default_written_again(tmp_path):
    text = ("warehouse: warehouse\nspark: {master: 'local[*]', shuffle_partitions: 8}\n"
            "identity: {max_rounds: 200, limits: {user_id: 1}, priority: [user_id, email, phone, anonymous_id]}\n"
            "activities: {page_activity: viewed_page}\n")
    path = _write(tmp_path, text)
    found = repeated_defaults(yaml.safe_load(text), load_config(path), Config())
    assert found == ["warehouse", "spark.master", "identity.max_rounds", "identity.limits", "identity.priority",
                     "activities.page_activity"]


def test_loading_a_config_imports_no_spark_numpy_or_pyarrow():
    code = ("import sys, jobs.core.config as c; c.load_config(); "
            "assert not any(m.startswith(('pyspark','numpy','pyarrow')) for m in sys.modules), "
            "sorted({m.split('.')[0] for m in sys.modules if m.startswith(('pyspark','numpy','pyarrow'))})")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_spark_connect_url_gives_host_and_port():
    assert connect_address("sc://localhost:15123") == ("localhost", 15123)
    assert connect_address("sc://spark.example.com/;user_id=me") == ("spark.example.com", CONNECT_DEFAULT_PORT)
    assert load_config(REPO_ROOT / "conf" / "local.yml", overrides={}).spark.remote is None
