"""Does a larger toy VAE separate black (and white) details? Measure before re-pretraining on it.

Issue 15 part 0: the shipped toy VAE (channels 16/32/32, 242k parameters) turns black dots dark
green and drops a black checker, so two of the six locking benchmark subjects are unlockable. A
larger codec needs the denoiser re-pretrained on its latents (hours on a CPU), so first measure
whether capacity is the limit: train VAE candidates *from scratch* on the same codec mixture with
the same budget (``toyworld.base.train_vae``, the rebuild's own VAE trainer), then round-trip the
same subjects (``toyworld.vae.codec_table``, judged by the shipped oracle) and the two
benchmark subjects with black details. Same steps and batch for every candidate, so the
comparison is fair even where the budget is short of convergence.

    python benchmarks/codec_capacity.py --steps 300 --candidates 16,32,32 32,64,64   # CPU: too short, see RESULTS
    python benchmarks/codec_capacity.py --steps 2500 --batch 64 --device cuda     # the shipped VAE's budget

``--overfit N`` asks the narrower question a CPU can answer: can each architecture *represent* the
black details at all? It trains on N renders of the two black-detail subjects only (every scene)
and round-trips other renders of the same two subjects; an architecture that cannot fit them even
then lacks capacity, one that can points at training (mixture, loss, budget) instead.

Prints a table and writes ``benchmarks/codec_capacity.json`` (``codec_capacity_overfit.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dreamlock.families.build import build_vae
from dreamlock.toyworld.base import TOY_ARCH, train_vae
from dreamlock.toyworld.oracle import load_oracle
from dreamlock.toyworld.render import render_look
from dreamlock.toyworld.subjects import builtin_subject
from dreamlock.toyworld.vae import codec_table, images_to_pixels, round_trip_images
from dreamlock.toyworld.vocab import SCENES

HERE = Path(__file__).parent
#: The locking benchmark subjects whose detail is black (codec ceilings 0.50 and -0.18 today).
BLACK_SUBJECTS = ("fresh:8", "checker-ring")
ROWS = ("dots", "checker", "detail colour black", "detail colour white", "plain")


def subject_views(name: str, seed: int = 0) -> tuple[list, list]:
    """5 plain references and one render per scene of a subject (fixed seeds)."""
    look = builtin_subject(name).look()
    refs = [render_look(look, "plain", seed + i) for i in range(5)]
    return refs, [render_look(look, scene, seed + 10 + i) for i, scene in enumerate(SCENES)]


def subject_round_trip(vae, oracle, name: str, seed: int = 0) -> dict:
    """PSNR and oracle similarity of one subject's renders (one per scene) after the round trip."""
    refs, views = subject_views(name, seed)
    psnr, decoded = round_trip_images(vae, views)
    centre = F.normalize(oracle.embed(refs).mean(0), dim=0)
    sims = (oracle.embed(decoded) @ centre).tolist()
    return {"psnr_db": round(float(psnr.mean()), 2),
            "mean_similarity": round(float(np.mean(sims)), 3),
            "accepted": round(float(np.mean([s > oracle.subject_threshold for s in sims])), 2)}


def black_subject_pixels(n: int, seed: int) -> torch.Tensor:
    """``n`` renders of the black-detail subjects in random scenes and poses, [-1, 1]."""
    rng = np.random.default_rng(seed)
    looks = [builtin_subject(name).look() for name in BLACK_SUBJECTS]
    return images_to_pixels([render_look(looks[i % len(looks)], SCENES[int(rng.integers(len(SCENES)))], rng)
                             for i in range(n)])


def measure(channels: list[int], steps: int, batch: int, seed: int, device: str = "cpu", overfit: int = 0) -> dict:
    arch = TOY_ARCH.model_copy(update={"vae_channels": channels})
    torch.manual_seed(seed)
    vae = build_vae(arch)
    t = time.time()
    pixels = black_subject_pixels(overfit, seed + 5) if overfit else None
    stats = train_vae(vae, steps, batch, 1e-3, seed, device, pixels=pixels)
    train_s = time.time() - t
    return {"channels": channels, "train_s": round(train_s, 1), "train_psnr_db": round(stats["psnr_db"], 2),
            **round_trips(vae.cpu().eval(), overfit)}


def round_trips(vae, overfit: int) -> dict:
    """Parameter count, the codec table's ROWS (not with ``--overfit``) and the black subjects' round trips."""
    oracle = load_oracle()
    table = {} if overfit else codec_table(vae, seed=4321, n_subjects=40, oracle=oracle)["per_detail"]
    return {"params": sum(p.numel() for p in vae.parameters()), "rows": {k: table[k] for k in ROWS if k in table},
            "subjects": {name: subject_round_trip(vae, oracle, name) for name in BLACK_SUBJECTS}}


def _cell(row: dict | None) -> str:
    """``PSNR / accepted`` (plain objects have no subject to accept: PSNR only)."""
    if row is None:
        return ""
    accepted = row.get("accepted")
    return f"{row['psnr_db']:.1f}" + ("" if accepted is None else f" / {accepted:.0%}")


def shipped_row(overfit: int) -> dict:
    """The shipped VAE (not trained here), measured the same way: the bar to beat."""
    from diffusers import AutoencoderKL

    from dreamlock.toyworld.base import ASSET_DIR

    vae = AutoencoderKL.from_pretrained(ASSET_DIR / "vae").float().eval()
    return {"channels": "shipped", "train_s": 0.0, **round_trips(vae, overfit)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--candidates", nargs="+", default=["16,32,32", "32,64,64"], help="VAE channels per level")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (the candidates need GPU-size budgets to converge)")
    p.add_argument("--overfit", type=int, default=0, metavar="N",
                   help="train on N renders of the black-detail subjects only (can the architecture fit them?)")
    p.add_argument("--out", type=Path, default=None, help="[default: benchmarks/codec_capacity(_overfit).json]")
    args = p.parse_args()
    args.out = args.out or HERE / ("codec_capacity_overfit.json" if args.overfit else "codec_capacity.json")
    torch.set_num_threads(2)
    results = [shipped_row(args.overfit)] + [measure([int(c) for c in cand.split(",")], args.steps, args.batch, args.seed, args.device, args.overfit)
               for cand in args.candidates]
    out = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
           "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
           "device": args.device, "steps": args.steps, "batch": args.batch, "from_scratch": True,
           "trained_on": f"{args.overfit} renders of {', '.join(BLACK_SUBJECTS)}" if args.overfit else "the codec mixture",
           "results": results}
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nVAE candidates from scratch on {out['trained_on']}, {args.steps} steps x {args.batch} "
          "(PSNR dB / oracle accepts round trip)\n")
    print("| channels | params | train s | " + " | ".join(ROWS) + " | " + " | ".join(BLACK_SUBJECTS) + " |")
    print("|---" * (3 + len(ROWS) + len(BLACK_SUBJECTS)) + "|")
    for r in results:
        cells = [_cell(r["rows"].get(k)) for k in ROWS]
        cells += [f"{r['subjects'][n]['psnr_db']:.1f} / {r['subjects'][n]['accepted']:.0%}" for n in BLACK_SUBJECTS]
        name = r["channels"] if isinstance(r["channels"], str) else ",".join(map(str, r["channels"]))
        print(f"| {name} | {r['params']:,} | {r['train_s']:.0f} | " + " | ".join(cells) + " |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
