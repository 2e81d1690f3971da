"""What one training step of the demo's LoRA recipe costs, and what a smaller batch would save.

Trains the demo recipe (LoRA on every toy UNet layer + the text encoder, prior preservation) for 20
and for 120 steps and takes the difference per step, so start-up drops out (the class images are
generated once, before any timing); then the same with a smaller batch, without prior preservation,
with the text encoder frozen, as the demo's full fine-tune, and on a half-depth UNet (one ResNet and
attention layer per block instead of two; random weights, so a timing only: what a smaller toy base
would buy). Each variant is timed ``--repeats`` times (this machine's step varies by up to 25% between
runs); the table gives the median. Prints a table and writes benchmarks/demo_step_cost.json.

    python benchmarks/demo_step_cost.py [--work /tmp/step-cost]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

from dreamlock.toyworld.base import shipped_base
from dreamlock.toyworld.demo import REFERENCE_SCENES, TRIGGER, demo_train_config
from dreamlock.toyworld.subjects import builtin_subject, write_reference_set
from dreamlock.training.api import train
from locking import cpu_name  # the benchmarks' shared CPU naming (run as a script from the checkout)

HERE = Path(__file__).parent
#: name -> (method, overrides of the demo's recipe for it, on the half-depth base instead of the shipped one)
VARIANTS = {
    "batch 4 + prior (the demo)": ("lora", {}, False),
    "batch 2 + prior": ("lora", dict(train_batch_size=2), False),
    "batch 1 + prior": ("lora", dict(train_batch_size=1), False),
    "batch 4, no prior": ("lora", dict(with_prior_preservation=False), False),
    "batch 4 + prior, text encoder frozen": ("lora", dict(train_text_encoder=False), False),
    "full fine-tune, batch 4 + prior (the demo's --method full)": ("full", {}, False),
    "half-depth UNet (random weights), LoRA, batch 4 + prior": ("lora", {}, True),
    "half-depth UNet (random weights), full fine-tune, batch 4 + prior": ("full", {}, True),
}


def half_depth_base(work: Path) -> Path:
    """The shipped base with its UNet swapped for one of half the depth (``layers_per_block`` 1), random weights."""
    folder = work / "half-depth-base"
    if not (folder / "unet").exists():
        shutil.copytree(shipped_base(), folder, dirs_exist_ok=True)
        config = dict(UNet2DConditionModel.load_config(folder / "unet"), layers_per_block=1)
        shutil.rmtree(folder / "unet")
        torch.manual_seed(0)
        UNet2DConditionModel.from_config(config).save_pretrained(folder / "unet")
    return folder


def seconds_per_step(refs: Path, work: Path, class_word: str, method: str, overrides: dict,
                     short: int = 20, long: int = 120) -> float:
    times = []
    for steps in (short, long):
        cfg = demo_train_config(refs, work / f"run-{steps}", class_word, method, steps, False, work / "class-cache")
        cfg.update(validation_prompt=[], **overrides)
        started = time.time()
        train(cfg)
        times.append(time.time() - started)
        shutil.rmtree(work / f"run-{steps}")
    return (times[1] - times[0]) / (long - short)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subject", default="fresh:10", help="a tuning subject [default: fresh:10]")
    p.add_argument("--work", type=Path, default=Path("runs/step-cost"))
    p.add_argument("--out", type=Path, default=HERE / "demo_step_cost.json")
    p.add_argument("--repeats", type=int, default=3, help="timings per variant; the table gives their median")
    args = p.parse_args()
    spec = builtin_subject(args.subject)
    refs = args.work / "photos"
    if not refs.exists():
        write_reference_set(spec, refs, n=len(REFERENCE_SCENES), scenes=REFERENCE_SCENES, trigger=TRIGGER)
    seconds_per_step(refs, args.work, spec.class_word, "lora", {}, 2, 4)  # class images into the cache, untimed
    rows = []
    for name, (method, overrides, half_depth) in VARIANTS.items():
        if half_depth:
            overrides = dict(overrides, base=str(half_depth_base(args.work)))
        runs = sorted(seconds_per_step(refs, args.work, spec.class_word, method, overrides) for _ in range(args.repeats))
        median = runs[len(runs) // 2]
        rows.append({"variant": name, "method": method, "seconds_per_step": round(median, 4),
                     "runs": [round(s, 4) for s in runs]})
        print(f"| {name} | {median:.3f} s/step (min {runs[0]:.3f}, max {runs[-1]:.3f}) |", flush=True)
    out = {"cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "threads": torch.get_num_threads(), "subject": args.subject, "repeats": args.repeats, "rows": rows}
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
