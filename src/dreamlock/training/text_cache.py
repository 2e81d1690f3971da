"""Prompt embeddings cached on disk, then the text encoders and the VAE freed.

When no text encoder trains, every prompt the loop will encode is known before the first step (the
instance captions, the class prompt, the empty prompt of caption dropout): they are encoded once
and kept in ``RUN/cache/text_embeddings.safetensors`` (a resumed run reads them back instead of
running the encoders again). The images are already latents by then. So the text encoders (T5-XXL
in SD3 / FLUX.1 is the largest part after the transformer) and the VAE are dropped from the model
before training starts.

They stay loaded when something later needs them: sample images or checkpoint selection during
training (they generate from new prompts), or a method that saves the whole pipeline (``full``).
"""

from __future__ import annotations

import gc
import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from dreamlock.atomic import atomic_path
from dreamlock.families.conditioning import Conditioning

CACHE_FILE = Path("cache") / "text_embeddings.safetensors"


def training_prompts(data, method, config) -> list[str]:
    """Every prompt the loop can ask for: instance and class prompts as the method rewrites them, the
    empty prompt when captions drop out, the class prompt of the prior-prediction mode."""
    prompts = set()
    for bucket in data.buckets:
        for images in (bucket.instance, bucket.klass):
            prompts |= set(images.prompts) if images is not None else set()
    if config.caption_dropout > 0:
        prompts.add("")
    if config.with_prior_preservation and config.effective_class_prompt:
        prompts.add(config.effective_class_prompt)
    return sorted({method.rewrite_prompt(p) for p in prompts})


def may_release(config, method) -> bool:
    """Whether the text encoders and the VAE can go: nothing after this point encodes a new prompt
    or decodes an image."""
    return not (method.trains_text_encoder or "pipeline" in method.produces or config.validation_prompt
                or config.select_best or config.early_stop_patience)


def _key(prompt: str) -> str:
    return hashlib.sha1(prompt.encode()).hexdigest()[:16]


def _identity(config) -> str:
    return json.dumps({"base": str(config.base), "family": config.family}, sort_keys=True)


def load_cache(path: Path, config) -> dict[str, Conditioning]:
    """The cached embeddings of this base model, or nothing (missing, other base, unreadable)."""
    if not path.is_file():
        return {}
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            if meta.get("identity") != _identity(config):
                return {}
            out, names = {}, set(f.keys())
            for prompt in json.loads(meta["prompts"]):
                k = _key(prompt)
                pooled = f.get_tensor(f"{k}.pooled") if f"{k}.pooled" in names else None
                out[prompt] = Conditioning(f.get_tensor(f"{k}.embeds"), pooled)
            return out
    except (OSError, ValueError, KeyError):
        return {}


def save_cache(path: Path, config, cache: dict[str, Conditioning]) -> None:
    tensors = {}
    for prompt, cond in cache.items():
        tensors[f"{_key(prompt)}.embeds"] = cond.embeds.detach().cpu().contiguous()
        if cond.pooled is not None:
            tensors[f"{_key(prompt)}.pooled"] = cond.pooled.detach().cpu().contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as scratch:
        save_file(tensors, str(scratch), metadata={"identity": _identity(config), "prompts": json.dumps(sorted(cache))})


def cache_and_release(prompts, data, method, config, run_dir: Path) -> bool:
    """Fill ``prompts`` (a caching ``PromptEncoder``) with every training prompt, from the run's
    cache file where it has them, save the file, and drop the text encoders and the VAE. Returns
    whether they were dropped. When they must stay (samples, ``select_best``) and ``offload_frozen``
    is set, the prompts are cached the same way and the frozen modules go to the CPU instead."""
    adapter = prompts.adapter
    releasing = may_release(config, method)
    if prompts.cache is None or not (releasing or config.offload_frozen):
        return False
    path = run_dir / CACHE_FILE
    device = adapter.denoiser.device
    prompts.cache.update({p: c.to(device) for p, c in load_cache(path, config).items()})
    stored = len(prompts.cache)
    prompts(training_prompts(data, method, config))  # encodes what the file lacked
    if len(prompts.cache) > stored:
        save_cache(path, config, prompts.cache)
    if not releasing:
        adapter.park()
        return False
    adapter.release(text_encoders=True, vae=True)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return True
