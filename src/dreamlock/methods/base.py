"""What every method provides to the training loop."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch

from dreamlock.families.base import ModelFamily

if TYPE_CHECKING:
    from dreamlock.training.config import TrainConfig


class Method:
    """Base class. Subclasses choose trainable parameters and how results are saved."""

    name = "base"
    #: what the run's ``final/`` holds: "pipeline", "lora" and/or "embeddings" (exports follow it)
    produces: ClassVar[tuple[str, ...]] = ()
    #: prior-preservation modes that fit; empty: prior preservation does not apply
    prior_modes: ClassVar[tuple[str, ...]] = ("class_images",)
    learns_token: ClassVar[bool] = False  # needs a trigger word to turn into a new token
    supports_ema: ClassVar[bool] = False  # trains the whole denoiser, so an EMA of it makes sense
    summary: ClassVar[str] = ""  # for messages: "run R <summary>, ..."
    #: the families the method trains (empty: any, the base model's own); a base of another family
    #: is converted when one of them lists it in ``converts_from``
    families: ClassVar[tuple[str, ...]] = ()

    def __init__(self, adapter: ModelFamily, config: "TrainConfig"):
        self.adapter = adapter
        self.config = config

    # --- set by subclasses ----------------------------------------------------------------
    @property
    def trains_text_encoder(self) -> bool:
        """True when text embeddings change during training (so they cannot be cached)."""
        return False

    def param_groups(self) -> list[dict]:
        raise NotImplementedError

    def trainable_modules(self) -> list[torch.nn.Module]:
        """Modules put in train mode and handed to accelerate."""
        raise NotImplementedError

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Every tensor that training changes (for checkpoints)."""
        raise NotImplementedError

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def save_final(self, final_dir: Path) -> list[str]:
        """Write the result into ``final_dir``; return learned tokens (if any)."""
        raise NotImplementedError

    # --- optional hooks -------------------------------------------------------------------
    def rewrite_prompt(self, prompt: str) -> str:
        """Map the user's prompt to what the text encoder should see (TI expands tokens)."""
        return prompt

    def after_optimizer_step(self) -> None:
        """Called after each optimizer step (TI restores the frozen embedding rows)."""

    def base_prediction(self, fn):
        """Run ``fn`` with the base model (the adapter switched off). Only LoRA methods can."""
        raise NotImplementedError(f"{self.name} cannot give the base model's prediction")


def freeze_all(adapter: ModelFamily) -> None:
    """Start every method from a fully frozen model; each then unfreezes what it trains."""
    for module in adapter.modules():
        module.requires_grad_(False)


def named_trainable(module: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{n}": p for n, p in module.named_parameters() if p.requires_grad}


def named_trainable_in(components: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """Trainable parameters of several components, keyed ``<component>.<parameter>``."""
    return {k: v for name, module in components.items() for k, v in named_trainable(module, name).items()}


def component_groups(params: dict[str, torch.Tensor], denoiser: str, lr: float, text_lr: float) -> list[dict]:
    """Optimizer groups: the denoiser's parameters at ``lr``, the text encoders' at ``text_lr``."""
    own = [p for n, p in params.items() if n.startswith(denoiser + ".")]
    text = [p for n, p in params.items() if not n.startswith(denoiser + ".")]
    return [{"params": own, "lr": lr}] + ([{"params": text, "lr": text_lr}] if text else [])


def copy_into(params: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> None:
    """Copy saved tensors into live parameters, checking that the key sets match."""
    missing = set(params) ^ set(state)
    if missing:
        raise ValueError(f"checkpoint does not match this run's trainable parameters: {sorted(missing)[:3]}")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state[name].to(p.device, p.dtype))
