"""Does `select_best` pick well? Train past the recipe, then judge every checkpoint in hindsight.

For each subject and prior setting: trains the toy LoRA recipe for ``--factor`` times its steps
with ``select_best`` (checkpoint every ``--every`` steps), then evaluates *every* kept checkpoint
with `evaluate` on its default prompts and seeds (which the selection never saw). Reports the
chosen step, the last step and the best step in hindsight (the same rule applied to `evaluate`'s
figures, with the base model's evaluation as step 0), whether the chosen checkpoint beats the last
one on subject fidelity or class drift without losing on the other, and the selection's overhead
as a share of the training time. Writes benchmarks/selection.json.

    python benchmarks/selection.py --subjects dotty-heart --factor 3 --every 300
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dreamlock.evaluation import evaluate
from dreamlock.toyworld.base import shipped_base
from dreamlock.toyworld.demo import RECIPES, TRIGGER, demo_train_config
from dreamlock.toyworld.subjects import builtin_subject, write_reference_set
from dreamlock.training import checkpoint as ckpt
from dreamlock.training.api import train
from dreamlock.training.materialize import checkpoint_as_run
from dreamlock.training.selection import Rule, choose

HERE = Path(__file__).parent
KEYS = ("subject_fidelity", "subject_fidelity_rel", "prompt_fidelity", "class_drift", "diversity",
        "reference_self_similarity")


def run_one(work: Path, subject: str, prior: bool, factor: float, every: int, seeds: int,
            selection_seeds: int = 4) -> dict:
    spec = builtin_subject(subject)
    refs = work / subject / "refs"
    if not refs.exists():
        write_reference_set(spec, refs, n=5)
    run = work / subject / ("prior" if prior else "no-prior")
    steps = int(RECIPES["lora"]["max_train_steps"] * factor)
    cfg = demo_train_config(refs, run, spec.class_word, "lora", steps, False, work / "class-cache")
    cfg.update(validation_prompt=[], with_prior_preservation=prior, checkpointing_steps=every, select_best=True,
               selection_seeds=selection_seeds)
    started = time.time()
    if not (run / "run.json").exists():
        train(cfg)
    train_s = time.time() - started
    selection = json.loads((run / "selection.json").read_text())
    select_s = sum(r["seconds"] for r in selection["rows"])
    base = evaluate(shipped_base(), refs, seeds=seeds, trigger=TRIGGER, class_word=spec.class_word,
                    out=run / "base-evaluate", progress=False)
    rows = [{"step": 0, **{k: base[k] for k in KEYS}}]
    for path in ckpt.checkpoint_dirs(run):
        step = ckpt.checkpoint_step(path)
        m = evaluate(checkpoint_as_run(run, step), refs, seeds=seeds, trigger=TRIGGER, class_word=spec.class_word,
                     out=path / "evaluate", progress=False)
        rows.append({"step": step, **{k: m[k] for k in KEYS}})
    by_step = {r["step"]: r for r in rows}
    chosen, last, best = selection["chosen_step"], max(by_step), choose(rows, Rule())
    c, z = by_step[chosen], by_step[last]
    fid, drift = c["subject_fidelity"] - z["subject_fidelity"], c["class_drift"] - z["class_drift"]
    # None when the selection kept the last step: there is nothing it could beat
    beats = None if chosen == last else (fid > 0 and drift <= 0) or (drift < 0 and fid >= 0)
    return {"subject": subject, "prior": prior, "steps": steps, "every": every, "chosen": chosen, "last": last,
            "best_in_hindsight": best, "train_s": round(train_s, 1), "selection_s": round(select_s, 1),
            "overhead": round(select_s / max(1e-9, train_s - select_s), 3),
            "chosen_minus_best_fidelity": c["subject_fidelity"] - by_step[best]["subject_fidelity"],
            "chosen_minus_last": {"subject_fidelity": fid, "class_drift": drift}, "beats_last": beats,
            "hindsight": rows, "selection": selection["rows"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subjects", nargs="+", default=["dotty-heart"])
    p.add_argument("--prior", choices=["with", "without", "both"], default="both")
    p.add_argument("--factor", type=float, default=3.0, help="times the recipe's steps")
    p.add_argument("--every", type=int, default=300)
    p.add_argument("--seeds", type=int, default=8, help="evaluate's seeds per prompt (hindsight)")
    p.add_argument("--selection-seeds", type=int, default=4, help="the selection's own seeds per prompt")
    p.add_argument("--work", type=Path, default=Path("runs/selection"))
    p.add_argument("--out", type=Path, default=HERE / "selection.json")
    args = p.parse_args()
    priors = {"with": [True], "without": [False], "both": [True, False]}[args.prior]
    results = []
    for subject in args.subjects:
        for prior in priors:
            results.append(run_one(args.work, subject, prior, args.factor, args.every, args.seeds, args.selection_seeds))
            r = results[-1]
            print(f"{subject} prior={prior}: chosen {r['chosen']}, last {r['last']}, best in hindsight "
                  f"{r['best_in_hindsight']}, overhead {r['overhead']:.0%}", flush=True)
            args.out.write_text(json.dumps({"cpu_capability": torch.backends.cpu.get_cpu_capability(),
                                            "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
                                            "selection_seeds": args.selection_seeds,
                                            "results": results}, indent=2))


if __name__ == "__main__":
    main()
