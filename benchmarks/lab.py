"""The toy lab's instruments, measured: the oracle's verdicts and the VAE's round trip.

    python benchmarks/lab.py [--vae DIR ...] [--looks 60]

1. Oracle (the shipped one): on subject looks it never trained on (``negatives.held_out``), the
   share of subject renders it accepts per scene and the share of each hard-negative kind it
   rejects, at its stated threshold, on clean renders and on renders degraded like generations;
   with the mean similarity of each group.
2. Codec: for each VAE given (default: the shipped one), PSNR per detail kind and the share of
   round-tripped subject renders the oracle still accepts (one per scene, against original refs).

Prints markdown tables and writes ``benchmarks/lab.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from dreamlock.toyworld.base import ASSET_DIR
from dreamlock.toyworld.negatives import NEGATIVE_KINDS
from dreamlock.toyworld.oracle import load_oracle, summarise_verification, verification_table
from dreamlock.toyworld.vae import codec_table
from dreamlock.toyworld.vocab import SCENES

HERE = Path(__file__).parent


def oracle_tables(looks: int, seed: int) -> dict:
    oracle = load_oracle()
    rows = verification_table(oracle, held_out_looks=True, seed=seed, n_looks=looks)
    return summarise_verification(rows, oracle.subject_threshold)


def print_oracle(v: dict) -> None:
    print(f"\nOracle on {v['n_looks']} held-out looks, threshold {v['threshold']}\n")
    print("| images | clean | like generations |\n|---|---|---|")
    for scene in SCENES:
        print(f"| subject on {scene}: accepted | {v['accepted'][scene]:.1%} | {v['accepted']['aug_' + scene]:.1%} |")
    for kind in NEGATIVE_KINDS:
        print(f"| {kind}: rejected (mean similarity) | {v['rejected'][kind]:.1%} ({v['mean_similarity'][kind]:.2f}) | "
              f"{v['rejected']['aug_' + kind]:.1%} ({v['mean_similarity']['aug_' + kind]:.2f}) |")
    print(f"| subject: mean similarity | {v['mean_similarity']['subject']:.2f} | {v['mean_similarity']['aug_subject']:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vae", type=Path, nargs="*", default=[ASSET_DIR / "vae"])
    p.add_argument("--looks", type=int, default=60)
    p.add_argument("--seed", type=int, default=31337)
    p.add_argument("--out", type=Path, default=HERE / "lab.json")
    args = p.parse_args()
    torch.set_num_threads(2)
    t = time.time()
    result = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "oracle": oracle_tables(args.looks, args.seed),
              "codec": {}}
    print_oracle(result["oracle"])
    for folder in args.vae:
        vae = AutoencoderKL.from_pretrained(folder).float().eval()
        table = codec_table(vae, seed=args.seed + 1)
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
