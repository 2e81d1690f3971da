"""Metric maths: unit checks on embeddings, and end to end on fake generators of renders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dreamlock.errors import UserError
from dreamlock.evaluation import evaluate_with
from dreamlock.evaluation import metrics as M
from dreamlock.evaluation.prompts import default_prompts, load_prompts
from dreamlock.evaluation.scorers.toy import ToyScorer
from dreamlock.toyworld.negatives import render_negative
from dreamlock.toyworld.render import Look, render_look
from dreamlock.toyworld.subjects import SubjectSpec, builtin_subject
from dreamlock.toyworld.vocab import parse_text


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
    assert r["class_drift_share"] >= 0.9
    assert r["class_drift"] == pytest.approx(r["subject_fidelity"], abs=0.05)  # class prompts draw the subject too
    assert r["diversity_measure"] == "layout" and r["scorer"] == "toy"
    assert 0 < r["diversity"] < 2  # same subject, different poses: a layout distance in [0, 2]
    assert {p for p, _ in gen.calls} == {p.text for p in default_prompts("sks", "star")}
    assert all(seeds == list(range(SEEDS)) for _, seeds in gen.calls)


def test_plain_class_generator_has_no_drift(subject, references, make_generator):
    """Subject prompts give the subject; class prompts give plain stars of random colours."""
    r = evaluate_with(make_generator(subject, class_spec=None), references, seeds=SEEDS, progress=False)
    assert r["subject_fidelity_rel"] > 0.9
    assert r["class_drift_share"] <= 0.1
    assert r["class_drift"] < 0.3 * r["reference_self_similarity"]
    assert r["drift_calibration"]["source"] == "scorer"  # the toy oracle states its verdict threshold
    assert r["drift_threshold"] == pytest.approx(ToyScorer().subject_threshold)
    assert r["judged_subject"] >= 0.9
    for p in r["per_prompt"]:  # the verdict per image, so a person can check it against the picture
        assert len(p["judged"]) == p["n"] and sum(p["judged"]) / p["n"] == pytest.approx(p["judged_subject"])


class NegativeGenerator:
    """Draws a hard negative of the subject (``kind``) for subject prompts, a plain star for class
    prompts: what a half-trained generator makes, and what a person would not call the subject."""

    world, trigger, class_word = "toy", "sks", "star"

    def __init__(self, subject_spec, kind):
        self.look, self.kind = subject_spec.look(), kind

    def images(self, prompt, seeds, steps, guidance):
        scene = parse_text(prompt)["scene"]
        if self.trigger not in prompt.split():
            return [render_look(Look("star", "yellow"), scene, s) for s in seeds]
        return [render_negative(self.look, self.kind, scene, np.random.default_rng([s, 7])) for s in seeds]


class BackdropGenerator(NegativeGenerator):
    """Draws the subject on the plain backdrop of its photos whatever scene the prompt asks for:
    a generator that memorised the photos (seen on a tuning subject, benchmarks/RESULTS.md)."""

    def __init__(self, subject_spec):
        self.look = subject_spec.look()

    def images(self, prompt, seeds, steps, guidance):
        if self.trigger not in prompt.split():
            return [render_look(Look("star", "yellow"), parse_text(prompt)["scene"], s) for s in seeds]
        return [render_look(self.look, "plain", np.random.default_rng([s, 7])) for s in seeds]


def test_judged_in_scene_does_not_count_a_memorised_backdrop(subject, references, make_generator):
    """Known answer, toy oracle on renders: the subject on its photos' backdrop for every prompt is
    the subject (judged_subject high) but in the asked scene only for the prompts that ask for the
    plain scene; the subject drawn in each prompt's scene counts in both."""
    prompts = default_prompts("sks", "star")
    subject_prompts = [p for p in prompts if p.kind == "subject"]
    plain_share = sum(p.attrs.get("scene") in (None, "plain") for p in subject_prompts) / len(subject_prompts)
    assert plain_share < 0.5  # the test means something: most prompts ask for another scene
    memorised = evaluate_with(BackdropGenerator(subject), references, seeds=SEEDS, progress=False)
    assert memorised["judged_subject"] >= 0.9
    assert memorised["judged_in_scene"] <= plain_share + 0.05
    for p in memorised["per_prompt"]:
        if p["kind"] == "subject" and parse_text(p["prompt"])["scene"] not in (None, "plain"):
            assert p["judged_in_scene"] == 0.0, p
    true = evaluate_with(make_generator(subject, class_spec=None), references, seeds=SEEDS, progress=False)
    assert true["judged_in_scene"] >= 0.9 and true["judged_in_scene"] <= true["judged_subject"]


@pytest.mark.parametrize("kind", ["band", "pieces", "no_detail", "wrong_outline", "punched"])
def test_fragments_of_the_subject_do_not_score_as_the_subject(subject, references, kind):
    """Known answer: the subject's pattern without its outline (bands: the striped star failure),
    its outline cut up, without the detail, with the scene where the detail belongs, or on another
    class are not the subject: judged subject
    at most 1 in 4 and subject_fidelity_rel far below a true rendering's (> 0.9)."""
    r = evaluate_with(NegativeGenerator(subject, kind), references, seeds=SEEDS, progress=False)
    assert r["judged_subject"] <= 0.25, r["judged_subject"]
    assert r["subject_fidelity_rel"] < 0.6, r["subject_fidelity_rel"]


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
    assert r["class_drift_share"] <= 0.1
    assert r["class_drift"] < 0.3 * r["reference_self_similarity"]


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


def _hand_prompts():
    from dreamlock.evaluation.prompts import make_prompt, with_alternatives

    return with_alternatives([make_prompt("a photo of sks star on the beach", "sks", "star"),
                              make_prompt("a photo of a star", "sks", "star")])


def test_layout_distance_maths():
    """Known answer: the LPIPS-style distance on hand-built feature maps. Unit channel vectors at
    every position: identical maps give 0, orthogonal ones 2 (= 2 - 2 cos), half the positions
    orthogonal 1; layers are averaged; scale per position does not matter (channel-normalised)."""
    a = torch.zeros(1, 2, 2, 2)
    a[:, 0] = 1.0
    b = torch.zeros(1, 2, 2, 2)
    b[:, 1] = 1.0
    half = a.clone()
    half[:, :, 0, :] = b[:, :, 0, :]
    layer = torch.cat([a, 3 * a, b, half])  # 3 * a is a, scaled
    d = M.layout_distance_matrix([layer])
    assert d[0, 1] == pytest.approx(0.0, abs=1e-6) and d[0, 2] == pytest.approx(2.0) and d[0, 3] == pytest.approx(1.0)
    assert torch.allclose(d, d.T) and torch.all(d.diagonal() == 0)
    coarse = torch.cat([a[:, :, :1, :1], a[:, :, :1, :1], a[:, :, :1, :1], b[:, :, :1, :1]])  # a second layer
    assert M.layout_distance_matrix([layer, coarse])[0, 2] == pytest.approx((2.0 + 0.0) / 2)
    assert M.pairwise_layout_distance([a.repeat(3, 1, 1, 1)]) == pytest.approx(0.0, abs=1e-6)
    assert M.pairwise_layout_distance([torch.cat([a, b])]) == pytest.approx(2.0)
    assert M.layout_diversity([[torch.cat([a, b])], [a.repeat(2, 1, 1, 1)], [a]]) == pytest.approx(1.0)  # [a]: one image, skipped
    assert math.isnan(M.pairwise_layout_distance([a]))


def test_class_drift_is_the_papers_pres(references):
    """Known answer: PRES is the mean identity cosine over all (class generation, reference) pairs.
    Class generations that are the references themselves score the mean of the full
    reference-vs-reference similarity matrix (diagonal included) and are all judged the subject;
    renders of an unrelated subject score near 0 and none is judged the subject."""
    from dreamlock.evaluation import score
    from dreamlock.evaluation.scorers import get_scorer
    from dreamlock.toyworld.subjects import reference_images

    scorer = get_scorer("toy")
    ref = scorer.embed(references)
    same = score(scorer, references, _hand_prompts(), [references[:2], references], "star")
    assert same["class_drift"] == pytest.approx(float(M.cosine_matrix(ref, ref).mean()), abs=1e-4)
    assert same["class_drift"] > same["reference_self_similarity"]  # the diagonal pairs count 1.0
    assert same["class_drift_share"] == 1.0
    unrelated = reference_images(builtin_subject("dotty-heart"), n=4, seed=3)
    other = score(scorer, references, _hand_prompts(), [references[:2], unrelated], "star")
    assert other["class_drift"] < 0.4 * other["reference_self_similarity"]  # measured 0.30 vs 0.86
    assert other["class_drift_share"] == 0.0


def test_toy_diversity_sees_layout_not_identity(subject):
    """Known answer for the toy scorer's layout distance: a set of one image repeated has DIV 0;
    the same subject in shifted, rotated poses is more diverse than different subjects drawn in one
    and the same pose and scene. The old identity-embedding distance ranks these two the other way
    round (it measures identity inconsistency, not variety)."""
    from dreamlock.evaluation.scorers import get_scorer
    from dreamlock.toyworld.render import Pose, render_look
    from dreamlock.toyworld.subjects import make_subject

    scorer = get_scorer("toy")
    centre = Pose(0.5, 0.5, 0.29, 0.0)
    shifts = [(-0.15, -0.1, 0), (0.15, 0.1, 20), (0.0, 0.15, -20), (0.12, -0.12, 10), (-0.12, 0.12, -10)]
    moved = [render_look(subject.look(), "beach", 1, pose=Pose(0.5 + dx, 0.5 + dy, 0.29, a)) for dx, dy, a in shifts]
    looks = [make_subject(np.random.default_rng([i, 5]), cls="star").look() for i in range(len(shifts))]
    others = [render_look(look, "beach", 1, pose=centre) for look in looks]
    still = [render_look(subject.look(), "beach", 1, pose=centre)] * 4

    def div(images):
        return M.pairwise_layout_distance(scorer.layout_features(images))

    assert div(still) == pytest.approx(0.0, abs=1e-5)
    assert div(moved) > 1.2 * div(others) > 0
    assert M.pairwise_diversity(scorer.embed(moved)) < M.pairwise_diversity(scorer.embed(others))
    maps = scorer.layout_features(still)
    assert len(maps) == len(scorer.oracle.net.trunk) and all(m.ndim == 4 and m.shape[0] == 4 for m in maps)


class _IdentityOnlyScorer:
    """The toy scorer without layout features (a scorer that cannot see layout)."""

    name = "identity-only"

    def __init__(self):
        from dreamlock.evaluation.scorers import get_scorer

        self.toy = get_scorer("toy")

    def embed(self, images):
        return self.toy.embed(images)

    def attributes(self, images):
        return self.toy.attributes(images)

    def prompt_match(self, images, attrs):
        return self.toy.prompt_match(images, attrs)


def test_diversity_falls_back_to_identity_distance(subject, references, make_generator):
    """Plumbing: a scorer without ``layout_features`` gets the old DIV (1 - cos of identity
    embeddings), and the metrics say which measure was used."""
    scorer = _IdentityOnlyScorer()
    gen = make_generator(subject)
    r = evaluate_with(gen, references, seeds=3, scorer=scorer, progress=False)
    assert r["diversity_measure"] == "identity"
    subject_groups = [scorer.embed(gen.images(p["prompt"], [0, 1, 2], 1, 1.0)) for p in r["per_prompt"] if p["kind"] == "subject"]
    assert r["diversity"] == pytest.approx(M.diversity(subject_groups), abs=1e-5)
