"""The shipped oracle: held-out accuracy on fresh renders and an identity embedding that
separates subjects. Loads the shipped weights; never trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamlock.errors import UserError
from dreamlock.toyworld.oracle import ASSETS, CONFIG_NAME, WEIGHTS_NAME, load_oracle
from dreamlock.toyworld.render import Look, render_look
from dreamlock.toyworld.subjects import make_subject
from dreamlock.toyworld.vocab import CLASSES, COLOURS, SCENES

HELD_OUT_SEED = 987_654  # never used in training (training pools use seeds 0.. and 10_000)


@pytest.fixture(scope="module")
def oracle():
    return load_oracle()


def test_shipped_files_are_small_safetensors():
    weights = ASSETS / WEIGHTS_NAME
    assert weights.is_file() and (ASSETS / CONFIG_NAME).is_file()
    assert weights.stat().st_size < 2_000_000


def test_held_out_accuracy_at_least_98_percent(oracle):
    rng = np.random.default_rng(HELD_OUT_SEED)
    n = 400
    truth = [(CLASSES[rng.integers(len(CLASSES))], list(COLOURS)[rng.integers(len(COLOURS))], SCENES[rng.integers(len(SCENES))]) for _ in range(n)]
    preds = oracle.predict([render_look(Look(c, col), s, rng) for c, col, s in truth])
    for i, key in enumerate(["class", "colour", "scene"]):
        acc = np.mean([p[key] == t[i] for p, t in zip(preds, truth)])
        assert acc >= 0.98, f"{key} accuracy {acc:.3f}"


def test_held_out_accuracy_on_subjects(oracle):
    rng = np.random.default_rng(HELD_OUT_SEED + 1)
    specs = [make_subject(rng) for _ in range(100)]
    scenes = [SCENES[rng.integers(len(SCENES))] for _ in specs]
    preds = oracle.predict([render_look(s.look(), sc, rng) for s, sc in zip(specs, scenes)])
    assert np.mean([p["class"] == s.cls for p, s in zip(preds, specs)]) >= 0.95
    assert np.mean([p["scene"] == sc for p, sc in zip(preds, scenes)]) >= 0.98
    assert np.mean([p["detail"] == s.detail for p, s in zip(preds, specs)]) >= 0.9


def test_identity_embedding_separates_subjects(oracle):
    rng = np.random.default_rng(HELD_OUT_SEED + 2)
    specs = [make_subject(rng) for _ in range(20)]
    views = 4
    images = [render_look(s.look(), SCENES[rng.integers(len(SCENES))], rng) for s in specs for _ in range(views)]
    emb = oracle.embed(images)
    assert torch.allclose(emb.norm(dim=1), torch.ones(len(images)), atol=1e-4)
    owner = torch.arange(len(specs)).repeat_interleave(views)
    sim = emb @ emb.T
    same = (owner[:, None] == owner[None, :]) & ~torch.eye(len(owner), dtype=torch.bool)
    diff = owner[:, None] != owner[None, :]
    assert sim[same].mean() > sim[diff].mean() + 0.3
    nearest = sim.masked_fill(torch.eye(len(owner), dtype=torch.bool), -2).argmax(dim=1)
    assert (owner[nearest] == owner).float().mean() >= 0.9


def test_identity_sees_the_detail_not_only_class_and_colour(oracle):
    """A subject's views are closer to each other than to plain objects of its class and colour."""
    rng = np.random.default_rng(HELD_OUT_SEED + 3)
    for _ in range(5):
        spec = make_subject(rng)
        subject = oracle.embed([render_look(spec.look(), "plain", rng) for _ in range(4)])
        plain = oracle.embed([render_look(Look(spec.cls, spec.colour), "plain", rng) for _ in range(4)])
        same = (subject @ subject.T)[~torch.eye(4, dtype=torch.bool)].mean()
        cross = (subject @ plain.T).mean()
        assert same > cross + 0.2, spec


def test_missing_weights_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="oracle weights not found"):
        load_oracle(tmp_path)


# ---------------------------------------------------------------------------- subject verification
# Known-answer tests of the shipped oracle's verdict on looks it never trained on (negatives.held_out).
# Measured figures: benchmarks/lab.json (60 held-out looks); asserted here on 16 other looks, with margin.


@pytest.fixture(scope="module")
def verification(oracle):
    from dreamlock.toyworld.oracle import summarise_verification, verification_table

    rows = verification_table(oracle, held_out_looks=True, seed=HELD_OUT_SEED + 10, n_looks=16)
    return summarise_verification(rows, oracle.subject_threshold)


def test_shipped_oracle_states_its_threshold(oracle):
    assert oracle.subject_threshold is not None and 0.3 < oracle.subject_threshold < 1.0
    assert "held_out_looks" in oracle.config["verification"]


def test_held_out_subjects_are_accepted_in_every_scene(verification):
    # measured (oracle fdd50359cc8b): 100% in every scene but the forest, 14 of 16 there (93.3% of
    # 60 in lab.json); the "punched" negatives made it stricter in the forest (was 96.7%, RESULTS.md)
    for scene in SCENES:
        assert verification["accepted"][scene] >= 0.85, (scene, verification["accepted"])
        assert verification["accepted"]["aug_" + scene] >= 0.6, (scene, verification["accepted"])


def test_each_hard_negative_kind_is_rejected_on_held_out_looks(verification):
    from dreamlock.toyworld.negatives import NEGATIVE_KINDS, SHAPE_KINDS

    for kind in NEGATIVE_KINDS:
        # measured on these 16 looks: 0.81 (blob) to 1.0; on 60 others (lab.json) see RESULTS.md
        assert verification["rejected"][kind] >= 0.7, (kind, verification["rejected"])
        # and far from the subject on average, so fragments do not inflate subject_fidelity: the
        # first oracle (no negatives) put ellipses, blobs and pieces at 0.68-0.71 and bands at 0.54
        bound = 0.55 if kind in SHAPE_KINDS or kind == "wrong_outline" else 0.6
        assert verification["mean_similarity"][kind] <= bound, (kind, verification["mean_similarity"])
