"""LoRA (and DoRA) through peft on the denoiser, optionally on every text encoder of the family."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import get_peft_model_state_dict

from dreamlock.methods.base import Method, component_groups, copy_into, named_trainable_in


def lora_config(config, target_modules: list[str]) -> LoraConfig:
    return LoraConfig(
        r=config.rank,
        lora_alpha=config.lora_alpha or config.rank,
        lora_dropout=config.lora_dropout,
        use_dora=config.use_dora,
        init_lora_weights="gaussian",
        target_modules=target_modules,
    )


def add_lora(module: torch.nn.Module, lora: LoraConfig) -> None:
    """Add the adapter "default" through peft itself: transformers' own ``add_adapter`` refuses
    any peft older than the one its release was built against (5.24+ ask for an unreleased peft)."""
    inject_adapter_in_model(lora, module, adapter_name="default")
    if hasattr(module, "_hf_peft_config_loaded"):  # the flag add_adapter sets (diffusers and transformers)
        module._hf_peft_config_loaded = True


def set_lora_enabled(modules: list[torch.nn.Module], enabled: bool) -> None:
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, BaseTunerLayer):
                layer.enable_adapters(enabled)


class LoRA(Method):
    name = "lora"
    produces = ("lora",)
    prior_modes = ("class_images", "prior_prediction")
    summary = "trained a LoRA"

    def __init__(self, adapter, config):
        super().__init__(adapter, config)
        self.components = adapter.trainable_components(config.train_text_encoder)
        for name, module in self.components.items():
            if name == adapter.denoiser_name:
                targets = config.lora_target_modules or list(adapter.denoiser_lora_targets)
            else:
                targets = config.text_encoder_target_modules or list(adapter.text_lora_targets)
            add_lora(module, lora_config(config, targets))
        if config.gradient_checkpointing:
            adapter.denoiser.enable_gradient_checkpointing()

    @property
    def trains_text_encoder(self) -> bool:
        return self.config.train_text_encoder

    def trainable_modules(self) -> list[torch.nn.Module]:
        return list(self.components.values())

    def _params(self) -> dict[str, torch.Tensor]:
        return {n: p for n, p in named_trainable_in(self.components).items() if "lora_" in n}

    def param_groups(self) -> list[dict]:
        c = self.config
        return component_groups(self._params(), self.adapter.denoiser_name, c.learning_rate,
                                c.text_encoder_lr or c.learning_rate)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self._params().items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        copy_into(self._params(), state)

    def save_final(self, final_dir: Path) -> list[str]:
        # pivotal tuning resizes the vocabulary, and peft would then save the whole token table
        # ("auto"); the learned rows are saved in their own file instead
        layers = {name: get_peft_model_state_dict(m, save_embedding_layers=False) for name, m in self.components.items()}
        metadata = {name: m.peft_config["default"].to_dict() for name, m in self.components.items()}
        self.adapter.save_lora(final_dir, layers, metadata)
        return []

    @contextmanager
    def _adapters_off(self):
        modules = self.trainable_modules()
        set_lora_enabled(modules, False)
        try:
            yield
        finally:
            set_lora_enabled(modules, True)

    def base_prediction(self, fn):
        """The frozen base model's output: the same modules with the LoRA switched off."""
        with torch.no_grad(), self._adapters_off():
            return fn()
