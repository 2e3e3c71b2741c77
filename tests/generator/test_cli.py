"""generator.cli: byte-identical output with any number of workers, gzip, the c360 generate command."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from generator.cli import generate
from jobs import cli
from tests.generator.readers import event_files, read_lines, small_params, tree_bytes

REPO = Path(__file__).resolve().parents[2]


def test_same_arguments_give_identical_bytes_with_any_number_of_workers(dataset, tmp_path):
    out, _ = dataset
    again = tmp_path / "again"
    generate(small_params(again, workers=2))
    first, second = tree_bytes(out), tree_bytes(again)
    assert sorted(first) == sorted(second)
    assert all(first[name] == second[name] for name in first)
    assert len([n for n in first if n.startswith("events/")]) == 3   # 240 profiles / 80 per chunk


def test_a_different_seed_gives_different_events(dataset, tmp_path):
    out, _ = dataset
    other = tmp_path / "other"
    generate(small_params(other, seed=6))
    assert read_lines(event_files(out)[0]) != read_lines(event_files(other)[0])


def test_gzip_output_decompresses_to_the_plain_output(dataset, tmp_path):
    out, _ = dataset
    packed = tmp_path / "packed"
    manifest = generate(small_params(packed, gzip=True, workers=2))
    names = [p.name for p in event_files(packed)]
    assert names == ["part-00000.jsonl.gz", "part-00001.jsonl.gz", "part-00002.jsonl.gz"]
    for plain, compressed in zip(event_files(out), event_files(packed)):
        assert read_lines(compressed) == read_lines(plain)
    assert manifest["gzip"] is True


def test_the_command_module_provides_the_stage_interface():
    import generator.cli as command

    assert command.HELP and command.NEEDS_SPARK is False
    assert callable(command.add_arguments) and callable(command.run)


def test_worker_processes_do_not_import_pyspark():
    """A spawned worker imports generator.cli (its target's module) in a fresh interpreter."""
    code = ("import sys, generator.cli; "
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'pyspark'); "
            "print(loaded); sys.exit(1 if loaded else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def run_cli(out: Path, *extra: str) -> int:
    return cli.main(["generate", "--out", str(out), "--profiles", "60", "--days", "5", "--run-date", "2026-01-31",
                     "--workers", "1", *extra])


def test_cli_refuses_a_non_empty_folder_unless_forced(tmp_path, capsys):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert run_cli(out) == 2
    assert "--force" in capsys.readouterr().err
    assert not (out / "events").exists()

    assert run_cli(out, "--force", "--chunk-size", "20") == 0
    assert len(list((out / "events").iterdir())) == 3
    assert run_cli(out) == 2
    assert run_cli(out, "--force") == 0                   # earlier parts are wiped, other files kept
    assert [p.name for p in (out / "events").iterdir()] == ["part-00000.jsonl"]
    assert (out / "notes.txt").read_text() == "keep me"
    manifest = json.loads((out / "_manifest.json").read_text())
    assert (manifest["profiles"], manifest["days"], manifest["run_date"]) == (60, 5, "2026-01-31")


def test_cli_rejects_bad_options_with_exit_2(tmp_path, capsys):
    assert run_cli(tmp_path / "a", "--rate", "nonsense=1") == 2
    assert "nonsense" in capsys.readouterr().err
    assert run_cli(tmp_path / "b", "--rate", "replay=2") == 2
    assert run_cli(tmp_path / "c", "--profiles", "0") == 2
    assert run_cli(tmp_path / "d", "--rate", "malformed=0", "--rate", "late=0") == 0
    manifest = json.loads((tmp_path / "d" / "_manifest.json").read_text())
    assert manifest["events"]["malformed_lines"] == 0 and manifest["events"]["late_lines"] == 0
