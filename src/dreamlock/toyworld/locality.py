"""A local toy codec: an object's latents should not depend on the scene around it.

Measured on 2026-12-07 (benchmarks/RESULTS.md, "A local codec"; benchmarks/codec_locality.py): the
shipped toy VAE gives the same object pixels, in the same pose, latents that differ by 1.0-1.2 RMS
(latent std ~0.8) between the plain scene and the forest or the night, 0.1-0.2 on the beach and in
the snow. Subject photos are plain-scene shots, so a denoiser fine-tuned on them learns the
plain-scene code of the subject, and that code decoded inside a dark scene is a dark, broken object
(pasted into the forest or night latents, the oracle accepts none of the six benchmark subjects):
every subject, every method locked on beach/snow and failed in forest/night.

:func:`localise_vae` fine-tunes a VAE on pairs of renders that show one object in one pose on the
plain scene and on another scene: both must reconstruct, the scene render's latents inside the object
must equal the plain render's (``locality``), and plain objects keep the latents the old encoder gave
them on the plain scene and, on other scenes, outside the object (``anchor``). So the new code is the
old one made local; a denoiser pretrained on the old code then needs a continuation for objects
outside the plain scene (``python -m dreamlock.toyworld.base --from-model``; measured: 400 steps x 64
left the dark scenes smeared, 1,600 nearly clean).

    python -m dreamlock.toyworld.locality --steps 1500 --out DIR     # --ship replaces the shipped VAE

Not shipped (2026-12-07): two stages (1,500 + 1,500 steps) made the codec local (forest/night latent
RMS 1.03/1.21 -> 0.19/0.18; pasted plain-scene codes accepted as the subject in the dark scenes 0% ->
~50%), at a cost in round trips (accepted 87% -> 75%), and after the base's continuation the tuning
subject's LoRA did not lock better: the dots keep their colour in the dark scenes, but the body is
lost and the dots bleed into the stars (RESULTS).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dreamlock.progress import progress
from dreamlock.toyworld.render import SUPERSAMPLE, Look, random_labels, render_look_and_detail, sample_pose, shape_mask
from dreamlock.toyworld.subjects import make_subject
from dreamlock.toyworld.vae import (codec_table, decode_latents, encode_means, images_to_pixels, reconstruction_loss,
                                    take_step, warmup_cosine)
from dreamlock.toyworld.vocab import SCENES

#: The latent grid is the image side over this (the toy VAE downsamples 64 px to 16).
LATENT_STRIDE = 4
#: A latent cell is inside the object when the object covers at least this share of its pixels,
#: outside when at most ``1 - INSIDE``.
INSIDE = 0.99
#: Scenes a pair's second render is drawn on.
OTHER_SCENES = tuple(s for s in SCENES if s != "plain")


def scene_pair(look: Look, scene: str, rng: np.random.Generator, size: int = 64) -> dict[str, np.ndarray]:
    """``look`` in one random pose on the plain scene and on ``scene``: both images, both detail maps
    and the object's coverage of each latent cell ([size / 4] ** 2, in [0, 1])."""
    pose = sample_pose(rng, look.scale)
    plain, detail_plain = render_look_and_detail(look, "plain", rng, size, pose)
    other, detail_other = render_look_and_detail(look, scene, rng, size, pose)
    cells = size // LATENT_STRIDE
    mask = np.asarray(shape_mask(look.cls, pose, size * SUPERSAMPLE), np.float32) / 255.0
    cover = mask.reshape(cells, mask.shape[0] // cells, cells, mask.shape[1] // cells).mean(axis=(1, 3))
    return {"plain": np.asarray(plain), "other": np.asarray(other), "detail_plain": detail_plain,
            "detail_other": detail_other, "cover": cover.astype(np.float32)}


def pair_pool(n: int, seed: int, size: int = 64, plain_share: float = 0.4) -> dict[str, torch.Tensor]:
    """``n`` scene pairs: plain objects (``plain_share``, what pretraining shows) and subject looks
    (``make_subject`` draws), the second scene uniform over the non-plain ones. Tensors: ``plain`` and
    ``other`` [N, 3, H, W] in [-1, 1], ``detail_*`` [N, 1, H, W], ``cover`` [N, 1, h, w], ``is_plain``
    [N] bool, ``scene`` [N] index into :data:`OTHER_SCENES`."""
    rng = np.random.default_rng([seed, 77])
    rows, is_plain, scenes = [], [], []
    for _ in range(n):
        plain_object = rng.random() < plain_share
        if plain_object:
            labels = random_labels(rng)
            look = Look(labels["class"], labels["colour"])
        else:
            look = make_subject(rng).look()
        k = int(rng.integers(len(OTHER_SCENES)))
        rows.append(scene_pair(look, OTHER_SCENES[k], rng, size))
        is_plain.append(plain_object)
        scenes.append(k)
    stack = lambda key: torch.from_numpy(np.stack([r[key] for r in rows]))[:, None]
    return {"plain": images_to_pixels([r["plain"] for r in rows]), "other": images_to_pixels([r["other"] for r in rows]),
            "detail_plain": stack("detail_plain"), "detail_other": stack("detail_other"), "cover": stack("cover"),
            "is_plain": torch.tensor(is_plain), "scene": torch.tensor(scenes)}


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared difference over the cells where ``mask`` ([N, 1, h, w]) is 1, all channels."""
    return ((a - b).pow(2) * mask).sum() / (mask.sum() * a.shape[1]).clamp(min=1.0)


def pasted_decode(vae, z_plain: torch.Tensor, z_other: torch.Tensor, cover: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """Decode the scene render's latents with the cells inside the object replaced by the plain
    render's ([-1, 1] pixels): what a denoiser that learned a subject from plain-scene photos can
    draw in another scene at best."""
    inside = (cover >= INSIDE).float()
    return decode_latents(vae, z_other * (1 - inside) + z_plain * inside, batch)


@torch.no_grad()
def locality_table(vae, pairs: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Per scene: RMS difference of the object's latents between the plain render and the scene render
    (cells inside the object; latent std for scale), and the PSNR inside the object of
    :func:`pasted_decode` against the scene render."""
    z_plain, z_other = encode_means(vae, pairs["plain"]), encode_means(vae, pairs["other"])
    inside = (pairs["cover"] >= INSIDE).float()
    pasted = pasted_decode(vae, z_plain, z_other, pairs["cover"])
    pixel_inside = torch.nn.functional.interpolate(inside, scale_factor=LATENT_STRIDE, mode="nearest")
    table = {}
    for k, scene in enumerate(OTHER_SCENES):
        sel = pairs["scene"] == k
        err = masked_mse(pasted[sel], pairs["other"][sel], pixel_inside[sel])
        table[scene] = {"n": int(sel.sum()),
                        "latent_rms_inside": round(float(masked_mse(z_other[sel], z_plain[sel], inside[sel]).sqrt()), 4),
                        "latent_std": round(float(z_plain[sel].std()), 4),
                        "pasted_psnr_inside_db": round(float(10 * torch.log10(4.0 / err)), 2)}
    return table


def _pair_loss(vae, batch: dict[str, torch.Tensor], old_plain: torch.Tensor, old_other: torch.Tensor,
               detail_weight: float, anchor_weight: float, locality_weight: float, latent_noise: float,
               gen: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    """Reconstruction of both renders + the locality and anchor terms (module docstring)."""
    n = len(batch["plain"])
    x = torch.cat([batch["plain"], batch["other"]])
    z = vae.encode(x).latent_dist.mean
    recon = vae.decode(z + latent_noise * torch.randn(z.shape, generator=gen).to(z.device)).sample
    weight = 1.0 + detail_weight * torch.cat([batch["detail_plain"], batch["detail_other"]])
    rec = reconstruction_loss(recon, x, weight)
    z_plain, z_other = z[:n], z[n:]
    plain_obj = batch["is_plain"].float()[:, None, None, None]
    inside = (batch["cover"] >= INSIDE).float()
    outside = (batch["cover"] <= 1 - INSIDE).float()
    # the object's code on any scene: the old plain-scene code for plain objects, else the plain render's
    target = plain_obj * old_plain + (1 - plain_obj) * z_plain.detach()
    loc = masked_mse(z_other, target, inside)
    anchor = masked_mse(z_plain, old_plain, plain_obj.expand_as(inside)) + masked_mse(z_other, old_other, outside * plain_obj)
    loss = rec + locality_weight * loc + anchor_weight * anchor
    return loss, {"rec": rec.item(), "locality": loc.item(), "anchor": anchor.item()}


def localise_vae(vae, steps: int, seed: int = 0, batch_pairs: int = 16, lr: float = 3e-4, pool: int = 3000,
                 detail_weight: float = 4.0, anchor_weight: float = 1.0, locality_weight: float = 1.0,
                 latent_noise: float = 0.05, device: str = "cpu", log=print) -> dict:
    """Fine-tune ``vae`` on :func:`pair_pool` pairs (module docstring); warm-up then cosine decay.
    Returns the training record (seconds, last losses)."""
    old = copy.deepcopy(vae).to(device).eval().requires_grad_(False)
    pairs = pair_pool(pool, seed)
    old_plain, old_other = encode_means(old, pairs["plain"]), encode_means(old, pairs["other"])
    vae.to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = warmup_cosine(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    t0, parts = time.time(), {}
    with progress("making the VAE local", steps) as bar:
        for step in range(1, steps + 1):
            idx = torch.randint(0, pool, (batch_pairs,), generator=gen)
            batch = {k: v[idx].to(device) for k, v in pairs.items()}
            loss, parts = _pair_loss(vae, batch, old_plain[idx].to(device), old_other[idx].to(device), detail_weight,
                                     anchor_weight, locality_weight, latent_noise, gen)
            take_step(opt, sched, loss)
            bar.advance()
            if log and (step % 100 == 0 or step == steps):
                log(f"step {step}/{steps} loss={loss.item():.4f} " + " ".join(f"{k}={v:.4f}" for k, v in parts.items())
                    + f" ({time.time() - t0:.0f}s)")
    vae.eval()
    return {"steps": steps, "seconds": round(time.time() - t0, 1), "last_losses": {k: round(v, 5) for k, v in parts.items()},
            "settings": {"batch_pairs": batch_pairs, "lr": lr, "pool": pool, "detail_weight": detail_weight,
                         "anchor_weight": anchor_weight, "locality_weight": locality_weight, "latent_noise": latent_noise}}


def main(argv: Sequence[str] | None = None) -> None:
    from dreamlock.families.build import load_vae
    from dreamlock.toyworld.paths import ASSET_DIR

    p = argparse.ArgumentParser(prog="python -m dreamlock.toyworld.locality",
                                description="Make the toy VAE's latents local (an object's code independent of the scene).")
    p.add_argument("--vae", type=Path, default=ASSET_DIR / "vae", help="VAE folder to start from (default: the shipped one)")
    p.add_argument("--out", type=Path, default=None, help="where to save the result (fp32); --ship: the shipped VAE (fp16)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--locality-weight", type=float, default=1.0)
    p.add_argument("--detail-weight", type=float, default=4.0, help="extra loss weight on detail pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table-seed", type=int, default=999, help="held-out pairs and codec-table subjects")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ship", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="write the record (before/after tables) here")
    args = p.parse_args(argv)
    if args.out is None and not args.ship:
        p.error("give --out DIR or --ship")
    if not (args.vae / "config.json").is_file():
        p.error(f"--vae {args.vae}: not a VAE folder (no config.json)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    vae = load_vae(args.vae).float()
    held_out = pair_pool(400, args.table_seed)
    before = {"locality": locality_table(vae, held_out), "codec": codec_table(vae, args.table_seed)}
    stats = localise_vae(vae, args.steps, args.seed, lr=args.lr, locality_weight=args.locality_weight,
                         detail_weight=args.detail_weight, device=device)
    vae.cpu()
    after = {"locality": locality_table(vae, held_out), "codec": codec_table(vae, args.table_seed)}
    if args.out:
        vae.save_pretrained(args.out, safe_serialization=True)
    if args.ship:
        vae.to(torch.float16).save_pretrained(ASSET_DIR / "vae", safe_serialization=True)
    argv = sys.argv[1:] if argv is None else list(argv)
    record = {"command": "python -m dreamlock.toyworld.locality " + " ".join(argv), "device": device,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), **stats, "before": before, "after": after}
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("seconds", "last_losses")} | {"before": before["locality"], "after": after["locality"]}, indent=2))


if __name__ == "__main__":
    main()
