"""Textual inversion: new placeholder token(s) initialised from the class word; only their
embedding rows train. Saved as ``{token: [n_vectors, dim]}`` (diffusers' TI format)."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from dreamlock.methods.base import Method
from dreamlock.runs import EMBEDDINGS_FILE


def placeholder_token(tokenizer, trigger: str) -> str:
    """The trigger itself if the tokenizer does not know it as one token, else ``<trigger>``."""
    ids = tokenizer(trigger, add_special_tokens=False).input_ids
    known = len(ids) == 1 or trigger in tokenizer.get_vocab()
    return f"<{trigger}>" if known else trigger


def expand_trigger(prompt: str, trigger: str, tokens: list[str]) -> str:
    """Replace the trigger word in a prompt by the placeholder token sequence."""
    return re.sub(rf"(?<![\w<]){re.escape(trigger)}(?![\w>])", " ".join(tokens), prompt)


class TextualInversion(Method):
    name = "ti"

    def __init__(self, adapter, config):
        super().__init__(adapter, config)
        tok = adapter.tokenizer
        base = placeholder_token(tok, config.trigger)
        self.tokens = [base] + [f"{base}_{i}" for i in range(1, config.num_vectors)]
        added = tok.add_tokens(self.tokens)
        if added != len(self.tokens):
            raise ValueError(f"tokenizer already has token(s) {self.tokens}; choose another --trigger")
        adapter.text_encoder.resize_token_embeddings(len(tok))
        self.token_ids = tok.convert_tokens_to_ids(self.tokens)
        self.embedding = adapter.text_encoder.get_input_embeddings().weight
        self._init_rows(config.class_word)
        self.embedding.requires_grad_(True)
        self.original = self.embedding.detach().clone()
        self._frozen_rows = torch.ones(self.embedding.shape[0], dtype=torch.bool)
        self._frozen_rows[self.token_ids] = False
        self.embedding.register_hook(self._mask_grad)

    def _init_rows(self, class_word: str | None) -> None:
        tok = self.adapter.tokenizer
        with torch.no_grad():
            if class_word:
                ids = tok(class_word, add_special_tokens=False).input_ids
                init = self.embedding[ids].mean(0)
            else:
                init = self.embedding.mean(0)
            self.embedding[self.token_ids] = init

    def _mask_grad(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.masked_fill(self._frozen_rows.to(grad.device)[:, None], 0.0)

    @property
    def trains_text_encoder(self) -> bool:
        return True

    def trainable_modules(self) -> list[torch.nn.Module]:
        return [self.adapter.text_encoder]

    def param_groups(self) -> list[dict]:
        return [{"params": [self.embedding], "lr": self.config.embedding_lr, "weight_decay": 0.0}]

    def rewrite_prompt(self, prompt: str) -> str:
        return expand_trigger(prompt, self.config.trigger, self.tokens)

    def after_optimizer_step(self) -> None:
        with torch.no_grad():
            rows = self._frozen_rows.to(self.embedding.device)
            self.embedding[rows] = self.original.to(self.embedding.device)[rows]

    def learned(self) -> torch.Tensor:
        return self.embedding.detach()[self.token_ids].float().cpu().clone()

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {"text_encoder.token_embeddings": self.learned()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.embedding[self.token_ids] = state["text_encoder.token_embeddings"].to(self.embedding)

    def save_final(self, final_dir: Path) -> list[str]:
        save_file({self.tokens[0]: self.learned()}, str(Path(final_dir) / EMBEDDINGS_FILE))
        return [self.tokens[0]]
