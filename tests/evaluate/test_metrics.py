"""Metric maths: unit checks on embeddings, and end to end on fake generators of renders."""

from __future__ import annotations

import math

import pytest
import torch

from dreamlock.errors import UserError
from dreamlock.evaluation import evaluate_with
from dreamlock.evaluation import metrics as M
from dreamlock.evaluation.prompts import default_prompts, load_prompts
from dreamlock.toyworld.subjects import SubjectSpec, builtin_subject


SEEDS = 4


def test_fidelity_and_diversity_maths():
    e = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    fid, rel = M.subject_fidelity(e[:1].repeat(3, 1), e[:1].repeat(3, 1))
    assert fid == pytest.approx(1.0) and rel == pytest.approx(1.0)
    assert M.pairwise_diversity(e[:1].repeat(3, 1)) == pytest.approx(0.0, abs=1e-6)
    eye = torch.eye(3)
    assert M.pairwise_diversity(eye) == pytest.approx(1.0)
    assert M.reference_self_similarity(eye) == pytest.approx(0.0)
    assert M.diversity([eye, e[:1].repeat(2, 1)]) == pytest.approx(0.5)
    assert M.fraction([True, False, True, True]) == 0.75 and M.fraction([]) is None
    assert math.isnan(M.off_diagonal_mean(torch.ones(1, 1)))


def test_drift_threshold_is_midpoint_of_references_and_best_impostor():
    ref = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1, 0], [1.0, -0.1, 0], [1.0, 0, 0.1]]), dim=1)
    imp = torch.nn.functional.normalize(torch.tensor([[0.5, 1.0, 0], [0.0, 0, 1.0]]), dim=1)
    tau, info = M.drift_threshold(ref, imp)
    s_ref = float(M.leave_one_out_similarity(ref).mean())
    s_imp = float((imp @ M.centroid(ref)).max())
    assert tau == pytest.approx((s_ref + s_imp) / 2) and info["source"] == "impostors" and info["separable"]
    assert M.is_subject(ref, ref, tau) == [True, True, True]
    assert M.is_subject(imp, ref, tau) == [False, False]
    tau_fb, info_fb = M.drift_threshold(ref)
    assert info_fb["source"] == "fallback" and tau_fb == pytest.approx(M.FALLBACK_THRESHOLD_FRACTION * s_ref)


def test_perfect_generator(subject, references, make_generator):
    """Subject in the prompted scene, and the subject for class prompts too (total drift)."""
    gen = make_generator(subject, class_spec=subject)
    r = evaluate_with(gen, references, seeds=SEEDS, progress=False)
    assert r["subject_fidelity_rel"] > 0.9
    assert r["prompt_fidelity"] >= 0.95
    assert r["class_drift"] >= 0.9
    assert 0 < r["diversity"] < 0.3  # same subject, different poses and scenes
    assert {p for p, _ in gen.calls} == {p.text for p in default_prompts("sks", "star")}
    assert all(seeds == list(range(SEEDS)) for _, seeds in gen.calls)


def test_plain_class_generator_has_no_drift(subject, references, make_generator):
    """Subject prompts give the subject; class prompts give plain stars of random colours."""
    r = evaluate_with(make_generator(subject, class_spec=None), references, seeds=SEEDS, progress=False)
    assert r["subject_fidelity_rel"] > 0.9
    assert r["class_drift"] <= 0.1
    assert r["drift_calibration"]["source"] == "impostors"


def test_other_subject_has_low_fidelity(subject, references, make_generator):
    other = builtin_subject("dotty-heart")
    perfect = evaluate_with(make_generator(subject), references, seeds=SEEDS, progress=False)
    wrong = evaluate_with(make_generator(other), references, seeds=SEEDS, progress=False)
    assert wrong["subject_fidelity_rel"] < 0.5 < perfect["subject_fidelity_rel"]
    assert wrong["prompt_fidelity"] <= 0.1  # the prompts ask for a star; a heart is not one


def test_same_class_other_look_is_not_the_subject(subject, references, make_generator):
    """A star of another colour with another detail: low fidelity, and not counted as drift."""
    lookalike = SubjectSpec(cls="star", colour="blue", detail="dots", detail_colour="yellow")
    r = evaluate_with(make_generator(lookalike, class_spec=lookalike), references, seeds=SEEDS, progress=False)
    assert r["subject_fidelity_rel"] < 0.6
    assert r["prompt_fidelity"] >= 0.9  # right class, right scene
    assert r["class_drift"] <= 0.1


def test_prompt_file_with_placeholders(tmp_path, subject, references, make_generator):
    f = tmp_path / "prompts.txt"
    f.write_text("# my prompts\na photo of {trigger} {class_word} at night\n\na photo of a {class_word}\n")
    prompts = load_prompts(f, "sks", "star")
    assert [p.text for p in prompts] == ["a photo of sks star at night", "a photo of a star"]
    assert [p.kind for p in prompts] == ["subject", "class"]
    assert prompts[0].attrs["scene"] == "night" and prompts[0].attrs["class"] == "star"
    r = evaluate_with(make_generator(subject), references, prompts=f, seeds=2, progress=False)
    assert len(r["per_prompt"]) == 2 and r["prompt_fidelity"] == 1.0


def test_missing_trigger_and_bad_inputs(tmp_path, subject, references, make_generator):
    gen = make_generator(subject, trigger=None)
    with pytest.raises(UserError, match="--trigger"):
        evaluate_with(gen, references, seeds=1, progress=False)
    with pytest.raises(UserError, match="prompts file not found"):
        evaluate_with(make_generator(subject), references, prompts=tmp_path / "nope.txt", progress=False)
    with pytest.raises(UserError, match="at least 2"):
        evaluate_with(make_generator(subject), references[:1], progress=False)
