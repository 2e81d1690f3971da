"""The super-resolution stage at generation time: `generate BASE --upscale UPSCALER` redraws each
image at the upscaler's factor (an ``sd-upscale`` model: any ``StableDiffusionUpscalePipeline``; an
``if-sr`` model: DeepFloyd IF stage II; or a run of `dreamlock train --method sr`), with the same prompt and seed."""

from __future__ import annotations


import torch
from PIL import Image

from dreamlock.families import family_of_pipeline


class Upscaler:
    """A loaded upscaling pipeline with its default guidance and noise level."""

    def __init__(self, generator):
        self.pipe = generator.pipe
        self.family = family_of_pipeline(self.pipe)
        self.guidance = generator.default_guidance
        self.noise_level = self.family.sampling_noise_level

    @torch.no_grad()
    def upscale(self, images: list[Image.Image], prompt: str, seeds: list[int], steps: int = 30) -> list[Image.Image]:
        """Each image upscaled (image i with seed i)."""
        n = len(images)
        return self.pipe([prompt] * n, image=list(images), num_inference_steps=steps, guidance_scale=self.guidance,
                         noise_level=self.noise_level, **self.family.upscale_kwargs(images[0].size),
                         generator=[torch.Generator().manual_seed(s) for s in seeds]).images
