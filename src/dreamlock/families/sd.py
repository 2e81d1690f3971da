"""Stable Diffusion 1.x / 2.x adapter: one CLIP text encoder, a UNet, a VAE, DDPM noise.

Both epsilon and v-prediction (SD2) are read from the scheduler config. A method never asks which
family it runs on; it talks to the model through this adapter.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, StableDiffusionPipeline
from diffusers.training_utils import compute_snr

from dreamlock.loading import load_base_pipeline


class SDAdapter:
    """Holds the pipeline's components and does the family-specific maths of a training step."""

    name = "sd"

    def __init__(self, pipe: StableDiffusionPipeline):
        self.pipe = pipe
        self.unet = pipe.unet
        self.vae = pipe.vae
        self.text_encoder = pipe.text_encoder
        self.tokenizer = pipe.tokenizer
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)

    @classmethod
    def load(cls, base: str, base_config: str | None = None, allow_pickle: bool = False) -> "SDAdapter":
        return cls(load_base_pipeline(base, config=base_config, allow_pickle=allow_pickle))

    # ---- prompts -------------------------------------------------------------------------
    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        return self.tokenizer(
            prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
            truncation=True, return_tensors="pt",
        ).input_ids

    def encode_prompt(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(input_ids.to(self.text_encoder.device))[0]

    # ---- images --------------------------------------------------------------------------
    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [-1, 1] -> scaled latents (the distribution's mean, for reproducible caches)."""
        vae_dtype = next(self.vae.parameters()).dtype
        dist = self.vae.encode(pixels.to(self.vae.device, vae_dtype)).latent_dist
        return dist.mean.float() * self.vae.config.scaling_factor

    # ---- diffusion -----------------------------------------------------------------------
    @property
    def prediction_type(self) -> str:
        return self.noise_scheduler.config.prediction_type

    @property
    def num_train_timesteps(self) -> int:
        return self.noise_scheduler.config.num_train_timesteps

    def add_noise(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return self.noise_scheduler.add_noise(latents, noise, timesteps)

    def target(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "v_prediction":
            return self.noise_scheduler.get_velocity(latents, noise, timesteps)
        raise ValueError(f"unsupported prediction_type {self.prediction_type}")

    def predict(self, unet: torch.nn.Module, noisy: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return unet(noisy, timesteps, encoder_hidden_states=text).sample

    def min_snr_weights(self, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
        """Min-SNR-gamma loss weights (Hang et al. 2023), for epsilon or v targets."""
        snr = compute_snr(self.noise_scheduler, timesteps)
        weights = torch.clamp(snr, max=gamma) / snr
        if self.prediction_type == "v_prediction":
            weights = torch.clamp(snr, max=gamma) / (snr + 1)
        return weights

    # ---- sampling and saving -------------------------------------------------------------
    def sampling_pipeline(self) -> StableDiffusionPipeline:
        """A pipeline over the live (training) modules, with a fast multistep sampler."""
        pipe = StableDiffusionPipeline(
            vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer, unet=self.unet,
            scheduler=DPMSolverMultistepScheduler.from_config(self.pipe.scheduler.config),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def save_pipeline(self, out_dir: Path, unet: torch.nn.Module | None = None) -> None:
        """Save the full pipeline (diffusers folder, safetensors)."""
        pipe = StableDiffusionPipeline(
            vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer, unet=unet or self.unet,
            scheduler=self.pipe.scheduler, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.save_pretrained(out_dir, safe_serialization=True)
