"""The user's own LoRA and embedding files on `generate` (tiny random SD; plumbing): a LoRA or
embedding a run exported (diffusers, kohya and A1111 formats) gives the run's own images when
loaded on the base model; pickles are refused, and a planted pickle never runs even when allowed."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dreamlock.errors import UserError
from dreamlock.exporting import export
from dreamlock.generation import load_generator

PROMPT = "a photo of sks dog"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bases, images_writer):
    from dreamlock.training.api import train

    root = tmp_path_factory.mktemp("user-weights")
    data = images_writer(root / "data", 2)
    common = dict(base=str(tiny_bases["sd"]), data=str(data), class_word="dog", resolution=32, learning_rate=5e-2,
                  max_train_steps=3, with_prior_preservation=False)
    lora = train(output=str(root / "lora"), method="lora", **common)
    ti = train(output=str(root / "ti"), method="ti", trigger="sks", **common)
    return {"root": root, "base": tiny_bases["sd"], "lora": lora, "ti": ti}


def _pixels(generator, prompt: str) -> np.ndarray:
    return np.stack([np.asarray(im, dtype=np.float32) for im in generator.images(prompt, [0, 1], steps=3)])


def test_a_lora_file_on_the_base_draws_what_its_run_draws(runs):
    lora_file = runs["lora"] / "final" / "pytorch_lora_weights.safetensors"
    kohya = export(runs["lora"], "kohya-lora", runs["root"] / "kohya.safetensors")
    want = _pixels(load_generator(runs["lora"]), PROMPT)
    bare = _pixels(load_generator(runs["base"]), PROMPT)
    assert np.abs(want - bare).mean() > 1.0  # the LoRA changes the images, so the equalities below can fail
    assert np.abs(_pixels(load_generator(runs["base"], loras=[str(lora_file)]), PROMPT) - want).max() <= 1.0
    assert np.abs(_pixels(load_generator(runs["base"], loras=[str(kohya)]), PROMPT) - want).max() <= 1.0


def test_an_a1111_embedding_file_takes_its_file_name_as_token(runs):
    token = load_generator(runs["ti"]).info.tokens[0]
    out = export(runs["ti"], "a1111-embedding", runs["root"] / "mydog.safetensors")
    assert "emb_params" in load_file(str(out))
    generator = load_generator(runs["base"], embeddings=[str(out)])
    want = _pixels(load_generator(runs["ti"]), PROMPT)
    assert np.abs(want - _pixels(load_generator(runs["base"]), f"a photo of {token} dog")).mean() > 1.0
    assert np.abs(_pixels(generator, "a photo of mydog dog") - want).max() <= 1.0


def test_an_embedding_of_another_width_is_refused(runs):
    wrong = runs["root"] / "wide.safetensors"
    from safetensors.torch import save_file

    save_file({"emb_params": torch.zeros(1, 999)}, str(wrong))
    with pytest.raises(UserError, match="does not fit the sd model's text encoder"):
        load_generator(runs["base"], embeddings=[str(wrong)])


def test_a_plain_tensor_pickle_loads_only_when_allowed(runs):
    state = load_file(str(runs["lora"] / "final" / "pytorch_lora_weights.safetensors"))
    pickled = runs["root"] / "lora.bin"
    torch.save(state, pickled)
    with pytest.raises(UserError, match="can run arbitrary code.*--allow-pickle"):
        load_generator(runs["base"], loras=[str(pickled)])
    want = _pixels(load_generator(runs["lora"]), PROMPT)
    got = _pixels(load_generator(runs["base"], loras=[str(pickled)], allow_pickle=True), PROMPT)
    assert np.abs(got - want).max() <= 1.0


@pytest.mark.parametrize("allow_pickle", [False, True])
def test_a_planted_pickle_never_runs(runs, tmp_path, allow_pickle):
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for kind in ("loras", "embeddings"):
        planted = tmp_path / f"evil-{kind}.pt"
        with open(planted, "wb") as f:
            pickle.dump({"lora_unet_x.lora_down.weight": Payload()}, f)
        with pytest.raises(UserError) as e:
            load_generator(runs["base"], allow_pickle=allow_pickle, **{kind: [str(planted)]})
        assert not marker.exists() and "\n" not in str(e.value)
        assert ("not a plain tensor file" if allow_pickle else "--allow-pickle") in str(e.value)
