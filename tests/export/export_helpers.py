"""Constants and helpers shared by the export tests (a uniquely named module, so tests can import it)."""

from __future__ import annotations

import numpy as np
import torch

RANK, ALPHA = 4, 8
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
# every kind of UNet layer a LoRA can sit on: linear, 3x3 and 1x1 convs, time embedding, samplers
WIDE_UNET_TARGETS = ["to_q", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out", "conv1", "conv2",
                     "time_emb_proj", "conv_shortcut", "conv", "linear_1", "conv_in"]
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
PATTERNS = {"alpha_pattern": {"attn2.to_k": 1.0}, "rank_pattern": {"attn1.to_q": 2}}
PROMPT = "a photo of sks dog on the beach"


def load_pipe(path, dtype=torch.float32):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        str(path), dtype=dtype, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def image(pipe, prompt: str = PROMPT) -> np.ndarray:
    """Two sampling steps without classifier-free guidance (the conditional branch only), fixed seed, float numpy in [0, 1]."""
    with torch.no_grad():
        out = pipe(prompt, num_inference_steps=2, guidance_scale=1.0, generator=torch.Generator().manual_seed(0), output_type="np")
    return out.images
