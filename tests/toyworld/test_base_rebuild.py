"""Plumbing of the toy base's one-command rebuild and of continued pretraining (a few steps each;
no learning is claimed: the quality of the shipped base is benchmarks/base_quality.py's job)."""

from __future__ import annotations

import json
import tomllib

import torch

from dreamlock.toyworld.base import CAPTION_DROPOUT, main


def test_rebuild_then_continue_with_caption_dropout(tmp_path):
    main(["--out", str(tmp_path / "b"), "--images", "24", "--vae-steps", "2", "--vae-batch", "4", "--batch", "4",
          "--steps", "2"])
    run = tmp_path / "b" / "run"
    assert json.loads((run / "run.json").read_text())["step"] == 2
    assert tomllib.loads((run / "config.toml").read_text())["caption_dropout"] == CAPTION_DROPOUT == 0.1

    main(["--out", str(tmp_path / "c"), "--from-model", str(run / "final" / "pipeline"), "--images", "24",
          "--batch", "4", "--steps", "2", "--lr", "1e-4", "--caption-dropout", "0.5"])
    cont = tmp_path / "c" / "run"
    config = tomllib.loads((cont / "config.toml").read_text())
    assert config["caption_dropout"] == 0.5 and config["use_ema"] is False and config["learning_rate"] == 1e-4
    assert json.loads((cont / "run.json").read_text())["step"] == 2
    summary = json.loads((tmp_path / "c" / "continue_summary.json").read_text())
    assert summary["steps_done"] == 2 and summary["cpu_capability"]


def test_widened_unet_draws_what_the_original_draws(tmp_path):
    """Plumbing: the widened copy has cross-attention at every level and, before any training,
    the same prediction as the shipped UNet."""
    from diffusers import UNet2DConditionModel

    from dreamlock.toyworld.base import shipped_base, widen_unet

    out = widen_unet(shipped_base(), tmp_path / "wide")
    old = UNet2DConditionModel.from_pretrained(shipped_base() / "unet", torch_dtype=torch.float32)
    new = UNet2DConditionModel.from_pretrained(out / "unet", torch_dtype=torch.float32)
    assert set(new.config.down_block_types) == {"CrossAttnDownBlock2D"}
    assert sum(p.numel() for p in new.parameters()) > sum(p.numel() for p in old.parameters())
    x, t, text = torch.randn(2, 4, 16, 16), torch.tensor([10, 700]), torch.randn(2, 16, 128)
    with torch.no_grad():
        assert torch.allclose(new(x, t, text).sample, old(x, t, text).sample, atol=1e-5)
