"""Training objectives, apart from the adapters: how timesteps are drawn, how latents are noised,
what the denoiser must predict and how each sample's loss is weighted.

The loop asks the objective to noise, the adapter to predict and the objective for the target and
weights; it never asks which family or prediction type it runs.
"""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler
from diffusers.training_utils import (compute_density_for_timestep_sampling, compute_loss_weighting_for_sd3,
                                      compute_snr)


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


#: Timestep sampling / loss weighting schemes of diffusers' SD3 and FLUX scripts (``weighting_scheme``):
#: "logit_normal" and "mode" change how often each noise level is drawn; "sigma_sqrt" and "cosmap"
#: weight each sample's loss; "none" draws uniformly with equal weights.
FLOW_SCHEMES = ("none", "logit_normal", "mode", "sigma_sqrt", "cosmap")


class FlowMatchObjective:
    """Rectified flow (SD3, FLUX.1; Esser et al. 2024): ``x_t = (1 − σ) x + σ ε``, target ``ε − x``.

    Timesteps are the scheduler's training timesteps (``σ · 1000``, σ shifted by the scheduler's
    ``shift`` unless it shifts dynamically, as FLUX.1 does), picked at a density given by
    ``weighting_scheme`` — the sampling and weighting of diffusers' SD3 / FLUX DreamBooth scripts.
    """

    prediction_type = "flow"

    def __init__(self, scheduler_config: dict, weighting_scheme: str = "none", logit_mean: float = 0.0,
                 logit_std: float = 1.0, mode_scale: float = 1.29):
        if weighting_scheme not in FLOW_SCHEMES:
            raise ValueError(f"unknown weighting_scheme {weighting_scheme!r}; choose one of {FLOW_SCHEMES}")
        self.scheduler = FlowMatchEulerDiscreteScheduler.from_config(scheduler_config)
        self.weighting_scheme, self.logit_mean, self.logit_std, self.mode_scale = (
            weighting_scheme, logit_mean, logit_std, mode_scale)

    @property
    def num_train_timesteps(self) -> int:
        return self.scheduler.config.num_train_timesteps

    def sample_t(self, n: int, gen: torch.Generator) -> torch.Tensor:
        u = compute_density_for_timestep_sampling(self.weighting_scheme, n, self.logit_mean, self.logit_std,
                                                  self.mode_scale, generator=gen)
        index = (u * self.num_train_timesteps).long().clamp(0, self.num_train_timesteps - 1)
        return self.scheduler.timesteps[index].float()

    def sigma(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        sigma = (t / self.num_train_timesteps).to(like.dtype)
        return sigma.view(-1, *([1] * (like.ndim - 1)))

    def add_noise(self, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        sigma = self.sigma(t, latents)
        return (1.0 - sigma) * latents + sigma * noise

    def target(self, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return noise - latents

    def weights(self, t: torch.Tensor, snr_gamma: float | None) -> torch.Tensor | None:
        """``sigma_sqrt`` / ``cosmap`` loss weights; None (a plain mean) for the other schemes.
        ``snr_gamma`` is a DDPM setting (refused for flow families by the config checks)."""
        if self.weighting_scheme not in ("sigma_sqrt", "cosmap"):
            return None
        return compute_loss_weighting_for_sd3(self.weighting_scheme, t.float() / self.num_train_timesteps)
