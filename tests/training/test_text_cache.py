"""Prompts are encoded once, cached on disk, and the text encoders (FLUX.1's T5 above all) and the
VAE are dropped before training (tiny random FLUX.1 built from configs; plumbing): the cached run
trains exactly like one that keeps them, a resumed run reads the cache instead of running T5, and
they stay when something later needs them."""

from __future__ import annotations

import pytest
import torch

from dreamlock.errors import WorkError
from dreamlock.training.api import finish, prepare_trainer
from dreamlock.training.config import TrainConfig
from dreamlock.training.text_cache import CACHE_FILE, load_cache


@pytest.fixture
def make(tiny_bases, tmp_path, images_writer):
    data = images_writer(tmp_path / "data", 3)

    def config(**overrides) -> TrainConfig:
        values = dict(base=str(tiny_bases["flux"]), data=str(data), output=str(tmp_path / "run"), method="lora",
                      trigger="sks", class_word="dog", max_train_steps=2, learning_rate=1e-2, caption_dropout=0.5,
                      with_prior_preservation=True, prior_mode="prior_prediction", resolution=32)
        return TrainConfig.model_validate(values | overrides)

    return config


def test_t5_is_cached_then_dropped_and_training_is_unchanged(make, tmp_path):
    cached = prepare_trainer(make())
    pipe = cached.adapter.pipe
    assert pipe.text_encoder is None and pipe.text_encoder_2 is None and pipe.vae is None and cached.prompts.frozen
    stored = load_cache(tmp_path / "run" / CACHE_FILE, cached.config)
    assert {"", "a photo of sks dog", "a photo of a dog"} <= set(stored)
    # the same run with T5 kept (a validation prompt keeps it) takes the same steps
    kept = prepare_trainer(make(output=str(tmp_path / "kept"), validation_prompt=["a photo of sks dog"],
                                validation_steps=100))
    assert kept.adapter.pipe.text_encoder_2 is not None and not kept.prompts.frozen
    for trainer in (cached, kept):
        trainer.run()
    a, b = cached.method.trainable_state(), kept.method.trainable_state()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    finish(cached)
    with pytest.raises(WorkError, match="not cached before the text encoders were released"):
        cached.prompts(["a new prompt"])


def test_resume_reads_the_cache_instead_of_running_t5(make, tmp_path, monkeypatch):
    first = prepare_trainer(make(max_train_steps=4, checkpointing_steps=2))
    first.run(stop_after=2)
    calls = []
    from transformers import T5EncoderModel

    original = T5EncoderModel.forward
    monkeypatch.setattr(T5EncoderModel, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    resumed = prepare_trainer(make(max_train_steps=4, checkpointing_steps=2, resume="latest"))
    assert resumed.step == 2 and resumed.prompts.frozen and calls == []
    resumed.run()
    assert resumed.step == 4


@pytest.mark.parametrize("overrides", [dict(method="full", learning_rate=1e-4, with_prior_preservation=False),
                                       dict(train_text_encoder=True)])
def test_t5_stays_when_the_pipeline_is_saved_or_text_trains(make, overrides):
    trainer = prepare_trainer(make(**overrides))
    assert trainer.adapter.pipe.text_encoder_2 is not None and not trainer.prompts.frozen
    assert torch.is_tensor(next(trainer.adapter.pipe.text_encoder_2.parameters()))
