"""Compare toy VAEs as codecs of the benchmark subjects, in numbers and in pictures.

Issue 15 part 0: a denoiser fine-tune can draw no better than the decoder, so each benchmark
subject's round trip (renders in every scene, encoded and decoded) is the ceiling of its locking
figures. For each VAE given (the shipped one first), this measures

- per benchmark subject: PSNR of the round trip and the share the shipped oracle still accepts
  as the subject (against the centroid of 5 original plain references);
- the drift of its latent space from the first VAE's on plain renders (what the denoiser was
  pretrained on: RMS of the encoder means, unscaled units), and the plain-render PSNR;

and draws one sheet: per subject, the originals, then each VAE's round trip, with the oracle's
verdict under each image (green: the subject, red: not), to be looked at.

    python benchmarks/codec_refine.py --vae OLD_VAE_DIR src/dreamlock/toyworld/assets/base/vae
        [--subjects checker-ring fresh:8 ...] [--out benchmarks/codec_refine.json]

Tune a refinement on other subjects (``--subjects fresh:N``) than the benchmark set it reports on.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from codec_capacity import subject_views  # the same subject renders as the capacity probe
from diffusers import AutoencoderKL
from PIL import Image, ImageDraw

from dreamlock.errors import UserError
from dreamlock.evaluation import metrics as M
from dreamlock.toyworld.base import ASSET_DIR
from dreamlock.toyworld.oracle import load_oracle
from dreamlock.toyworld.subjects import builtin_subject
from dreamlock.toyworld.vae import anchor_drift, codec_pixels, psnr_db, round_trip_images, round_trip_pixels

HERE = Path(__file__).parent
BENCHMARK_SUBJECTS = ["dotty-heart", "stripy-star", "checker-ring", "fresh:8", "fresh:15", "fresh:22"]


def judge(oracle, refs: list, images: list) -> list[bool]:
    """The oracle's verdict on each image against the references (evaluate's rule)."""
    return M.is_subject(oracle.embed(images), oracle.embed(refs), oracle.subject_threshold)


def check_inputs(parser: argparse.ArgumentParser, vaes: list[Path], subjects: list[str]) -> None:
    """One argparse error line (exit 2) for a folder that is not a VAE or an unknown subject."""
    for folder in vaes:
        if not (folder / "config.json").is_file():
            parser.error(f"{folder} is not a VAE folder (no config.json); give a diffusers AutoencoderKL folder")
    for name in subjects:
        try:
            builtin_subject(name)
        except UserError as err:
            parser.error(str(err))


def plain_figures(vae, first) -> dict:
    plain, _ = codec_pixels(256, seed=5, plain_only=True)
    return {"anchor_rms": round(anchor_drift(first, vae, plain), 4),
            "plain_psnr_db": round(float(psnr_db(round_trip_pixels(vae, plain), plain).mean()), 2)}


def bar(image: Image.Image, ok: bool) -> Image.Image:
    out = Image.new("RGB", (image.width, image.height + 5), "white")
    out.paste(image, (0, 0))
    ImageDraw.Draw(out).rectangle([0, image.height + 1, image.width - 1, image.height + 4],
                                  fill=(40, 170, 60) if ok else (210, 40, 40))
    return out


def strip(images: list, verdicts: list[bool]) -> Image.Image:
    cells = [bar(im.resize((96, 96), Image.NEAREST), ok) for im, ok in zip(images, verdicts)]
    out = Image.new("RGB", (len(cells) * 98, cells[0].height), "white")
    for i, c in enumerate(cells):
        out.paste(c, (i * 98, 0))
    return out


def sheet(rows: list[list[Image.Image]], path: Path) -> None:
    """Rows of strips (per subject: originals | VAE 1 | VAE 2 ...) side by side, subjects stacked."""
    width = sum(s.width for s in rows[0]) + 16 * (len(rows[0]) - 1)
    out = Image.new("RGB", (width, sum(r[0].height + 6 for r in rows)), "white")
    y = 0
    for row in rows:
        x = 0
        for s in row:
            out.paste(s, (x, y))
            x += s.width + 16
        y += row[0].height + 6
    out.save(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vae", type=Path, nargs="+", default=[ASSET_DIR / "vae"])
    p.add_argument("--first", type=Path, default=None,
                   help="the VAE whose plain latents the denoiser learned (anchor reference; default: the first --vae)")
    p.add_argument("--subjects", nargs="+", default=BENCHMARK_SUBJECTS)
    p.add_argument("--out", type=Path, default=HERE / "codec_refine.json")
    args = p.parse_args()
    check_inputs(p, [*args.vae, *([args.first] if args.first else [])], args.subjects)
    torch.set_num_threads(2)
    t0 = time.time()
    oracle = load_oracle()
    first = AutoencoderKL.from_pretrained(args.first or args.vae[0]).float().eval()
    vaes = {str(v): AutoencoderKL.from_pretrained(v).float().eval() for v in args.vae}
    result = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threshold": oracle.subject_threshold,
              "vaes": {k: plain_figures(v, first) for k, v in vaes.items()}, "subjects": {}}
    rows = []
    for name in args.subjects:
        refs, views = subject_views(name)
        row = [strip(views, judge(oracle, refs, views))]
        result["subjects"][name] = {}
        for key, vae in vaes.items():
            psnr, decoded = round_trip_images(vae, views)
            verdicts = judge(oracle, refs, decoded)
            row.append(strip(decoded, verdicts))
            result["subjects"][name][key] = {"psnr_db": round(float(psnr.mean()), 2),
                                             "accepted": round(float(np.mean(verdicts)), 3)}
        rows.append(row)
    sheet(rows, args.out.with_suffix(".png"))
    result["seconds"] = round(time.time() - t0, 1)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    names = list(vaes)
    print("| subject | " + " | ".join(Path(n).name or n for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for name, cells in result["subjects"].items():
        print(f"| {name} | " + " | ".join(f"{cells[n]['psnr_db']:.1f} dB, {cells[n]['accepted']:.0%}" for n in names) + " |")
    for n, v in result["vaes"].items():
        print(f"{n}: anchor RMS {v['anchor_rms']}, plain {v['plain_psnr_db']} dB")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
