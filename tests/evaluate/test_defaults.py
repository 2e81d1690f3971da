"""What `evaluate` chooses from the model (toy world or not), and the codec ceiling."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from dreamlock.cli import app
from dreamlock.errors import UserError
from dreamlock.evaluation import evaluate, evaluate_with
from dreamlock.evaluation.prompts import (DREAMBENCH_LIVE_PROMPTS, DREAMBENCH_OBJECT_PROMPTS, dreambench_prompts,
                                          is_live_subject)
from dreamlock.evaluation.scorers import get_scorer
from dreamlock.model_defaults import DEFAULTS_FILE, model_world, world_of, write_model_defaults
from dreamlock.toyworld.subjects import write_reference_set


def test_dreambench_prompt_sets():
    """Known answer: the paper's two lists of 25, picked by the class word; class prompts are the
    same 25 without the trigger."""
    assert len(DREAMBENCH_OBJECT_PROMPTS) == len(DREAMBENCH_LIVE_PROMPTS) == 25
    assert is_live_subject("dog") and is_live_subject("corgi dogs") and is_live_subject("woman")
    assert not is_live_subject("backpack") and not is_live_subject("teapot")
    dog = dreambench_prompts("sks", "dog")
    assert [p.kind for p in dog] == ["subject"] * 25 + ["class"] * 25
    assert dog[10].text == "a sks dog wearing a red hat" and dog[35].text == "a dog wearing a red hat"
    assert dog[21].attrs["text"] == "a purple dog" and dog[45].text == "a red dog"
    bag = dreambench_prompts("sks", "backpack")
    assert bag[14].text == "a sks backpack floating in an ocean of milk" and bag[24].text == "a cube shaped sks backpack"


def test_world_is_read_from_the_model_and_its_runs(tmp_path, tiny_base):
    """Plumbing: dreamlock.json's "world" is read for a model folder and, through run.json's base,
    for a run; the shipped toy model says "toy"; a model without the key is not the toy world."""
    from dreamlock.generation import load_generator
    from dreamlock.runs import RunInfo, write_run
    from dreamlock.toyworld.base import shipped_base

    assert model_world(shipped_base()) == "toy" and world_of(shipped_base()) == "toy"
    assert model_world(tiny_base) is None and load_generator(tiny_base).world is None
    base = tmp_path / "base"
    base.mkdir()
    write_model_defaults(base, 1.0, world="toy")
    assert json.loads((base / DEFAULTS_FILE).read_text()) == {"guidance": 1.0, "world": "toy"}
    run = tmp_path / "run"
    run.mkdir()
    write_run(run, RunInfo(method="lora", base=str(base)))
    assert world_of(run) == "toy" and world_of(tmp_path / "nothing-here") is None
    (base / DEFAULTS_FILE).write_text('{"world": 3}')
    with pytest.raises(UserError, match="must be a string"):
        model_world(base)


class _RealWorldGenerator:
    """A stand-in for a real (non-toy) model: no ``world``; draws toy renders anyway."""

    def __init__(self, inner):
        self.inner, self.trigger, self.class_word = inner, inner.trigger, inner.class_word

    @property
    def calls(self):
        return self.inner.calls

    def images(self, prompt, seeds, steps, guidance):
        return self.inner.images(prompt, seeds, steps, guidance)


def test_non_toy_model_defaults_to_dreambench_prompts(subject, references, make_generator):
    """Plumbing: a generator that is not the toy world gets DreamBench's object prompts for a
    star (25 subject + 25 class prompts) when no prompts are given."""
    gen = _RealWorldGenerator(make_generator(subject))
    r = evaluate_with(gen, references, seeds=1, scorer=get_scorer("toy"), progress=False)
    expected = [p.text for p in dreambench_prompts("sks", "star")]
    assert [p for p, _ in gen.calls] == expected and len(expected) == 50
    assert [e["prompt"] for e in r["per_prompt"]] == expected


def test_non_toy_model_without_scorer_weights_is_one_line_error(tmp_path, monkeypatch, subject, references,
                                                               make_generator, tiny_base, tiny_clip_dino, one_thread):
    """Plumbing: with no --scorer, a model that is not the toy world gets clip-dino, and without
    --scorer-model that is a one-line UserError naming the flag, raised before generating (API)
    and before loading the model (API and CLI: exit code 2, no traceback). With the weights, clip-dino runs."""
    import dreamlock.evaluation as evaluation

    gen = _RealWorldGenerator(make_generator(subject))
    with pytest.raises(UserError) as err:
        evaluate_with(gen, references, seeds=1, progress=False)
    assert "\n" not in str(err.value) and "--scorer-model" in str(err.value) and not gen.calls
    ref = tmp_path / "ref"
    write_reference_set(subject, ref, n=3)

    def no_loading(run):
        raise AssertionError("the model was loaded before the scorer was checked")

    monkeypatch.setattr(evaluation, "_load_generator", no_loading)
    with pytest.raises(UserError, match="--scorer-model"):
        evaluate(tiny_base, ref, progress=False)
    result = CliRunner().invoke(app, ["evaluate", str(tiny_base), "--reference", str(ref)])
    assert result.exit_code == 2 and "--scorer-model" in result.output and "Traceback" not in result.output
    r = evaluate_with(gen, references, prompts=["a photo of {trigger} {class_word}", "a photo of a {class_word}"], seeds=1,
                      scorer_model=str(tiny_clip_dino), progress=False)
    assert r["scorer"] == "clip-dino"


class _Lossless(torch.nn.Module):
    """A VAE stand-in whose round trip returns the image (``lossy``: a flat grey image)."""

    def __init__(self, lossy: bool = False):
        super().__init__()
        self.lossy = lossy
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def encode(self, x):
        return type("Encoded", (), {"latents": x})()

    def decode(self, z):
        return type("Decoded", (), {"sample": torch.zeros_like(z) if self.lossy else z})()


class _PipeGenerator:
    """A stand-in source holding a pipeline with a VAE (``unet.config.sample_size`` x factor 8 = 64 px)."""

    def __init__(self, inner, vae):
        self.inner, self.trigger, self.class_word, self.world = inner, inner.trigger, inner.class_word, "toy"
        config = type("Config", (), {"sample_size": 8})()
        self.pipe = type("Pipe", (), {"vae": vae, "vae_scale_factor": 8, "unet": type("Unet", (), {"config": config})()})()

    def images(self, prompt, seeds, steps, guidance):
        return self.inner.images(prompt, seeds, steps, guidance)


def test_codec_ceiling_known_answers(subject, references, make_generator):
    """Known answer: a lossless codec's ceiling is the references' own similarity (``_rel`` 1,
    each reference identical to its round trip); a codec that returns grey images scores far lower."""
    prompts = ["a photo of {trigger} {class_word} on the beach", "a photo of a {class_word}"]
    lossless = evaluate_with(_PipeGenerator(make_generator(subject), _Lossless()), references, prompts, seeds=1, progress=False)
    ceiling = lossless["codec_ceiling"]
    assert ceiling["resolution"] == 64
    assert ceiling["subject_fidelity"] == pytest.approx(lossless["reference_self_similarity"], abs=1e-4)
    assert ceiling["subject_fidelity_rel"] == pytest.approx(1.0, abs=1e-4) and ceiling["same_image"] == pytest.approx(1.0, abs=1e-4)
    grey = evaluate_with(_PipeGenerator(make_generator(subject), _Lossless(lossy=True)), references, prompts, seeds=1,
                         progress=False)["codec_ceiling"]
    assert grey["subject_fidelity_rel"] < 0.5


def test_codec_ceiling_for_a_real_pipeline(tmp_path, tiny_base, references):
    """Plumbing: a loaded diffusers pipeline (the tiny random one, 32 px) gives its VAE; the
    references go through it at 32 px and are scored; report.md shows the line and the grid."""
    from dreamlock.generation import load_generator

    gen = load_generator(tiny_base)
    out = tmp_path / "eval"
    r = evaluate_with(gen, references, ["a photo of sks star", "a photo of a star"], seeds=1, scorer=get_scorer("toy"),
                      out=out, steps=1, trigger="sks", class_word="star", progress=False)
    ceiling = r["codec_ceiling"]
    assert ceiling["resolution"] == 32 and set(ceiling) == {"subject_fidelity", "subject_fidelity_rel", "same_image", "resolution"}
    assert -1 <= ceiling["subject_fidelity"] <= 1 and -1 <= ceiling["same_image"] <= 1
    md = (out / "report.md").read_text()
    assert "Codec ceiling" in md and "32 px" in md
    assert Image.open(out / "grids" / "references-codec.png").width >= 5 * 32
    assert json.loads((out / "metrics.json").read_text())["codec_ceiling"]["resolution"] == 32


def test_toy_model_report_has_codec_ceiling(tmp_path, subject):
    """Plumbing on the shipped toy model: with no --scorer the toy scorer is chosen (its
    dreamlock.json says world "toy"), and the report carries the codec ceiling at 64 px."""
    from dreamlock.toyworld.base import shipped_base

    ref = tmp_path / "ref"
    write_reference_set(subject, ref, n=3)
    out = tmp_path / "eval"
    r = evaluate(shipped_base(), ref, prompts=["a photo of {trigger} {class_word} on the beach", "a photo of a {class_word}"],
                 seeds=1, steps=2, out=out, trigger="sks", class_word="star", progress=False)
    assert r["scorer"] == "toy" and r["codec_ceiling"]["resolution"] == 64
    assert 0 < r["codec_ceiling"]["subject_fidelity_rel"] <= 1.1
    assert "Codec ceiling" in (out / "report.md").read_text()
