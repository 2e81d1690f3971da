"""The super-resolution stage: diffusers' ``StableDiffusionUpscalePipeline`` architecture (SD x4 upscaler).

The UNet takes the noisy latents and, beside them, the low-resolution image itself (pixels, the
size of the latents: the upscale factor is the VAE's downsampling), noised to a random
``noise_level`` by the pipeline's ``low_res_scheduler``; the noise level is the UNet's class label.
Training pairs are made from the subject's own images: the image is the target, its downscaled
copy the condition (``encode_condition``), so the stage learns to redraw the subject's fine detail
from a small picture of it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import StableDiffusionUpscalePipeline

from dreamlock.families.conditioning import Conditioning
from dreamlock.families.sd import SDAdapter

#: the key of the low-resolution image in a Conditioning's extras
IMAGE = "image"


class UpscaleAdapter(SDAdapter):
    name = "sd-upscale"
    pipeline_class = StableDiffusionUpscalePipeline
    condition_kind = "low_res"
    default_guidance = 9.0  # diffusers' default for the x4 upscaler
    #: the noise added to the low-resolution image when sampling (diffusers' default)
    sampling_noise_level = 20
    pipeline_kwargs = {}
    load_kwargs = {"safety_checker": None}
    usage = ("an upscaler: it redraws a low-resolution image at a higher one; chain it after a text-to-image "
             "model with `dreamlock generate BASE --prompt ... --upscale UPSCALER`")

    @property
    def upscale_factor(self) -> int:
        return self.vae_scale_factor

    @torch.no_grad()
    def encode_condition(self, pixels: torch.Tensor) -> torch.Tensor:
        """A training image, pixels in [-1, 1] -> its low-resolution copy (area-averaged by the
        upscale factor), the image the stage learns to upscale."""
        return F.avg_pool2d(pixels.float(), self.upscale_factor)

    def predict(self, noisy: torch.Tensor, t: torch.Tensor, cond: Conditioning,
                meta: torch.Tensor | None = None) -> torch.Tensor:
        """Noise augmentation as the pipeline samples it: a random noise level per example (torch's
        generator, which the loop seeds per step), added by the low-resolution scheduler."""
        image = cond.extras[IMAGE].to(noisy.device, noisy.dtype)
        levels = torch.randint(0, self.pipe.config.max_noise_level + 1, (image.shape[0],)).to(noisy.device)
        low = self.pipe.low_res_scheduler.add_noise(image, torch.randn(image.shape).to(image), levels)
        return self.denoiser(torch.cat([noisy, low], dim=1), t, encoder_hidden_states=cond.embeds,
                             class_labels=levels).sample
