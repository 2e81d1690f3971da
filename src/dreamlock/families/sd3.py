"""Stable Diffusion 3 / 3.5: an MMDiT transformer over 16-channel latents, two CLIP encoders
(ViT-L, bigG, both with projections) and an optional T5, trained by rectified flow.

Prompts (as diffusers' SD3 pipeline makes them): both CLIPs' penultimate states joined along the
features and zero-padded to T5's width, followed along the sequence by T5's states (zeros when
T5 is dropped to save memory); pooled = both CLIPs' projected outputs joined.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import StableDiffusion3Pipeline

from dreamlock.families.base import TextEncoderSlot
from dreamlock.families.conditioning import Conditioning
from dreamlock.families.flow import FlowFamily
from dreamlock.families.sd3_layout import mmdit_name, transformer_to_original


class SD3Adapter(FlowFamily):
    name = "sd3"
    pipeline_class = StableDiffusion3Pipeline
    kohya_base_model_version = "sd3"
    kohya_denoiser_name = staticmethod(mmdit_name)
    diffusers_reads_kohya = False
    single_file_denoiser = staticmethod(transformer_to_original)
    text_encoder_slots = (
        TextEncoderSlot("text_encoder", "tokenizer", "lora_te1", "clip_l"),
        TextEncoderSlot("text_encoder_2", "tokenizer_2", "lora_te2", "clip_g"),
        TextEncoderSlot("text_encoder_3", "tokenizer_3", "lora_te3", "t5", tunable=False, optional=True),
    )
    default_weighting = "logit_normal"  # diffusers' SD3 scripts' default
    max_sequence_length = 256
    default_guidance = 7.0

    @classmethod
    def single_file_text_layout(cls, pipe) -> dict[str, tuple[str, str]]:
        """Stability's layout (``sd3_medium_incl_clips_t5xxlfp16.safetensors``): each encoder in
        transformers' names under ``text_encoders.<name>.transformer.``; T5 only when the run has it."""
        layout = {"text_encoder": ("text_encoders.clip_l.transformer.", "clip"),
                  "text_encoder_2": ("text_encoders.clip_g.transformer.", "clip"),
                  "text_encoder_3": ("text_encoders.t5xxl.transformer.", "t5")}
        return {k: v for k, v in layout.items() if getattr(pipe, k, None) is not None}

    @property
    def patch_size(self) -> int:
        return int(self.denoiser.config.patch_size)

    @property
    def native_resolution(self) -> int:
        return int(self.denoiser.config.sample_size) * self.vae_scale_factor

    def _t5_states(self, prompts: list[str]) -> torch.Tensor:
        present = self.frozen_text_encoders()
        if not present:
            width = self.denoiser.config.joint_attention_dim
            return torch.zeros(len(prompts), self.max_sequence_length, width, device=self.denoiser.device)
        t5 = present[0]
        ids = self.tokenize(t5, prompts, self.max_sequence_length)
        return t5.encoder(ids.to(t5.encoder.device))[0]

    def encode_text(self, prompts: list[str]) -> Conditioning:
        states, pooled = [], []
        for text in self.text_encoders():
            ids = self.tokenize(text, prompts).to(text.encoder.device)
            out = text.encoder(ids, output_hidden_states=True)
            states.append(out.hidden_states[-2])
            pooled.append(out[0])
        clip = torch.cat(states, dim=-1)
        t5 = self._t5_states(prompts).to(clip)
        clip = F.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        return Conditioning(torch.cat([clip, t5], dim=-2), torch.cat(pooled, dim=-1))

    def predict(self, noisy: torch.Tensor, t: torch.Tensor, cond: Conditioning,
                meta: torch.Tensor | None = None) -> torch.Tensor:
        return self.denoiser(hidden_states=noisy, timestep=t, encoder_hidden_states=cond.embeds,
                             pooled_projections=cond.pooled, return_dict=False)[0]
