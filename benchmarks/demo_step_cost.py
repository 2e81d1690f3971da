"""What one training step of the demo's LoRA recipe costs, and what a smaller batch would save.

Trains the demo recipe (LoRA on every toy UNet layer + the text encoder, prior preservation) for 20
and for 120 steps and takes the difference per step, so start-up drops out (the class images are
generated once, before any timing); then the same with a smaller batch, without prior preservation
and with the text encoder frozen. Prints a table and writes benchmarks/demo_step_cost.json.

    python benchmarks/demo_step_cost.py [--work /tmp/step-cost]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from dreamlock.toyworld.demo import REFERENCE_SCENES, TRIGGER, demo_train_config
from dreamlock.toyworld.subjects import builtin_subject, write_reference_set
from dreamlock.training.api import train
from locking import cpu_name  # the benchmarks' shared CPU naming (run as a script from the checkout)

HERE = Path(__file__).parent
#: name -> overrides of the demo's LoRA recipe
VARIANTS = {
    "batch 4 + prior (the demo)": {},
    "batch 2 + prior": dict(train_batch_size=2),
    "batch 1 + prior": dict(train_batch_size=1),
    "batch 4, no prior": dict(with_prior_preservation=False),
    "batch 4 + prior, text encoder frozen": dict(train_text_encoder=False),
}


def seconds_per_step(refs: Path, work: Path, class_word: str, overrides: dict, short: int = 20, long: int = 120) -> float:
    times = []
    for steps in (short, long):
        cfg = demo_train_config(refs, work / f"run-{steps}", class_word, "lora", steps, False, work / "class-cache")
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
    args = p.parse_args()
    spec = builtin_subject(args.subject)
    refs = args.work / "photos"
    if not refs.exists():
        write_reference_set(spec, refs, n=len(REFERENCE_SCENES), scenes=REFERENCE_SCENES, trigger=TRIGGER)
    seconds_per_step(refs, args.work, spec.class_word, {}, 2, 4)  # class images into the cache, untimed
    rows = []
    for name, overrides in VARIANTS.items():
        s = seconds_per_step(refs, args.work, spec.class_word, overrides)
        rows.append({"variant": name, "seconds_per_step": round(s, 4)})
        print(f"| {name} | {s:.3f} s/step |", flush=True)
    out = {"cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "threads": torch.get_num_threads(), "subject": args.subject, "rows": rows}
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
