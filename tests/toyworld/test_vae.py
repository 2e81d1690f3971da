"""The toy VAE as a codec.

- plumbing: the training mixture and the refinement loop (a few steps on a tiny pool);
- shipped asset: the shipped codec round-trips subjects of every detail kind at the measured
  quality (benchmarks/lab.json), black details included (benchmarks/codec_refine.json), and plain
  renders as well as before (the denoiser's latent space is anchored)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from dreamlock.toyworld.base import ASSET_DIR
from dreamlock.toyworld.vae import (MIXTURE, anchor_drift, codec_pixels, codec_pool, codec_sample, codec_table, random_texture,
                                    reconstruction_loss, refine_vae)
from dreamlock.toyworld.vocab import DETAIL_COLOURS, DETAILS


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


def test_focus_draws_black_and_white_details_with_their_maps():
    """With focus 1 every subject look has a black or white detail; the detail map points at
    pixels of that colour (and is empty for plain objects and textures)."""
    rng = np.random.default_rng(3)
    dark_or_light = {"black": 0, "white": 0}
    for _ in range(60):
        image, kind, detail = codec_sample(rng, focus=1.0)
        if kind in ("plain", "texture"):
            assert detail.max() == 0.0
            continue
        core = np.asarray(image, np.float32)[detail > 0.99]
        if len(core) < 10:
            continue  # a tiny emblem
        colour = min(("black", "white"), key=lambda c: np.abs(core - np.asarray(DETAIL_COLOURS[c])).mean())
        assert np.abs(core - np.asarray(DETAIL_COLOURS[colour])).mean() < 30, kind
        dark_or_light[colour] += 1
    assert min(dark_or_light.values()) >= 5, dark_or_light
    pixels, kinds, details = codec_pool(8, seed=1)
    assert pixels.shape == (8, 3, 64, 64) and details.shape == (8, 1, 64, 64) and len(kinds) == 8


def test_detail_weight_scales_the_loss_where_the_detail_is():
    """Weight 1 everywhere is the plain loss; an error only inside a region weighted 5 costs 5x."""
    torch.manual_seed(0)
    target = torch.rand(2, 3, 16, 16) * 2 - 1
    region = torch.zeros(2, 1, 16, 16)
    region[..., 4:12, 4:12] = 1
    recon = target + 0.3 * region * torch.randn(2, 3, 16, 16)
    plain = reconstruction_loss(recon, target)
    assert torch.allclose(plain, reconstruction_loss(recon, target, torch.ones_like(region)))
    err = recon - target
    by_hand = err.pow(2).mean() + 0.5 * err.abs().mean() + 0.5 * (
        (err[..., 1:, :] - err[..., :-1, :]).abs().mean() + (err[..., :, 1:] - err[..., :, :-1]).abs().mean())
    assert torch.allclose(plain, by_hand)
    assert torch.allclose(reconstruction_loss(recon, target, 1 + 4 * region), 5 * plain)


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
    stats = refine_vae(vae, steps=4, pool=32, batch_size=8, lr=1e-4, log=None, detail_weight=4.0, focus=0.5)
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


def test_shipped_codec_keeps_black_details(shipped_vae):
    """Known answer for the shipped asset (the 2026-12-06 refinement, detail-weighted): black dots,
    stripes, checks and a black two-tone half survive the round trip. Five black-detail subjects
    neither tuned on nor benchmarked (fresh:55, 76, 84, 116, 150), one render per scene: the oracle
    accepts all 25 round trips; the previous VAE 10 of 25 (40%), so it fails this."""
    from dreamlock.evaluation.metrics import is_subject
    from dreamlock.toyworld.oracle import load_oracle
    from dreamlock.toyworld.render import render_look
    from dreamlock.toyworld.subjects import builtin_subject
    from dreamlock.toyworld.vae import round_trip_images
    from dreamlock.toyworld.vocab import SCENES

    oracle, accepted = load_oracle(), []
    for seed in (55, 76, 84, 116, 150):
        spec = builtin_subject(f"fresh:{seed}")
        assert spec.detail_colour == "black"
        refs = [render_look(spec.look(), "plain", 100 + i) for i in range(5)]
        views = [render_look(spec.look(), scene, 110 + i) for i, scene in enumerate(SCENES)]
        _, decoded = round_trip_images(shipped_vae, views)
        accepted += is_subject(oracle.embed(decoded), oracle.embed(refs), oracle.subject_threshold)
    assert np.mean(accepted) >= 0.8, accepted
