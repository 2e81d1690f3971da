"""Tiny random pipelines of every registered family, built offline from configs (plumbing tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dreamlock.families import FAMILIES
from dreamlock.families.build import save_tiny_pipeline


@pytest.fixture(scope="session")
def tiny_bases(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("family-bases")
    return {name: save_tiny_pipeline(root / name, family=name) for name in FAMILIES}
