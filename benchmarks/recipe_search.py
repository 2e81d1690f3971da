"""Recipe search for the toy-world demo recipes, on tuning subjects kept apart from the locking table.

Trains each named variant of a demo recipe on each subject (prior preservation on, except for
textual inversion), evaluates it with the toy oracle at the toy guidance and prints one JSON line
per run. The locking table (benchmarks/locking.py) then measures the chosen recipes on *other*
subjects, so that the table is not tuned to its own subjects.

    python benchmarks/recipe_search.py --subjects twotone-cross emblem-triangle --variants lora lora_conv_te
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dreamlock.evaluation import evaluate
from dreamlock.toyworld.base import GUIDANCE
from dreamlock.toyworld.demo import TOY_LORA_TARGETS, TRIGGER, demo_train_config
from dreamlock.toyworld.subjects import builtin_subject, write_reference_set
from dreamlock.training.api import train

ATTENTION = ["to_q", "to_k", "to_v", "to_out.0"]
#: name -> (method, overrides of the demo recipe)
VARIANTS = {
    "lora": ("lora", dict(lora_target_modules=ATTENTION, train_text_encoder=False, max_train_steps=300)),
    "lora_te": ("lora", dict(lora_target_modules=ATTENTION, train_text_encoder=True, max_train_steps=300)),
    "lora_conv": ("lora", dict(lora_target_modules=TOY_LORA_TARGETS, train_text_encoder=False, max_train_steps=300)),
    "lora_conv_te": ("lora", dict(lora_target_modules=TOY_LORA_TARGETS, train_text_encoder=True, max_train_steps=300)),
    "lora_conv_te_lr2e-3": ("lora", dict(lora_target_modules=TOY_LORA_TARGETS, train_text_encoder=True,
                                         learning_rate=2e-3, max_train_steps=300)),
    "lora_conv_te_600": ("lora", dict(lora_target_modules=TOY_LORA_TARGETS, train_text_encoder=True, max_train_steps=600)),
    "full": ("full", dict(max_train_steps=300)),
    "full_lr3e-4": ("full", dict(learning_rate=3e-4, max_train_steps=300)),
    "full_600": ("full", dict(max_train_steps=600)),
    "ti": ("ti", dict(max_train_steps=300)),
    "ti_600": ("ti", dict(max_train_steps=600)),
    "pivotal_conv": ("pivotal", dict(lora_target_modules=TOY_LORA_TARGETS, max_train_steps=300)),
    "pivotal_conv_te": ("pivotal", dict(lora_target_modules=TOY_LORA_TARGETS, train_text_encoder=True, max_train_steps=300)),
}
METRICS = ["subject_fidelity_rel", "prompt_fidelity", "class_drift", "class_drift_share", "diversity"]


def run_variant(work: Path, subject: str, name: str, seeds: int) -> dict:
    method, overrides = VARIANTS[name]
    spec = builtin_subject(subject)
    refs = work / subject / "refs"
    if not refs.exists():
        write_reference_set(spec, refs, n=5)
    run = work / subject / name
    cfg = demo_train_config(refs, run, spec.class_word, method, None, False, work / "class-cache")
    cfg.update(validation_prompt=[], with_prior_preservation=method != "ti", **overrides)
    started = time.time()
    if not (run / "run.json").exists():
        train(cfg)
    train_s = time.time() - started
    m = evaluate(run, refs, seeds=seeds, guidance=GUIDANCE, trigger=TRIGGER, class_word=spec.class_word,
                 out=run / "evaluate", progress=False)
    return {"subject": subject, "variant": name, "train_s": round(train_s), **{k: round(m[k], 3) for k in METRICS}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subjects", nargs="+", default=["twotone-cross", "emblem-triangle"])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--work", type=Path, default=Path("runs/recipe-search"))
    args = p.parse_args()
    for subject in args.subjects:
        for name in args.variants:
            print(json.dumps(run_variant(args.work, subject, name, args.seeds)), flush=True)


if __name__ == "__main__":
    main()
