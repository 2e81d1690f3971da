"""Sample images while training (one grid per prompt set and step), like the seed's auto test."""

from __future__ import annotations

from pathlib import Path

import torch

from dreamlock.grid import make_grid


@torch.no_grad()
def save_samples(pipe, prompts: list[str], config, out_dir: Path, step: int) -> Path:
    """Generate ``num_validation_images`` per prompt (seeds 0..n-1) and save one grid (a row per prompt)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    n = config.num_validation_images
    images = []
    for prompt in prompts:
        gens = [torch.Generator().manual_seed(i) for i in range(n)]
        images += pipe([prompt] * n, height=config.resolution, width=config.resolution, generator=gens,
                       num_inference_steps=config.validation_inference_steps,
                       guidance_scale=config.validation_guidance).images
    path = out_dir / f"step-{step:06d}.png"
    make_grid(images, cols=n).save(path)
    return path
