"""Stable Diffusion 1.x / 2.x: one CLIP (SD1) or OpenCLIP (SD2) text encoder, a UNet, a VAE.

Epsilon (SD1, SD2-base) or v-prediction (SD2 768) comes from the scheduler config through the
objective; the text encoder's last hidden states condition the UNet.
"""

from __future__ import annotations

import torch
from diffusers import StableDiffusionPipeline

from dreamlock.families.base import ModelFamily, TextEncoderSlot
from dreamlock.families.conditioning import Conditioning


class SDAdapter(ModelFamily):
    name = "sd"
    pipeline_class = StableDiffusionPipeline
    text_encoder_slots = (TextEncoderSlot("text_encoder", "tokenizer", "lora_te", "clip_l"),)
    pipeline_kwargs = {"requires_safety_checker": False}
    load_kwargs = {"safety_checker": None, "requires_safety_checker": False}

    @classmethod
    def single_file_text_layout(cls, pipe) -> dict[str, tuple[str, str]]:
        """SD1's OpenAI CLIP (quick GELU) under ``cond_stage_model.transformer.``; SD2's OpenCLIP
        (GELU) under ``cond_stage_model.model.``."""
        if getattr(pipe.text_encoder.config, "hidden_act", "quick_gelu") == "gelu":
            return {"text_encoder": ("cond_stage_model.model.", "openclip")}
        return {"text_encoder": ("cond_stage_model.transformer.", "clip")}

    def encode_text(self, prompts: list[str]) -> Conditioning:
        text = self.text_encoders()[0]
        ids = self.tokenize(text, prompts).to(text.encoder.device)
        return Conditioning(text.encoder(ids)[0])

    def predict(self, noisy: torch.Tensor, t: torch.Tensor, cond: Conditioning,
                meta: torch.Tensor | None = None) -> torch.Tensor:
        return self.denoiser(noisy, t, encoder_hidden_states=cond.embeds).sample
