"""Config is validated at load: errors name the file and the dotted key."""
from pathlib import Path

import pytest

from jobs.config import REPO_ROOT, load_config
from jobs.errors import ConfigError


@pytest.mark.parametrize("name", ["local.yml", "cluster.yml"])
def test_shipped_configs_load(name):
    cfg = load_config(REPO_ROOT / "conf" / name)
    assert cfg.source.endswith(name)


def test_local_defaults():
    cfg = load_config()
    assert (cfg.spark.master, cfg.spark.shuffle_partitions, cfg.warehouse) == ("local[*]", 4, "warehouse")


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
    assert cfg.warehouse_path() == tmp_path / "b"
