"""Toy-world tests that prove learning (they train the shipped toy base model on a subject and
measure it with the toy oracle); these can fail if locking does not work."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dreamlock.evaluation import evaluate
from dreamlock.toyworld.base import GUIDANCE, shipped_base
from dreamlock.generation import generate
from dreamlock.toyworld.demo import (NEW_SCENES, PER_NEW_SCENE, REFERENCE_SCENES, TRIGGER, by_prompt,
                                     demo_train_config, judge_generations)
from dreamlock.toyworld.vocab import subject_prompt
from dreamlock.toyworld.subjects import DEMO_SUBJECT, builtin_subject, write_reference_set
from dreamlock.training.api import train

MARGIN = 0.30  # subject_fidelity must rise at least this much above the base model's
LOCKED = 0.7  # share of new-scene generations the oracle must accept (the demo asks for 0.8)


@pytest.mark.slow
def test_lora_locks_the_subject(tmp_path):
    """The demo's photos (3 plain + 2 forest, captioned with their scenes) and its LoRA recipe
    (prior preservation on) lock the demo's subject: the oracle recognises it, in the scene asked
    for, in at least LOCKED of the generations in the three scenes the photos never show (7 seeds
    each), and subject fidelity over evaluate's recontextualisation prompts rises MARGIN above the
    base model's.

    Measured 2026-12-07 by the demo (same photos, recipe, subject and seeds;
    benchmarks/demo_dotty_heart.json): see benchmarks/RESULTS.md, "The demo"."""
    spec = builtin_subject(DEMO_SUBJECT)
    refs = tmp_path / "refs"
    write_reference_set(spec, refs, n=len(REFERENCE_SCENES), scenes=REFERENCE_SCENES, trigger=TRIGGER)
    cfg = demo_train_config(refs, tmp_path / "run", spec.class_word, "lora", None, False, tmp_path / "cache")
    cfg.update(validation_prompt=[])
    run = train(cfg)
    prompts = [subject_prompt(TRIGGER, spec.class_word, s) for s in NEW_SCENES]
    written = generate(run, prompts, n=PER_NEW_SCENE, steps=20, out=tmp_path / "generated")
    verdict = judge_generations(refs, by_prompt(prompts, written))
    assert verdict["accepted"] >= LOCKED * verdict["total"], verdict["line"]
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
    assert len(list((out / "generated").glob("*-grid.png"))) == 3  # beach, snow, night (not the photos' forest)
    verdict = metrics["verdict"]
    assert verdict["total"] == 21 and 0 <= verdict["accepted"] <= 21
    assert sorted(p.name for p in (out / "data").glob("*.txt")) == [f"ref_{i:02d}.txt" for i in range(5)]
    assert (out / "data" / "ref_04.txt").read_text().strip() == "a photo of sks heart in the forest"  # carried by prepare
    report = (out / "REPORT.md").read_text()
    assert verdict["line"] in report and "![references](evaluation/grids/references.png)" in report
    assert report.count("![trained](evaluation/grids/") == 4 and report.count("![base](evaluation-base/grids/") == 4
    assert report.count("(a backdrop of the photos)") == 1  # the forest
