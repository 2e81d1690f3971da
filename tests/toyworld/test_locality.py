"""A local toy codec (dreamlock.toyworld.locality).

All plumbing: scene pairs show the same object in the same pose; the masked error; a few steps of
the locality fine-tune run and pull the scene render's object latents toward the plain render's;
the CLI's one-line errors. The local codec is measured (benchmarks/codec_locality.json), not
shipped, so there is no shipped-asset test here (benchmarks/RESULTS.md, "A local codec")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from dreamlock.toyworld.locality import (INSIDE, OTHER_SCENES, encode_means, localise_vae, locality_table, main,
                                         masked_mse, pair_pool, scene_pair)
from dreamlock.toyworld.subjects import builtin_subject


def test_scene_pair_shows_the_same_object_in_both_scenes():
    pair = scene_pair(builtin_subject("dotty-heart").look(), "night", np.random.default_rng(0))
    inside = np.kron(pair["cover"] >= INSIDE, np.ones((4, 4))).astype(bool)
    assert 10 < inside.sum() / 16 < 200  # latent cells fully inside the heart
    plain, night = pair["plain"].astype(float), pair["other"].astype(float)
    # same pixels inside the object (up to the renderer's brightness jitter and noise) ...
    assert np.abs(plain[inside] - night[inside]).mean() < 30
    # ... and a different scene around it
    outside = np.kron(pair["cover"] <= 1 - INSIDE, np.ones((4, 4))).astype(bool)
    assert np.abs(plain[outside] - night[outside]).mean() > 100
    assert np.allclose(pair["detail_plain"], pair["detail_other"])  # same pose, same dots


def test_pair_pool_mixes_plain_objects_and_subjects_over_every_other_scene():
    pairs = pair_pool(40, seed=3)
    assert pairs["plain"].shape == pairs["other"].shape == (40, 3, 64, 64)
    assert pairs["cover"].shape == (40, 1, 16, 16) and 0 <= pairs["cover"].min() and pairs["cover"].max() <= 1
    assert 0 < pairs["is_plain"].float().mean() < 1
    assert set(pairs["scene"].tolist()) == set(range(len(OTHER_SCENES)))
    assert "plain" not in OTHER_SCENES


def test_masked_mse_counts_only_the_masked_cells():
    a, b = torch.zeros(1, 4, 2, 2), torch.zeros(1, 4, 2, 2)
    b[..., 0, 0] = 2.0
    b[..., 1, 1] = 100.0  # outside the mask: ignored
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    assert masked_mse(a, b, mask).item() == pytest.approx(2.0)  # (4 + 0) / 2 cells


def _tiny_vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(8, 16, 16), down_block_types=["DownEncoderBlock2D"] * 3,
                         up_block_types=["UpDecoderBlock2D"] * 3, latent_channels=4, layers_per_block=1,
                         norm_num_groups=4, sample_size=64)


def test_localise_pulls_scene_latents_toward_the_plain_ones():
    """Plumbing on a tiny random VAE (latents 16x16 like the toy one): 30 steps with the locality
    term alone lower the latent difference inside objects between the two renders of a pair."""
    vae = _tiny_vae()
    pairs = pair_pool(32, seed=0)  # the pool localise_vae draws with seed 0

    def gap():
        inside = (pairs["cover"] >= INSIDE).float()
        return masked_mse(encode_means(vae, pairs["other"]), encode_means(vae, pairs["plain"]), inside).item()

    before = gap()
    record = localise_vae(vae, steps=30, pool=32, batch_pairs=8, lr=2e-3, anchor_weight=0.0, locality_weight=100.0, log=None)
    assert gap() < 0.5 * before
    assert record["steps"] == 30 and set(record["last_losses"]) == {"rec", "locality", "anchor"}
    table = locality_table(vae, pairs)
    assert set(table) == set(OTHER_SCENES) and all(row["latent_rms_inside"] >= 0 for row in table.values())


def test_cli_needs_an_output_and_a_vae_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--steps", "1"])
    assert e.value.code == 2 and "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--steps", "1", "--out", str(tmp_path / "o"), "--vae", str(tmp_path)])
    assert e.value.code == 2 and "not a VAE folder" in capsys.readouterr().err

