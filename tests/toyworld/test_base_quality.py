"""The shipped toy base model meets the quality bar: the oracle finds the prompted class, colour
and scene in >= 90% of generations for fresh prompts and seeds (a learning test of pretraining)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "base_quality.py"


@pytest.mark.slow
def test_base_model_draws_what_the_prompt_asks():
    spec = importlib.util.spec_from_file_location("base_quality", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.measure(n=96, seed=2024)
    for key in ("class", "colour", "scene"):
        assert result[key] >= 0.90, result


def test_shipped_base_carries_its_guidance():
    """`dreamlock generate/evaluate` on the toy model (or a run from it) default to GUIDANCE."""
    from dreamlock.model_defaults import model_guidance
    from dreamlock.toyworld.base import GUIDANCE, shipped_base

    assert model_guidance(shipped_base()) == GUIDANCE == 1.0
