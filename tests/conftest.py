"""Suite-wide settings: no test may reach the network, and library chatter stays quiet."""

from __future__ import annotations

import os
from pathlib import Path
import string

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session")
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


def write_images(folder: Path, n: int, seed: int = 0, size: int = 32, caption: str | None = None) -> Path:
    """Smooth, distinct RGB images (random colour blobs); optional caption sidecars."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC).save(folder / f"img{i}.png")
        if caption is not None:
            (folder / f"img{i}.txt").write_text(caption)
    return folder


@pytest.fixture(scope="session")
def images_writer():
    """``write_images(folder, n, seed=0, size=32, caption=None)``: small distinct test images."""
    return write_images


@pytest.fixture(scope="session")
def tiny_bases(tmp_path_factory) -> dict[str, Path]:
    """Tiny random pipelines of every registered family, built offline from configs (plumbing tests)."""
    from dreamlock.families import FAMILIES
    from dreamlock.families.build import save_tiny_pipeline

    root = tmp_path_factory.mktemp("family-bases")
    return {name: save_tiny_pipeline(root / name, family=name) for name in FAMILIES}
