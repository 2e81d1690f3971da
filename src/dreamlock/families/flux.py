"""FLUX.1 (dev / schnell): a double- and single-stream transformer over 16-channel latents packed
into 2×2 patches, conditioned on T5's states and CLIP's pooled output, trained by rectified flow.

Inside :meth:`predict` (the loop sees plain [B, C, H, W] latents): packing and unpacking, the image
position ids, zero text ids, timesteps / 1000, and for guidance-distilled models (dev) the guidance
value as an input (``guidance_scale`` of the run; at sampling, the pipeline's ``guidance_scale``).
Only CLIP learns tokens (textual inversion, pivotal tuning); T5 stays frozen.
"""

from __future__ import annotations

import torch
from diffusers import FluxPipeline

from dreamlock.families.base import TextEncoderSlot
from dreamlock.families.conditioning import Conditioning
from dreamlock.families.flow import FlowFamily
from dreamlock.families.flux_layout import bfl_name, transformer_to_bfl


class FluxAdapter(FlowFamily):
    name = "flux"
    pipeline_class = FluxPipeline
    kohya_base_model_version = "flux1"
    text_encoder_slots = (
        TextEncoderSlot("text_encoder", "tokenizer", "lora_te1", "clip_l"),
        TextEncoderSlot("text_encoder_2", "tokenizer_2", "lora_te2", "t5", tunable=False),
    )
    max_sequence_length = 512
    default_guidance = 3.5  # FLUX.1-dev's distilled guidance
    trains_with_guidance = True
    kohya_denoiser_name = staticmethod(bfl_name)
    #: BFL's single file (``flux1-dev.safetensors``): the transformer alone, unprefixed; ComfyUI and Forge
    #: load CLIP, T5 and the VAE as separate files
    single_file_denoiser = staticmethod(transformer_to_bfl)
    single_file_denoiser_prefix = ""
    single_file_has_vae = False

    @classmethod
    def single_file_text_layout(cls, pipe) -> dict[str, tuple[str, str]]:
        return {}
    #: the distilled guidance fed while training unless ``guidance_scale`` says otherwise (diffusers' scripts)
    default_train_guidance = 3.5

    def __init__(self, pipe):
        super().__init__(pipe)
        self.train_guidance = self.default_train_guidance

    def configure(self, config) -> None:
        super().configure(config)
        self.train_guidance = config.guidance_scale or self.default_train_guidance

    @property
    def native_resolution(self) -> int:
        """The VAE's ``sample_size`` (1024 for FLUX.1); the transformer's config has no size."""
        return int(getattr(self.vae_config, "sample_size", 1024))

    def encode_text(self, prompts: list[str]) -> Conditioning:
        clip = self.text_encoders()[0]
        ids = self.tokenize(clip, prompts).to(clip.encoder.device)
        pooled = clip.encoder(ids).pooler_output
        t5 = self.frozen_text_encoders()[0]
        t5_ids = self.tokenize(t5, prompts, self.max_sequence_length)
        return Conditioning(t5.encoder(t5_ids.to(t5.encoder.device))[0], pooled)

    def predict(self, noisy: torch.Tensor, t: torch.Tensor, cond: Conditioning,
                meta: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = noisy.shape
        packed = FluxPipeline._pack_latents(noisy, b, c, h, w)
        image_ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, noisy.device, noisy.dtype)
        text_ids = torch.zeros(cond.embeds.shape[1], 3, device=noisy.device, dtype=noisy.dtype)
        guidance = None
        if self.denoiser.config.guidance_embeds:
            guidance = torch.full((b,), self.train_guidance, device=noisy.device, dtype=torch.float32)
        out = self.denoiser(hidden_states=packed, timestep=t / 1000, guidance=guidance, pooled_projections=cond.pooled,
                            encoder_hidden_states=cond.embeds, txt_ids=text_ids, img_ids=image_ids,
                            return_dict=False)[0]
        vsf = self.vae_scale_factor
        return FluxPipeline._unpack_latents(out, h * vsf, w * vsf, vsf)
