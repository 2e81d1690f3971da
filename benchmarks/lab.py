"""The toy lab's instruments, measured: the oracle's verdicts and the VAE's round trip.

    python benchmarks/lab.py [--vae DIR ...] [--looks 60]

1. Oracle (the shipped one): on subject looks it never trained on (``negatives.held_out``), the
   share of subject renders it accepts per scene and the share of each hard-negative kind it
   rejects, at its stated threshold, on clean renders and on renders degraded like generations;
   with the mean similarity of each group.
2. Codec: for each VAE given (default: the shipped one), PSNR per detail kind and the share of
   round-tripped subject renders the oracle still accepts (one per scene, against original refs).

Prints markdown tables and writes ``benchmarks/lab.json``; ``--sheet`` also draws
``benchmarks/lab_negatives.png`` (per built-in subject: the subject, then one negative of each kind).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL
from PIL import Image

from dreamlock.evaluation import metrics as M
from dreamlock.toyworld.base import ASSET_DIR
from dreamlock.toyworld.negatives import NEGATIVE_KINDS, render_negative
from dreamlock.toyworld.oracle import load_oracle, summarise_verification, verification_table
from dreamlock.toyworld.render import render_look
from dreamlock.toyworld.subjects import builtin_subject
from dreamlock.toyworld.vae import codec_table
from dreamlock.toyworld.vocab import SCENES

HERE = Path(__file__).parent


def oracle_tables(oracle, looks: int, seed: int) -> dict:
    rows = verification_table(oracle, held_out_looks=True, seed=seed, n_looks=looks)
    return summarise_verification(rows, oracle.subject_threshold)


#: The locking benchmark's subjects (benchmarks/locking.py): none of their looks is trained on.
BENCHMARK_SUBJECTS = ("dotty-heart", "stripy-star", "checker-ring", "fresh:8", "fresh:15", "fresh:22")


def subject_verdicts(oracle, renders: int, seed: int) -> dict:
    """Per benchmark subject: share of its renders accepted per scene, and of each negative kind rejected
    (``renders`` per scene / kind), at the oracle's threshold, against 5 plain references."""
    out = {}
    for name in BENCHMARK_SUBJECTS:
        look = builtin_subject(name).look()
        refs = oracle.embed([render_look(look, "plain", seed + i) for i in range(5)])
        accepted = lambda images: M.fraction(M.is_subject(oracle.embed(images), refs, oracle.subject_threshold))
        row = {"accepted": {}, "rejected": {}}
        for scene in SCENES:
            row["accepted"][scene] = accepted([render_look(look, scene, seed + 100 + i) for i in range(renders)])
        for kind in NEGATIVE_KINDS:
            images = [render_negative(look, kind, SCENES[i % len(SCENES)], seed + 200 + i) for i in range(renders)]
            row["rejected"][kind] = 1 - accepted(images)
        out[name] = row
    return out


def print_subjects(table: dict) -> None:
    print(f"\nBenchmark subjects (per scene accepted; per kind rejected)\n")
    print("| subject | " + " | ".join(SCENES) + " | " + " | ".join(NEGATIVE_KINDS) + " |")
    print("|---" * (1 + len(SCENES) + len(NEGATIVE_KINDS)) + "|")
    for name, row in table.items():
        cells = [f"{row['accepted'][s]:.0%}" for s in SCENES] + [f"{row['rejected'][k]:.0%}" for k in NEGATIVE_KINDS]
        print(f"| {name} | " + " | ".join(cells) + " |")


def print_oracle(v: dict) -> None:
    print(f"\nOracle on {v['n_looks']} held-out looks, threshold {v['threshold']}\n")
    print("| images | clean | like generations |\n|---|---|---|")
    for scene in SCENES:
        print(f"| subject on {scene}: accepted | {v['accepted'][scene]:.1%} | {v['accepted']['aug_' + scene]:.1%} |")
    for kind in NEGATIVE_KINDS:
        print(f"| {kind}: rejected (mean similarity) | {v['rejected'][kind]:.1%} ({v['mean_similarity'][kind]:.2f}) | "
              f"{v['rejected']['aug_' + kind]:.1%} ({v['mean_similarity']['aug_' + kind]:.2f}) |")
    print(f"| subject: mean similarity | {v['mean_similarity']['subject']:.2f} | {v['mean_similarity']['aug_subject']:.2f} |")


SHEET_SUBJECTS = ("stripy-star", "dotty-heart", "checker-ring", "twotone-cross")


def negatives_sheet(path: Path, seed: int = 0) -> None:
    """One row per built-in subject: the subject on plain, then each negative kind on the scenes in turn."""
    rows = []
    for name in SHEET_SUBJECTS:
        look = builtin_subject(name).look()
        tiles = [render_look(look, "plain", seed)]
        tiles += [render_negative(look, kind, SCENES[i % len(SCENES)], seed + i) for i, kind in enumerate(NEGATIVE_KINDS)]
        rows.append(np.concatenate([np.pad(np.asarray(t), ((1, 1), (1, 1), (0, 0)), constant_values=255) for t in tiles], 1))
    Image.fromarray(np.concatenate(rows, 0)).resize((rows[0].shape[1] * 2, len(rows) * rows[0].shape[0] * 2),
                                                   Image.NEAREST).save(path)
    print(f"wrote {path} (columns: subject, {', '.join(NEGATIVE_KINDS)})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vae", type=Path, nargs="*", default=[ASSET_DIR / "vae"])
    p.add_argument("--looks", type=int, default=60)
    p.add_argument("--seed", type=int, default=31337)
    p.add_argument("--out", type=Path, default=HERE / "lab.json")
    p.add_argument("--sheet", action="store_true", help="also draw lab_negatives.png beside --out")
    p.add_argument("--oracle", type=Path, default=None, help="an oracle folder to measure instead of the shipped one")
    p.add_argument("--renders", type=int, default=10, help="renders per scene and per negative kind of each benchmark subject")
    args = p.parse_args()
    if args.sheet:
        negatives_sheet(args.out.parent / "lab_negatives.png")
    torch.set_num_threads(2)
    t = time.time()
    oracle = load_oracle(args.oracle)
    result = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "oracle_folder": str(args.oracle or "shipped"),
              "oracle": oracle_tables(oracle, args.looks, args.seed),
              "benchmark_subjects": subject_verdicts(oracle, args.renders, args.seed), "codec": {}}
    print_oracle(result["oracle"])
    print_subjects(result["benchmark_subjects"])
    for folder in args.vae:
        vae = AutoencoderKL.from_pretrained(folder).float().eval()
        table = codec_table(vae, seed=args.seed + 1, oracle=oracle)
        result["codec"][str(folder)] = table
        print(f"\nCodec {folder} (oracle threshold {table['threshold']})\n")
        print("| detail | PSNR dB | oracle accepts round trip | accepts original | mean similarity |\n|---|---|---|---|---|")
        for detail, row in table["per_detail"].items():
            acc, orig = row.get("accepted"), row.get("accepted_original")
            acc_text = "" if acc is None else f"{acc:.0%}"
            orig_text = "" if orig is None else f"{orig:.0%}"
            print(f"| {detail} | {row['psnr_db']:.1f} | {acc_text} | {orig_text} | {row.get('mean_similarity', '')} |")
    result["seconds"] = round(time.time() - t, 1)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
