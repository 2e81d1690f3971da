"""Shared fixtures of the family tests."""

from __future__ import annotations

import pytest

from dreamlock.training.config import TrainConfig

#: the output size of each tiny upscaler (its training resolution)
SR_SIZES = {"sd-upscale": 64, "if-sr": 32}


@pytest.fixture
def make_sr(tiny_bases, tmp_path, images_writer):
    """``make_sr(family="sd-upscale", **overrides)``: a `--method sr` TrainConfig on that family's
    tiny upscaler, with three images at its output size."""

    def config(family: str = "sd-upscale", **overrides) -> TrainConfig:
        data = tmp_path / f"data-{family}"
        if not data.is_dir():
            images_writer(data, 3, size=SR_SIZES[family])
        values = dict(base=str(tiny_bases[family]), data=str(data), output=str(tmp_path / "run"), method="sr",
                      max_train_steps=3, learning_rate=1e-3, random_flip=True)
        return TrainConfig.model_validate(values | overrides)

    return config
