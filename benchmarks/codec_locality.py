"""Is the toy codec local? Numbers and pictures, per VAE (issue 15, part 4: the dark scenes).

Subject photos are plain-scene shots, so a denoiser fine-tuned on them learns the subject's
plain-scene latents. If the codec gives the same object other latents in other scenes, those
latents decoded inside a forest or a night scene are not the subject, whatever the denoiser does.
For each VAE given this measures

- on 400 held-out scene pairs (plain objects and subject looks, one pose on the plain scene and on
  another scene): the RMS difference of the object's latents between the two renders, and the PSNR
  inside the object when the plain render's latents are pasted into the scene render's
  (``dreamlock.toyworld.locality.locality_table``);
- per benchmark subject, 4 poses x 4 scenes: the share of such pasted decodes, and of plain round
  trips of the scene renders, that the shipped oracle accepts as the subject (against 5 plain
  references): the ceiling of locking in new scenes from plain-scene photos (and the share of the
  scene renders themselves it accepts, the judge's own ceiling);

and draws one sheet: per subject, the scene renders (first pose), then each VAE's pasted decodes,
with the oracle's verdict under each image (green: the subject, red: not), to be looked at.

    python benchmarks/codec_locality.py --vae OLD_VAE_DIR NEW_VAE_DIR [--out benchmarks/codec_locality.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from codec_refine import BENCHMARK_SUBJECTS, check_inputs, judge, sheet, strip
from diffusers import AutoencoderKL
from PIL import Image

from dreamlock.toyworld.base import ASSET_DIR
from dreamlock.toyworld.locality import OTHER_SCENES, locality_table, pair_pool, pasted_decode, scene_pair
from dreamlock.toyworld.oracle import load_oracle
from dreamlock.toyworld.render import render_look
from dreamlock.toyworld.subjects import builtin_subject
from dreamlock.toyworld.vae import decode_latents, encode_means, images_to_pixels, pixels_to_images

HERE = Path(__file__).parent
POSES = 4


def per_scene(verdicts: list[bool]) -> dict[str, float]:
    """The accepted share per scene of verdicts stacked scene-major (POSES each)."""
    return {scene: round(float(np.mean(verdicts[k * POSES:(k + 1) * POSES])), 3) for k, scene in enumerate(OTHER_SCENES)}


def subject_pairs(name: str) -> tuple[list, dict]:
    """5 plain references and POSES pairs per non-plain scene (fixed seeds), stacked scene-major."""
    look = builtin_subject(name).look()
    refs = [render_look(look, "plain", 500 + i) for i in range(5)]
    rows = [scene_pair(look, scene, np.random.default_rng([600, k, j])) for k, scene in enumerate(OTHER_SCENES)
            for j in range(POSES)]
    pairs = {key: images_to_pixels([r[key] for r in rows]) for key in ("plain", "other")}
    pairs["cover"] = torch.from_numpy(np.stack([r["cover"] for r in rows]))[:, None]
    return refs, pairs


def subject_figures(vae, oracle, refs: list, pairs: dict) -> tuple[dict, list[bool], list[Image.Image]]:
    z_plain, z_other = encode_means(vae, pairs["plain"]), encode_means(vae, pairs["other"])
    pasted = pixels_to_images(pasted_decode(vae, z_plain, z_other, pairs["cover"]))
    tripped = pixels_to_images(decode_latents(vae, z_other))
    v_pasted, v_trip = judge(oracle, refs, pasted), judge(oracle, refs, tripped)
    return ({"pasted_accepted": round(float(np.mean(v_pasted)), 3), "round_trip_accepted": round(float(np.mean(v_trip)), 3),
             "pasted_per_scene": per_scene(v_pasted)}, v_pasted, pasted)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vae", type=Path, nargs="+", default=[ASSET_DIR / "vae"])
    p.add_argument("--subjects", nargs="+", default=BENCHMARK_SUBJECTS)
    p.add_argument("--pairs-seed", type=int, default=999, help="held-out scene pairs (train on other seeds)")
    p.add_argument("--out", type=Path, default=HERE / "codec_locality.json")
    args = p.parse_args()
    check_inputs(p, args.vae, args.subjects)
    torch.set_num_threads(2)
    t0 = time.time()
    oracle = load_oracle()
    vaes = {str(v): AutoencoderKL.from_pretrained(v).float().eval() for v in args.vae}
    held_out = pair_pool(400, args.pairs_seed)
    result = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threshold": oracle.subject_threshold,
              "locality": {k: locality_table(v, held_out) for k, v in vaes.items()}, "subjects": {}}
    rows = []
    for name in args.subjects:
        refs, pairs = subject_pairs(name)
        first = list(range(0, len(OTHER_SCENES) * POSES, POSES))
        originals = pixels_to_images(pairs["other"])
        v_orig = judge(oracle, refs, originals)
        row = [strip([originals[i] for i in first], [v_orig[i] for i in first])]
        result["subjects"][name] = {"originals": {"accepted": round(float(np.mean(v_orig)), 3), "per_scene": per_scene(v_orig)}}
        for key, vae in vaes.items():
            figures, verdicts, pasted = subject_figures(vae, oracle, refs, pairs)
            result["subjects"][name][key] = figures
            row.append(strip([pasted[i] for i in first], [verdicts[i] for i in first]))
        rows.append(row)
    sheet(rows, args.out.with_suffix(".png"))
    result["seconds"] = round(time.time() - t0, 1)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    names = list(vaes)
    print("| held-out pairs | " + " | ".join(f"{Path(n).parent.name}/{Path(n).name}" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for scene in OTHER_SCENES:
        print(f"| {scene}: latent RMS, pasted PSNR | " + " | ".join(
            f"{result['locality'][n][scene]['latent_rms_inside']:.2f}, {result['locality'][n][scene]['pasted_psnr_inside_db']:.1f} dB"
            for n in names) + " |")
    for name, cells in result["subjects"].items():
        print(f"| {name}: pasted / round trip accepted (originals {cells['originals']['accepted']:.0%}) | " + " | ".join(
            f"{cells[n]['pasted_accepted']:.0%} / {cells[n]['round_trip_accepted']:.0%}" for n in names) + " |")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
