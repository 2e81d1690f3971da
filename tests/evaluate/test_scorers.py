"""Scorers: the registry, the toy scorer, and the clip-dino plumbing on tiny random models."""

from __future__ import annotations

import pytest
import torch

from dreamlock.errors import UserError
from dreamlock.evaluation import evaluate_with
from dreamlock.evaluation.scorers import SCORERS, get_scorer
from dreamlock.toyworld.render import render



def test_registry_is_lazy_and_checked():
    assert set(SCORERS) == {"toy", "clip-dino"}
    with pytest.raises(UserError, match="unknown scorer"):
        get_scorer("nope")


def test_toy_scorer(references):
    scorer = get_scorer("toy")
    images = [render("star", "red", "beach", i) for i in range(3)]
    emb = scorer.embed(images)
    assert emb.shape == (3, 64) and torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-4)
    attrs = scorer.attributes(images)
    assert all(a["class"] == "star" and a["colour"] == "red" and a["scene"] == "beach" for a in attrs)
    assert scorer.prompt_match(images, {"class": "star", "scene": "beach", "text": "x"}) == [True] * 3
    assert scorer.prompt_match(images, {"class": "star", "scene": "snow"}) == [False] * 3
    impostors = scorer.impostors("star", n=20, references=references)
    assert len(impostors) == 20
    assert scorer.impostors("dog") is None


def test_clip_dino_plumbing(tiny_clip_dino, one_thread):
    scorer = get_scorer("clip-dino", str(tiny_clip_dino))
    images = [render("heart", "blue", "night", i) for i in range(3)]
    emb = scorer.embed(images)
    assert emb.shape == (3, 32) and torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-4)
    assert len(scorer.attributes(images)) == 3
    match = scorer.prompt_match(images, {"text": "a photo of heart at night", "alternatives": ["a photo of heart on the beach"]})
    assert len(match) == 3 and all(isinstance(m, bool) for m in match)
    assert len(scorer.text_similarity(images, "a heart")) == 3
    same = get_scorer("clip-dino", f"{tiny_clip_dino / 'clip'},{tiny_clip_dino / 'dino'}")
    assert torch.allclose(same.embed(images), emb, atol=1e-5)


def test_clip_dino_evaluation_end_to_end(tiny_clip_dino, subject, references, make_generator, one_thread):
    r = evaluate_with(make_generator(subject), references, seeds=2, scorer="clip-dino",
                      scorer_model=str(tiny_clip_dino), progress=False)
    for key in ("subject_fidelity", "subject_fidelity_rel", "prompt_fidelity", "class_drift", "class_drift_share", "diversity",
                "clip_i", "clip_t"):
        assert r[key] is not None, key
    assert r["drift_calibration"]["source"] == "fallback"
    assert r["diversity_measure"] == "layout" and "DINO" in r["diversity_measure_detail"]


def test_clip_dino_missing_weights_is_one_line_user_error(tmp_path):
    for model in (None, str(tmp_path / "missing")):
        with pytest.raises(UserError) as err:
            get_scorer("clip-dino", model)
        assert "\n" not in str(err.value) and "--scorer-model" in str(err.value)


def test_clip_i_and_clip_t_on_subject_prompts_only(tiny_clip_dino, subject, references, one_thread):
    """Known answer on the tiny CLIP: ``clip_i`` is the mean CLIP image cosine over all (subject
    generation, reference) pairs, ``clip_t`` the mean image-text similarity of subject generations
    to their prompt (trigger removed); class-prompt generations count in neither."""
    from dreamlock.evaluation import score
    from dreamlock.evaluation.prompts import make_prompt, with_alternatives
    from dreamlock.toyworld.subjects import builtin_subject, reference_images

    scorer = get_scorer("clip-dino", str(tiny_clip_dino))
    prompts = with_alternatives([make_prompt(t, "sks", "star") for t in
                                 ("a photo of sks star on the beach", "a photo of sks star at night", "a photo of a star")])
    beach = [render("star", "red", "beach", i) for i in range(2)]
    night = [render("star", "red", "night", i) for i in range(2)]
    klass = reference_images(builtin_subject("dotty-heart"), n=2, seed=1)
    r = score(scorer, references, prompts, [beach, night, klass], "star")
    ref_feats = scorer.image_features(references)
    expected_i = float((scorer.image_features(beach + night) @ ref_feats.T).mean())
    expected_t = (sum(scorer.text_similarity(beach, "a photo of star on the beach"))
                  + sum(scorer.text_similarity(night, "a photo of star at night"))) / 4
    assert r["clip_i"] == pytest.approx(expected_i, abs=1e-5)
    assert r["clip_t"] == pytest.approx(expected_t, abs=1e-5)
    assert "clip_t" not in r["per_prompt"][2] and "clip_i" not in r["per_prompt"][2]
    assert r["per_prompt"][0]["clip_t"] == pytest.approx(sum(scorer.text_similarity(beach, "a photo of star on the beach")) / 2, abs=1e-5)


def test_clip_dino_layout_features_are_patch_maps(tiny_clip_dino, one_thread):
    """Plumbing + known answer: DINO patch tokens come back as one [N, C, h, w] map (32 px / 8 px
    patches: 4 x 4, CLS dropped); a repeated image has layout distance 0."""
    from dreamlock.evaluation import metrics as M

    scorer = get_scorer("clip-dino", str(tiny_clip_dino))
    images = [render("heart", "blue", "night", i) for i in range(3)]
    (maps,) = scorer.layout_features(images)
    assert maps.shape == (3, 32, 4, 4)
    assert M.pairwise_layout_distance(scorer.layout_features([images[0]] * 3)) == pytest.approx(0.0, abs=1e-5)
    assert M.pairwise_layout_distance([maps]) > 0
