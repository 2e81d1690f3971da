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


@pytest.mark.slow
def test_base_model_takes_classifier_free_guidance():
    """Learning test of the caption-dropout continuation: at guidance 7.5 the base still draws what
    the prompt asks (measured on 48 prompts, seed 1000: 100/91.7/100%; the first base, never shown
    an empty caption: 68.8/52.1/72.9%; benchmarks/base_quality*.json)."""
    spec = importlib.util.spec_from_file_location("base_quality", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.measure(n=48, seed=2025, guidance=7.5)
    for key in ("class", "colour", "scene"):
        assert result[key] >= 0.80, result
