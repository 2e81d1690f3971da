"""Toy-world tests that prove learning (they train the shipped toy base model on a subject and
measure it with the toy oracle); these can fail if locking does not work."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dreamlock.evaluation import evaluate
from dreamlock.toyworld.base import GUIDANCE, shipped_base
from dreamlock.toyworld.demo import TRIGGER, demo_train_config
from dreamlock.toyworld.subjects import DEMO_SUBJECT, builtin_subject, write_reference_set
from dreamlock.training.api import train

MARGIN = 0.30  # subject_fidelity must rise at least this much above the base model's


@pytest.mark.slow
def test_lora_locks_the_subject(tmp_path):
    """The demo's LoRA recipe (prior preservation on) raises subject fidelity on the demo's subject
    by MARGIN above the base model's, over recontextualisation prompts at the toy guidance.

    Measured 2026-12-06 by the demo (same recipe, subject and seeds; refined VAE, caption-dropout
    base, the oracle with the "punched" negatives; benchmarks/demo_dotty_heart.json): 0.230 vs
    -0.149 (the previous oracle: 0.349 vs -0.138). The oracle's verdict accepts none of the 20
    new-scene images (the dots are missing or the wrong colour), so this test asserts the rise, not
    the lock (issue 15 part 4 re-chooses the recipe)."""
    spec = builtin_subject(DEMO_SUBJECT)
    refs = tmp_path / "refs"
    write_reference_set(spec, refs, n=5)
    cfg = demo_train_config(refs, tmp_path / "run", spec.class_word, "lora", None, False, tmp_path / "cache")
    cfg.update(validation_prompt=[])  # the demo's LoRA recipe, as in benchmarks/locking.py
    run = train(cfg)
    common = dict(seeds=8, guidance=GUIDANCE, trigger=TRIGGER, class_word=spec.class_word, progress=False)
    trained = evaluate(run, refs, out=tmp_path / "eval", **common)
    base = evaluate(shipped_base(), refs, out=tmp_path / "eval-base", **common)
    assert trained["subject_fidelity"] >= base["subject_fidelity"] + MARGIN, (trained, base)


def test_demo_fast_runs_end_to_end(tmp_path):
    """`dreamlock demo --fast` from the CLI: every stage runs and the report and metrics exist
    (a smoke test of the whole flow on the real toy model; too few steps to prove learning)."""
    proc = subprocess.run([sys.executable, "-m", "dreamlock", "demo", "--fast", "--out", str(tmp_path / "demo")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    out = tmp_path / "demo"
    assert (out / "REPORT.md").is_file() and (out / "evaluation" / "report.md").is_file()
    metrics = json.loads((out / "demo_metrics.json").read_text())
    for key in ("prompt_fidelity", "class_drift_share"):  # fractions
        assert 0.0 <= metrics["trained"][key] <= 1.0
    for key in ("subject_fidelity", "class_drift"):  # mean cosine similarities (class_drift: PRES)
        assert -1.0 <= metrics["trained"][key] <= 1.0
    assert 0.0 <= metrics["trained"]["diversity"] <= 2.0  # a mean layout distance (2 - 2 cos per position)
    assert metrics["trained"]["codec_ceiling"]["resolution"] == 64
    assert len(list((out / "generated").glob("*-grid.png"))) == 4  # beach, snow, forest, night
    verdict = metrics["verdict"]
    assert verdict["total"] == 20 and 0 <= verdict["accepted"] <= 20
    report = (out / "REPORT.md").read_text()
    assert verdict["line"] in report and "![references](evaluation/grids/references.png)" in report
    assert report.count("![trained](evaluation/grids/") == 4 and report.count("![base](evaluation-base/grids/") == 4
