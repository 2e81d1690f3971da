"""diffusers and diffusers-lora exports. Tiny random models: plumbing (fusing, tokens, loading), not quality.

Same-image tolerance: max abs difference <= 1e-5 (images in [0, 1], fp32, CPU): fused weights
and an unfused LoRA differ only by float rounding.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from export_helpers import ALPHA, RANK, image, load_pipe
from dreamlock.exporting import export

SAME = 1e-5


def test_diffusers_export_of_lora_run_is_base_plus_lora(runs, out_dir, base_image, lora_reference_image):
    folder = export(runs.lora, "diffusers", out_dir / "pipe")
    assert (folder / "model_index.json").is_file()
    assert not list(folder.rglob("*.bin"))
    exported = image(load_pipe(folder))
    assert np.abs(lora_reference_image - base_image).max() > 1e-2
    diff = np.abs(exported - lora_reference_image).max()
    assert diff <= SAME, diff


def test_diffusers_lora_export_loads_with_load_lora_weights(runs, out_dir, lora_reference_image):
    folder = export(runs.lora_nometa, "diffusers-lora", out_dir / "lora", lora_scale=0.5)
    with safe_open(str(folder / "pytorch_lora_weights.safetensors"), "pt") as f:
        meta = json.loads(f.metadata()["lora_adapter_metadata"])
    assert meta["unet.r"] == RANK and meta["unet.lora_alpha"] == ALPHA  # alpha from config.toml, now in the file
    original = load_file(str(runs.lora_nometa / "final" / "pytorch_lora_weights.safetensors"))
    exported = load_file(str(folder / "pytorch_lora_weights.safetensors"))
    assert set(original) == set(exported)
    key = "unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_k.lora_B.weight"
    assert torch.equal(exported[key], original[key] * 0.5)
    folder = export(runs.lora, "diffusers-lora", out_dir / "lora2")
    pipe = load_pipe(runs.base)
    pipe.load_lora_weights(str(folder))
    diff = np.abs(image(pipe) - lora_reference_image).max()
    assert diff <= SAME, diff


def test_diffusers_lora_export_of_pivotal_run_carries_the_embeddings(runs, out_dir):
    folder = export(runs.pivotal, "diffusers-lora", out_dir / "piv")
    assert sorted(p.name for p in folder.iterdir()) == ["learned_embeds.safetensors", "pytorch_lora_weights.safetensors"]
    pipe = load_pipe(runs.base)
    pipe.load_textual_inversion(str(folder))  # finds learned_embeds.safetensors, token from the file
    assert pipe.tokenizer.convert_tokens_to_ids("<pvt>") != pipe.tokenizer.unk_token_id


def test_diffusers_export_of_ti_run_has_the_token(runs, out_dir):
    folder = export(runs.ti, "diffusers", out_dir / "pipe", dtype="fp16")
    pipe = load_pipe(folder, torch.float16)
    assert pipe.unet.dtype == torch.float16
    original = load_file(str(runs.ti / "final" / "learned_embeds.safetensors"))["<dlk>"]
    ids = pipe.tokenizer.convert_tokens_to_ids(["<dlk>", "<dlk>_1"])
    assert pipe.tokenizer.unk_token_id not in ids
    assert torch.equal(pipe.text_encoder.get_input_embeddings().weight[ids], original.half())
    assert ids[0] in pipe.tokenizer("a photo of <dlk> dog").input_ids


def test_diffusers_export_of_pivotal_and_full_runs(runs, out_dir):
    folder = export(runs.pivotal, "diffusers", out_dir / "piv")
    pipe = load_pipe(folder)
    assert pipe.tokenizer.convert_tokens_to_ids("<pvt>") != pipe.tokenizer.unk_token_id
    folder = export(runs.full, "diffusers", out_dir / "full", dtype="bf16")
    pipe = load_pipe(folder, torch.bfloat16)
    original = load_pipe(runs.full / "final" / "pipeline")
    sa, sb = pipe.unet.state_dict(), original.unet.state_dict()
    assert all(torch.equal(sa[k], sb[k].to(torch.bfloat16)) for k in sb)
