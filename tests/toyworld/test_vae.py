"""The toy VAE as a codec.

- plumbing: the training mixture and the refinement loop (a few steps on a tiny pool);
- shipped asset: the shipped codec round-trips subjects of every detail kind at the measured
  quality (benchmarks/lab.json), and plain renders as well as before (the denoiser's latent
  space is anchored)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from dreamlock.toyworld.base import ASSET_DIR
from dreamlock.toyworld.vae import MIXTURE, anchor_drift, codec_pixels, codec_sample, codec_table, random_texture, refine_vae
from dreamlock.toyworld.vocab import DETAILS


@pytest.fixture(scope="module")
def shipped_vae():
    return AutoencoderKL.from_pretrained(ASSET_DIR / "vae").float().eval()


def test_mixture_covers_plain_every_detail_and_textures():
    rng = np.random.default_rng(0)
    kinds = [codec_sample(rng)[1] for _ in range(400)]
    assert set(kinds) == {"plain", "texture", *DETAILS[1:]}
    assert abs(kinds.count("plain") / 400 - MIXTURE["plain"]) < 0.08
    a, b = random_texture(np.random.default_rng(5)), random_texture(np.random.default_rng(5))
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8 and np.array_equal(a, b)


def test_refine_learns_and_anchors_plain_latents(shipped_vae):
    """Plumbing: from random weights, 15 refinement steps lower the reconstruction error on the pool;
    from the shipped VAE, a few steps keep plain renders' latents near the original encoder's."""
    torch.manual_seed(0)
    fresh = AutoencoderKL(block_out_channels=(8, 16), down_block_types=["DownEncoderBlock2D"] * 2,
                          up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, layers_per_block=1,
                          norm_num_groups=4, sample_size=64)
    x, _ = codec_pixels(32, seed=0)  # the pool refine_vae draws with seed 0
    error = lambda v: (v.decode(v.encode(x).latent_dist.mean).sample - x).pow(2).mean().item()
    with torch.no_grad():
        before = error(fresh)
    refine_vae(fresh, steps=15, pool=32, batch_size=8, lr=2e-3, log=None)
    with torch.no_grad():
        assert error(fresh) < 0.8 * before

    vae = copy.deepcopy(shipped_vae)
    stats = refine_vae(vae, steps=4, pool=32, batch_size=8, lr=1e-4, log=None)
    plain, _ = codec_pixels(32, seed=9, plain_only=True)
    assert anchor_drift(shipped_vae, vae, plain) < 0.1 and stats["anchor_rms"] < 0.1  # latent std is ~0.8


def test_shipped_codec_round_trips_every_detail_kind(shipped_vae):
    """Known answer for the shipped asset. Measured (benchmarks/lab.json, 60 subjects): 24.0 (checker)
    to 29.5 dB (two-tone) after refinement, against 20.2-25.3 dB for the first VAE; asserted here on
    12 other subjects with a 1 dB margin (the first VAE fails it on checker, dots and stripes)."""
    table = codec_table(shipped_vae, seed=777, n_subjects=12)["per_detail"]
    assert table["plain"]["psnr_db"] >= 29.0, table
    for detail, row in table.items():
        if not detail.startswith("detail colour"):
            assert row["psnr_db"] >= 23.0, (detail, row)
