"""Stable Diffusion XL: two text encoders (CLIP ViT-L and OpenCLIP bigG), a UNet with pooled-text
and size/crop conditioning, a VAE.

Prompts: the penultimate hidden states of both encoders, joined along the feature axis; the pooled
(projected) output of the second. The UNet's ``time_ids`` are (original size, crop top-left,
target size), from each training image's ``meta`` (``training/buckets.py``: `prepare`'s report).
"""

from __future__ import annotations

import torch
from diffusers import StableDiffusionXLPipeline

from dreamlock.families.base import ModelFamily, TextEncoderSlot
from dreamlock.families.conditioning import Conditioning


class SDXLAdapter(ModelFamily):
    name = "sdxl"
    pipeline_class = StableDiffusionXLPipeline
    kohya_base_model_version = "sdxl_base_v1-0"
    text_encoder_slots = (
        TextEncoderSlot("text_encoder", "tokenizer", "lora_te1", "clip_l"),
        TextEncoderSlot("text_encoder_2", "tokenizer_2", "lora_te2", "clip_g"),
    )

    @classmethod
    def single_file_text_layout(cls, pipe) -> dict[str, tuple[str, str]]:
        """The SGM layout: CLIP ViT-L, then OpenCLIP bigG, as ``conditioner.embedders``."""
        return {"text_encoder": ("conditioner.embedders.0.transformer.", "clip"),
                "text_encoder_2": ("conditioner.embedders.1.model.", "openclip")}

    def encode_text(self, prompts: list[str]) -> Conditioning:
        states, pooled = [], None
        for text in self.text_encoders():
            ids = self.tokenize(text, prompts).to(text.encoder.device)
            out = text.encoder(ids, output_hidden_states=True)
            states.append(out.hidden_states[-2])
            pooled = out[0]  # the last encoder's projected pooled output
        return Conditioning(torch.cat(states, dim=-1), pooled)

    def time_ids(self, latents: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        """(original h, w, crop top, left, target h, w) per image; without ``meta`` an uncropped
        image of the target size."""
        h, w = (s * self.vae_scale_factor for s in latents.shape[-2:])
        target = torch.tensor([h, w], dtype=latents.dtype, device=latents.device).repeat(latents.shape[0], 1)
        if meta is None:
            meta = torch.cat([target, torch.zeros_like(target)], dim=1)
        return torch.cat([meta.to(target), target], dim=1)

    def predict(self, noisy: torch.Tensor, t: torch.Tensor, cond: Conditioning,
                meta: torch.Tensor | None = None) -> torch.Tensor:
        time_ids = self.time_ids(noisy, meta)
        added = {"text_embeds": cond.pooled, "time_ids": time_ids}
        return self.denoiser(noisy, t, encoder_hidden_states=cond.embeds, added_cond_kwargs=added).sample
