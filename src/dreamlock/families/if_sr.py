"""DeepFloyd IF stage II: the super-resolution stage of a pixel-space cascade (diffusers'
``IFSuperResolutionPipeline``: IF-II-M / IF-II-L, 64 px -> 256 px).

There is no VAE: the UNet denoises pixels. Beside the noisy image it takes the low-resolution
image, enlarged to the output size (bilinear) and noised to a random ``noise_level`` by the
pipeline's ``image_noising_scheduler``; the noise level is the UNet's class label. The UNet also
predicts its variance (6 output channels, ``learned_range``): training fits the first three, the
noise, as diffusers' IF scripts do. Prompts go through T5 (frozen, 77 tokens, lower-cased as the
pipeline does). Training pairs are made from the subject's own images as for the SD upscaler
(``families/upscale.py``): the image is the target, its copy shrunk by the upscale factor the
condition.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import IFSuperResolutionPipeline

from dreamlock.families.base import ModelFamily, TextEncoderSlot
from dreamlock.families.conditioning import IMAGE, Conditioning


class IFSuperResolutionAdapter(ModelFamily):
    name = "if-sr"
    pipeline_class = IFSuperResolutionPipeline
    pixel_space = True
    condition_kind = "low_res"
    text_encoder_slots = (TextEncoderSlot("text_encoder", "tokenizer", "lora_te1", "t5", tunable=False),)
    default_guidance = 4.0  # the pipeline's default
    #: the noise added to the enlarged low-resolution image when sampling (the pipeline's default)
    sampling_noise_level = 250
    #: IF stage II upscales 64 px to 256 px
    upscale_factor = 4
    max_sequence_length = 77
    pipeline_kwargs = {"requires_safety_checker": False}
    load_kwargs = {"safety_checker": None, "feature_extractor": None, "watermarker": None,
                   "requires_safety_checker": False}
    usage = ("an upscaler: it redraws a low-resolution image at a higher one; chain it after a text-to-image "
             "model with `dreamlock generate BASE --prompt ... --upscale UPSCALER`")

    @classmethod
    def upscale_kwargs(cls, size: tuple[int, int]) -> dict:
        """The pipeline's output size is its UNet's sample size unless told: told the factor's."""
        return {"width": size[0] * cls.upscale_factor, "height": size[1] * cls.upscale_factor}

    @property
    def native_resolution(self) -> int:
        return int(self.denoiser.config.sample_size)

    def encode_text(self, prompts: list[str]) -> Conditioning:
        t5 = self.frozen_text_encoders()[0]
        ids = self.tokenize(t5, [p.lower().strip() for p in prompts], self.max_sequence_length).to(t5.encoder.device)
        mask = (ids != t5.tokenizer.pad_token_id).long()
        return Conditioning(t5.encoder(ids, attention_mask=mask)[0])

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixel space: the training target is the image itself, in [-1, 1]."""
        return pixels.float()

    def predict(self, noisy: torch.Tensor, t: torch.Tensor, cond: Conditioning,
                meta: torch.Tensor | None = None) -> torch.Tensor:
        """The predicted noise (the variance half of the output is not trained). The low-resolution
        image is enlarged and noised as the pipeline does it, at a random noise level per example
        over the range the pipeline accepts (torch's generator, seeded by the loop per step)."""
        low = cond.extras[IMAGE].to(noisy.device, noisy.dtype)
        upscaled = F.interpolate(low, noisy.shape[-2:], mode="bilinear", align_corners=True)
        steps = self.pipe.image_noising_scheduler.config.num_train_timesteps
        levels = torch.randint(0, steps, (noisy.shape[0],)).to(noisy.device)
        upscaled = self.pipe.image_noising_scheduler.add_noise(upscaled, torch.randn(upscaled.shape).to(upscaled),
                                                               levels)
        out = self.denoiser(torch.cat([noisy, upscaled], dim=1), t, encoder_hidden_states=cond.embeds,
                            class_labels=levels).sample
        return out[:, :noisy.shape[1]]
