"""How many selection seeds does `select_best` need to tell close checkpoints apart? (issue 16)

Re-scores the kept checkpoints of finished `benchmarks/selection.py` runs with the selection's own
scorer, prompts and settings on many seeds (the selection seeds 100000.. and on), then, for each
size (4 and 8 seeds), applies the rule on disjoint groups of seeds and compares the chosen step with
the best checkpoint in hindsight (the fresh-seed `evaluate` figures those runs stored): how often the
rule picks it, and how much subject fidelity (in hindsight) a pick gives away on average.

    python benchmarks/selection_seeds.py --run /tmp/sel/dotty-heart/prior --hindsight benchmarks/selection.json \\
        --seeds 32 --out benchmarks/selection_seeds.json

Prints a table; writes JSON (appends one entry per run to --out).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import torch

from dreamlock.evaluation import load_reference_images, score
from dreamlock.evaluation.scorers import get_scorer
from dreamlock.generation import load_generator
from dreamlock.runs import read_run
from dreamlock.training.config import TrainConfig
from dreamlock.training.materialize import checkpoint_as_run
from dreamlock.training.selection import LiveSource, Rule, choose, selection_prompts

FIRST_SEED = 100000  # the selection's own seeds (training/selection.py)
KEYS = ("subject_fidelity", "prompt_fidelity", "class_drift", "reference_self_similarity")


def generations(run: Path, step: int, prompts: list, seeds: list[int], steps: int) -> list[list]:
    """One list of images per prompt, from the base model (step 0) or the checkpoint at ``step``."""
    info = read_run(run)
    source_dir = info.base if step == 0 else checkpoint_as_run(run, step)
    gen = load_generator(source_dir)
    source = LiveSource(gen.pipe, gen.rewrite, int(json.loads((run / "run.json").read_text()).get("resolution", 64)))
    guidance = gen.default_guidance if gen.default_guidance is not None else 7.5
    with torch.no_grad():
        return [source.images(p.text, seeds, steps, guidance) for p in prompts]


def hindsight_rows(path: Path, run: Path) -> list[dict]:
    """The `evaluate` rows the selection benchmark stored for this run (matched by subject and prior)."""
    data = json.loads(path.read_text())
    results = data["results"] if isinstance(data, dict) else data
    subject, prior = run.parent.name, run.name == "prior"
    return next(r["hindsight"] for r in results if r["subject"] == subject and r["prior"] == prior)


def measure(run: Path, hindsight: Path, n_seeds: int, sizes: list[int]) -> dict:
    config = TrainConfig.model_validate(read_config(run))
    selection = json.loads((run / "selection.json").read_text())
    rule = Rule(**{k: v for k, v in selection["rule_params"].items()})
    prompts = selection_prompts("toy", config.trigger, config.class_word)
    references = load_reference_images(config.data)
    scorer = get_scorer("toy", None)
    truth = hindsight_rows(hindsight, run)
    steps = [r["step"] for r in truth]
    seeds = list(range(FIRST_SEED, FIRST_SEED + n_seeds))
    started = time.time()
    images = {s: generations(run, s, prompts, seeds, config.validation_inference_steps) for s in steps}
    truth_rule = choose(truth, rule)
    best_fid = next(r["subject_fidelity"] for r in truth if r["step"] == truth_rule)
    fid = {r["step"]: r["subject_fidelity"] for r in truth}
    out = {"run": str(run), "subject": run.parent.name, "prior": run.name == "prior", "steps": steps,
           "best_in_hindsight": truth_rule, "hindsight_fidelity": fid, "seeds": n_seeds, "sizes": {}}
    for size in sizes:
        picks = []
        for g in range(n_seeds // size):
            part = slice(g * size, (g + 1) * size)
            rows = []
            for s in steps:
                metrics = score(scorer, references, prompts, [imgs[part] for imgs in images[s]], config.class_word)
                rows.append({"step": s, **{k: float(metrics[k]) for k in KEYS}})
            picks.append(choose(rows, rule))
        lost = [best_fid - fid[p] for p in picks]
        out["sizes"][str(size)] = {"picks": picks, "hits": sum(p == truth_rule for p in picks), "groups": len(picks),
                                   "mean_fidelity_given_away": sum(lost) / len(lost), "worst": max(lost)}
    out["seconds"] = round(time.time() - started, 1)
    return out


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def read_config(run: Path) -> dict:
    import tomllib

    return tomllib.loads((run / "config.toml").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a finished selection benchmark run (with checkpoints)")
    p.add_argument("--hindsight", type=Path, required=True, help="the selection benchmark's JSON with its hindsight rows")
    p.add_argument("--seeds", type=int, default=32)
    p.add_argument("--sizes", type=int, nargs="+", default=[4, 8])
    p.add_argument("--out", type=Path, default=Path("benchmarks/selection_seeds.json"))
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    result = measure(args.run, args.hindsight, args.seeds, args.sizes)
    result.update(cpu=cpu_model(), cpu_capability=torch.backends.cpu.get_cpu_capability(),
                  threads=torch.get_num_threads(), date=str(date.today()))
    print(f"{result['subject']} ({'prior' if result['prior'] else 'no prior'}): best in hindsight {result['best_in_hindsight']}")
    print("| seeds per pick | picks of the best | picks | mean fidelity given away | worst |")
    print("|---|---|---|---|---|")
    for size, r in result["sizes"].items():
        print(f"| {size} | {r['hits']} | {r['picks']} | {r['mean_fidelity_given_away']:.3f} | {r['worst']:.3f} |")
    existing = json.loads(args.out.read_text()) if args.out.exists() else []
    args.out.write_text(json.dumps(existing + [result], indent=1) + "\n")


if __name__ == "__main__":
    main()
