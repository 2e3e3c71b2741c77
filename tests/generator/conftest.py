"""The generated data set most generator tests read (pure Python, no Spark)."""
from __future__ import annotations

import pytest

from generator.cli import generate
from tests.generator.readers import small_params


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """(output folder, manifest) of small_params(): generated once for all tests/generator modules."""
    out = tmp_path_factory.mktemp("gen") / "raw"
    manifest = generate(small_params(out))
    return out, manifest
