"""Training objectives, apart from the adapters: how timesteps are drawn, how latents are noised,
what the denoiser must predict and how each sample's loss is weighted.

The loop asks the objective to noise, the adapter to predict and the objective for the target and
weights; it never asks which family or prediction type it runs.
"""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr


#: Scheduler settings for zero terminal SNR (Lin et al. 2024, "Common diffusion noise schedules and
#: sample steps are flawed"): rescaled betas for training, trailing timesteps for sampling.
ZERO_TERMINAL_SNR = {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}


class DDPMObjective:
    """Discrete DDPM noise (SD1, SD2, SDXL): epsilon or v target, read from the scheduler config;
    min-SNR-gamma weighting (Hang et al. 2023) when asked."""

    def __init__(self, scheduler_config: dict):
        self.scheduler = DDPMScheduler.from_config(scheduler_config)

    @property
    def prediction_type(self) -> str:
        return self.scheduler.config.prediction_type

    @property
    def num_train_timesteps(self) -> int:
        return self.scheduler.config.num_train_timesteps

    def sample_t(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randint(0, self.num_train_timesteps, (n,), generator=gen)

    def add_noise(self, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.scheduler.add_noise(latents, noise, t)

    def target(self, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "v_prediction":
            return self.scheduler.get_velocity(latents, noise, t)
        raise ValueError(f"unsupported prediction_type {self.prediction_type}")

    def weights(self, t: torch.Tensor, snr_gamma: float | None) -> torch.Tensor | None:
        """Per-sample loss weights, or None for a plain mean."""
        if not snr_gamma:
            return None
        snr = compute_snr(self.scheduler, t)
        clipped = torch.clamp(snr, max=snr_gamma)
        return clipped / (snr + 1) if self.prediction_type == "v_prediction" else clipped / snr
