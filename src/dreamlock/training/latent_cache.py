"""Image latents cached on disk, so a resumed or restarted run does not encode its images again.

``RUN/cache/latents/<key>.safetensors`` holds one image at one training size: its latents, and its
mirror image's when flipping is on. The key hashes everything the latents depend on: the image
file's bytes, the size, the flip setting, what was encoded (``latents``, or a family's
``condition``), the family and the VAE (its config and a sample of its weights), and the cache
version. A changed image, size or base model therefore misses the cache instead of reading stale
latents.

Images are encoded in chunks; after each chunk, every image of it is written to a scratch name and
renamed into place, so a run killed while encoding keeps the chunks it finished and never leaves a
half-written entry (scratch files of a killed run are removed at the next start). An entry that
cannot be read is encoded again. A write that fails (disk full) warns once and the run goes on
without caching.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dreamlock.progress import warn
from dreamlock.training.dataset import load_pixels, to_model_range

CACHE_DIR = Path("cache") / "latents"
VERSION = "1"  # bump when the pixels -> latents path changes (load_pixels, to_model_range)
CHUNK = 8  # images per encoder call: bounds memory at 512-1024 px, and the work a kill can lose


def vae_fingerprint(adapter) -> str:
    """The family and its VAE: config, dtype and a strided sample of every weight (cheap, and
    different for any retrained or converted VAE)."""
    digest = hashlib.sha1(f"{VERSION}:{adapter.name}".encode())
    vae = adapter.vae
    if vae is not None:
        digest.update(json.dumps(dict(vae.config), sort_keys=True, default=str).encode())
        for name, param in sorted(vae.state_dict().items()):
            flat = param.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 64)].float().cpu()
            digest.update(f"{name}{tuple(param.shape)}{param.dtype}".encode())
            digest.update(sample.numpy().tobytes())
    return digest.hexdigest()


class LatentCache:
    """The latent cache of one run folder for one loaded model (``adapter``)."""

    def __init__(self, run_dir: Path, adapter):
        self.folder = Path(run_dir) / CACHE_DIR
        self.vae = vae_fingerprint(adapter)
        self.writable = True
        for stale in self.folder.glob(".*.tmp"):  # a run killed mid-write
            stale.unlink(missing_ok=True)

    def key(self, path: Path, size: tuple[int, int], flip: bool, kind: str) -> str:
        digest = hashlib.sha1(Path(path).read_bytes())
        digest.update(json.dumps([self.vae, list(size), flip, kind]).encode())
        return digest.hexdigest()

    def load(self, key: str, flip: bool) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        file = self.folder / f"{key}.safetensors"
        if not file.is_file():
            return None
        try:
            found = load_file(str(file))
            entry = found["latents"], found.get("flipped")
        except (OSError, SafetensorError, KeyError):
            return None
        return entry if (entry[1] is not None) == flip else None

    def store(self, key: str, latents: torch.Tensor, flipped: torch.Tensor | None) -> None:
        if not self.writable:
            return
        tensors = {"latents": latents.clone(memory_format=torch.contiguous_format)}
        if flipped is not None:
            tensors["flipped"] = flipped.clone(memory_format=torch.contiguous_format)
        scratch = self.folder / f".{key}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            save_file(tensors, str(scratch))
            scratch.replace(self.folder / f"{key}.safetensors")
        except OSError as e:
            scratch.unlink(missing_ok=True)
            self.writable = False
            warn(f"could not write the latent cache in {self.folder} ({e.strerror or e}); training goes on "
                 "without it, so a restarted run encodes its images again")


def encode_cached(encode: Callable[[torch.Tensor], torch.Tensor], paths: list[Path], size: tuple[int, int],
                  flip: bool, kind: str, cache: LatentCache | None, bar=None,
                  chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Latents of ``paths`` at ``size`` (and of their mirror images when ``flip``): read from
    ``cache`` where it has them, the rest encoded in chunks and stored after each chunk."""
    keys = [cache.key(p, size, flip, kind) for p in paths] if cache is not None else [None] * len(paths)
    found = [cache.load(k, flip) if cache is not None else None for k in keys]
    missing = [i for i, entry in enumerate(found) if entry is None]
    if bar is not None:
        bar.advance(len(paths) - len(missing))
    for start in range(0, len(missing), chunk):
        part = missing[start:start + chunk]
        pixels = to_model_range(load_pixels([paths[i] for i in part], size))
        with torch.no_grad():
            latents = encode(pixels).cpu()
            flipped = encode(pixels.flip(-1)).cpu() if flip else None
        for j, i in enumerate(part):
            found[i] = latents[j], None if flipped is None else flipped[j]
            if cache is not None:
                cache.store(keys[i], *found[i])
        if bar is not None:
            bar.advance(len(part))
    latents = torch.stack([entry[0] for entry in found])
    return latents, torch.stack([entry[1] for entry in found]) if flip else None
