"""Scorers: the registry, the toy scorer, and the clip-dino plumbing on tiny random models."""

from __future__ import annotations

import string

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


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from threads, and lose a lot on busy shared cores."""
    from dreamlock.toyworld.oracle import single_thread

    with single_thread():
        yield


@pytest.fixture(scope="module")
def tiny_clip_dino(tmp_path_factory):
    """A CLIP and a DINOv2 with random weights, a few KB each, saved like real checkpoints."""
    from transformers import (BitImageProcessorPil, CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer,
                              Dinov2Config, Dinov2Model)

    root = tmp_path_factory.mktemp("scorer-models")
    torch.manual_seed(0)
    chars = list(string.ascii_lowercase)
    vocab = {t: i for i, t in enumerate(["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)])}
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    clip = CLIPModel(CLIPConfig(text_config=dict(vocab_size=len(vocab), max_position_embeddings=64, **small),
                                vision_config=dict(image_size=32, patch_size=8, **small), projection_dim=16))
    clip.save_pretrained(root / "clip")
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(root / "clip")
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(root / "clip")
    Dinov2Model(Dinov2Config(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             mlp_ratio=2)).save_pretrained(root / "dino")
    BitImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(root / "dino")
    return root


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
    for key in ("subject_fidelity", "subject_fidelity_rel", "prompt_fidelity", "class_drift", "diversity", "clip_t"):
        assert r[key] is not None, key
    assert r["drift_calibration"]["source"] == "fallback"


def test_clip_dino_missing_weights_is_one_line_user_error(tmp_path):
    for model in (None, str(tmp_path / "missing")):
        with pytest.raises(UserError) as err:
            get_scorer("clip-dino", model)
        assert "\n" not in str(err.value) and "--scorer-model" in str(err.value)
