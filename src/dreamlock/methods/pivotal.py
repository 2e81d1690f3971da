"""Pivotal tuning: textual inversion and LoRA trained together. The LoRA file and the embeddings
file are saved side by side in the run; `export --format kohya-lora` bundles them in one file."""

from __future__ import annotations

from pathlib import Path

import torch

from dreamlock.methods.base import Method
from dreamlock.methods.lora import LoRA
from dreamlock.methods.ti import STATE_SUFFIX, TextualInversion


class PivotalTuning(Method):
    name = "pivotal"
    produces = ("lora", "embeddings")
    prior_modes = ("class_images", "prior_prediction")
    learns_token = True
    summary = "trained a LoRA and new tokens (pivotal tuning)"

    def __init__(self, adapter, config):
        super().__init__(adapter, config)
        self.ti = TextualInversion(adapter, config)
        self.lora = LoRA(adapter, config)

    @property
    def trains_text_encoder(self) -> bool:
        return True

    def trainable_modules(self) -> list[torch.nn.Module]:
        return list(dict.fromkeys(self.lora.trainable_modules() + self.ti.trainable_modules()))

    def param_groups(self) -> list[dict]:
        return self.lora.param_groups() + self.ti.param_groups()

    def rewrite_prompt(self, prompt: str) -> str:
        return self.ti.rewrite_prompt(prompt)

    def after_optimizer_step(self) -> None:
        self.ti.after_optimizer_step()

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return self.lora.trainable_state() | self.ti.trainable_state()

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        self.ti.load_trainable_state({k: v for k, v in state.items() if k.endswith(STATE_SUFFIX)})
        self.lora.load_trainable_state({k: v for k, v in state.items() if not k.endswith(STATE_SUFFIX)})

    def save_final(self, final_dir: Path) -> list[str]:
        self.lora.save_final(final_dir)
        return self.ti.save_final(final_dir)

    def base_prediction(self, fn):
        return self.lora.base_prediction(fn)
