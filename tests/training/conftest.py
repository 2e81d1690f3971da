"""Fixtures for the training-engine tests: a tiny random SD pipeline saved as a diffusers folder
(loaded through the same code path users use) and a small instance data folder.

These tests prove plumbing (what trains, what stays frozen, what is saved and loads back), not
learning; the toy-world tests prove learning."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dreamlock.families.build import save_tiny_pipeline
from dreamlock.training.config import TrainConfig


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("base") / "tiny")


@pytest.fixture
def instance_dir(tmp_path, images_writer) -> Path:
    return images_writer(tmp_path / "data", 4)


@pytest.fixture
def make_config(tiny_base, instance_dir, tmp_path):
    """Build a TrainConfig for the tiny model; keyword arguments override the defaults."""

    def make(**overrides) -> TrainConfig:
        values = dict(
            base=str(tiny_base), data=str(instance_dir), output=str(tmp_path / "run"), method="lora",
            trigger="sks", class_word="dog", resolution=32, max_train_steps=4, learning_rate=1e-2,
            embedding_lr=1e-1, seed=0, class_cache_dir=str(tmp_path / "class-cache"), num_class_images=4,
            class_generation_steps=2, sample_batch_size=4, logging_steps=1,
        )
        values.update(overrides)
        return TrainConfig.model_validate(values)

    return make


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    now = dict(module.named_parameters())
    return {n for n, p in before.items() if n in now and not torch.equal(p, now[n].detach())}


@pytest.fixture
def params():
    """(snapshot, changed) helpers to compare a module's parameters before and after training."""
    return snapshot, changed
