"""Every configuration example in the docs loads: a ```yaml block of docs/*.md or README.md whose
top-level keys are config sections is a whole config file a reader may paste (pure Python, no Spark).
Blocks of fragments (an `export:` line, a list) are not config files and are left out."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from jobs.core.config import REPO_ROOT, Config, load_config

YAML_BLOCK = re.compile(r"^( *)```yaml\n(.*?)^\1```", re.S | re.M)
SECTIONS = {f.name for f in dataclasses.fields(Config)}


def config_blocks() -> list[tuple[str, str]]:
    found = []
    for md in [*sorted((REPO_ROOT / "docs").glob("*.md")), REPO_ROOT / "README.md"]:
        for number, match in enumerate(YAML_BLOCK.finditer(md.read_text()), start=1):
            indent = len(match.group(1))
            body = "\n".join(line[indent:] for line in match.group(2).splitlines()) + "\n"
            data = yaml.safe_load(body)
            if isinstance(data, dict) and data and set(data) <= SECTIONS:
                found.append((f"{md.relative_to(REPO_ROOT)} yaml block {number}", body))
    return found


BLOCKS = config_blocks()


def test_the_docs_have_config_examples():
    # traits (2), segments (2, one with its fixed-period trait), activities (1) at least
    assert len(BLOCKS) >= 5, [name for name, _ in BLOCKS]


@pytest.mark.parametrize("name, body", BLOCKS, ids=[name for name, _ in BLOCKS])
def test_a_config_example_in_the_docs_loads(tmp_path: Path, name: str, body: str):
    path = tmp_path / "example.yml"
    path.write_text(body)
    load_config(path)
