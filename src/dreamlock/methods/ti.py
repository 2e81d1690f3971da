"""Textual inversion: new placeholder token(s) initialised from the class word; only their
embedding rows train, in every text encoder of the family (two for SDXL). Saved in the family's
embeddings format (``{token: [n_vectors, dim]}`` for one encoder, ``clip_l`` / ``clip_g`` for two)."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from dreamlock.methods.base import Method
from dreamlock.runs import EMBEDDINGS_FILE

STATE_SUFFIX = ".token_embeddings"


def placeholder_token(tokenizer, trigger: str) -> str:
    """The trigger itself if the tokenizer does not know it as one token, else ``<trigger>``."""
    ids = tokenizer(trigger, add_special_tokens=False).input_ids
    known = len(ids) == 1 or trigger in tokenizer.get_vocab()
    return f"<{trigger}>" if known else trigger


def expand_trigger(prompt: str, trigger: str, tokens: list[str]) -> str:
    """Replace the trigger word in a prompt by the placeholder token sequence."""
    return re.sub(rf"(?<![\w<]){re.escape(trigger)}(?![\w>])", " ".join(tokens), prompt)


class TokenTable:
    """The new tokens' rows in one text encoder's embedding table; the other rows stay frozen."""

    def __init__(self, text, tokens: list[str], class_word: str | None, norm_cap: float | None = None):
        self.name = text.name
        added = text.tokenizer.add_tokens(tokens)
        if added != len(tokens):
            raise ValueError(f"tokenizer already has token(s) {tokens}; choose another --trigger")
        text.encoder.resize_token_embeddings(len(text.tokenizer))
        self.token_ids = text.tokenizer.convert_tokens_to_ids(tokens)
        self.embedding = text.encoder.get_input_embeddings().weight
        with torch.no_grad():
            ids = text.tokenizer(class_word, add_special_tokens=False).input_ids if class_word else None
            self.embedding[self.token_ids] = self.embedding[ids].mean(0) if ids else self.embedding.mean(0)
        self.embedding.requires_grad_(True)
        self.original = self.embedding.detach().clone()
        #: the most each new row's norm may reach (``norm_cap`` x its initial norm), or None
        self.max_norm = None if norm_cap is None else norm_cap * self.original[self.token_ids].norm(dim=1)
        self._frozen_rows = torch.ones(self.embedding.shape[0], dtype=torch.bool)
        self._frozen_rows[self.token_ids] = False
        self.embedding.register_hook(self._mask_grad)

    def _mask_grad(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.masked_fill(self._frozen_rows.to(grad.device)[:, None], 0.0)

    def restore_frozen(self) -> None:
        with torch.no_grad():
            rows = self._frozen_rows.to(self.embedding.device)
            self.embedding[rows] = self.original.to(self.embedding.device)[rows]

    def cap_norms(self) -> None:
        """Scale each new row whose norm exceeds its cap back onto the cap (direction kept)."""
        if self.max_norm is None:
            return
        with torch.no_grad():
            rows = self.embedding[self.token_ids]
            cap = self.max_norm.to(rows)
            scale = (cap / rows.norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
            self.embedding[self.token_ids] = rows * scale[:, None]

    def learned(self) -> torch.Tensor:
        return self.embedding.detach()[self.token_ids].float().cpu().clone()

    def load(self, vectors: torch.Tensor) -> None:
        with torch.no_grad():
            self.embedding[self.token_ids] = vectors.to(self.embedding)


class TextualInversion(Method):
    name = "ti"
    produces = ("embeddings",)
    prior_modes = ()  # only the new token trains: nothing of the class can drift
    learns_token = True
    summary = "learned embeddings only (textual inversion)"

    def __init__(self, adapter, config):
        super().__init__(adapter, config)
        texts = adapter.text_encoders()
        base = placeholder_token(texts[0].tokenizer, config.trigger)
        self.tokens = [base] + [f"{base}_{i}" for i in range(1, config.num_vectors)]
        self.tables = [TokenTable(t, self.tokens, config.class_word, config.embedding_norm_cap) for t in texts]
        self.encoders = [t.encoder for t in texts]

    @property
    def trains_text_encoder(self) -> bool:
        return True

    def trainable_modules(self) -> list[torch.nn.Module]:
        return list(self.encoders)

    def param_groups(self) -> list[dict]:
        return [{"params": [t.embedding for t in self.tables], "lr": self.config.embedding_lr, "weight_decay": 0.0}]

    def rewrite_prompt(self, prompt: str) -> str:
        return expand_trigger(prompt, self.config.trigger, self.tokens)

    def after_optimizer_step(self) -> None:
        for table in self.tables:
            table.restore_frozen()
            table.cap_norms()

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {t.name + STATE_SUFFIX: t.learned() for t in self.tables}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        for table in self.tables:
            table.load(state[table.name + STATE_SUFFIX])

    def save_final(self, final_dir: Path) -> list[str]:
        vectors = {t.name: t.learned() for t in self.tables}
        save_file(self.adapter.embeddings_state(self.tokens[0], vectors), str(Path(final_dir) / EMBEDDINGS_FILE))
        return [self.tokens[0]]
