"""The locking results table: does dreamlock bind a subject, and do DreamBooth's directions hold?

On >= 3 toy subjects, trains full (with / without prior preservation), lora (with), ti and pivotal
from the shipped toy base model, evaluates each with the toy oracle, and compares with the base
model given the same prompts. Prints a table and writes benchmarks/locking.json and the table
section of benchmarks/RESULTS.md (between the LOCKING markers).

    python benchmarks/locking.py [--subjects stripy-star dotty-heart checker-ring] [--seeds 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

from dreamlock.evaluation import evaluate
from dreamlock.toyworld.base import GUIDANCE, shipped_base
from dreamlock.toyworld.demo import TRIGGER, demo_train_config
from dreamlock.toyworld.subjects import builtin_subject, write_reference_set
from dreamlock.training.api import train

HERE = Path(__file__).parent
CONFIGS = {  # name -> (method, prior preservation)
    "full + prior": ("full", True),
    "full, no prior": ("full", False),
    "lora + prior": ("lora", True),
    "ti": ("ti", False),
    "pivotal + prior": ("pivotal", True),
}
METRICS = ["subject_fidelity", "subject_fidelity_rel", "prompt_fidelity", "class_drift", "class_drift_share", "diversity"]
PAPER = """DreamBooth paper (Ruiz et al. 2023, DreamBench, real SD-size models): DINO real 0.774,
DreamBooth-SD 0.668, Textual Inversion 0.569; CLIP-T DreamBooth-SD 0.305, TI 0.255; prior
preservation lowers PRES (0.66 -> 0.49) and keeps diversity (0.37 -> 0.39)."""


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        line = next(x for x in out.splitlines() if x.startswith("Model name"))
        return line.split(":", 1)[1].strip()
    except Exception:  # noqa: BLE001
        return platform.processor() or "unknown"


def ensure_refs(work: Path, subject: str) -> Path:
    refs = work / subject / "refs"
    if not refs.exists():
        write_reference_set(builtin_subject(subject), refs, n=5)
    return refs


def run_one(work: Path, subject: str, name: str, seeds: int, steps: int | None) -> dict:
    method, prior = CONFIGS[name]
    spec = builtin_subject(subject)
    refs = ensure_refs(work, subject)
    run = work / subject / name.replace(" ", "").replace(",", "_").replace("+", "_")
    cfg = demo_train_config(refs, run, spec.class_word, method, steps, False, work / "class-cache")
    cfg.update(with_prior_preservation=prior, validation_prompt=[])
    train_s = None  # a run already on disk is reused (its time is in its logs)
    if not (run / "run.json").exists():
        t = time.time()
        train(cfg)
        train_s = time.time() - t
    metrics = evaluate(run, refs, seeds=seeds, guidance=GUIDANCE, trigger=TRIGGER, class_word=spec.class_word, out=run / "evaluate", progress=False)
    return {"subject": subject, "config": name, "train_s": train_s, **{k: metrics.get(k) for k in METRICS}}


def run_base(work: Path, subject: str, seeds: int) -> dict:
    spec = builtin_subject(subject)
    refs = ensure_refs(work, subject)
    metrics = evaluate(shipped_base(), refs, seeds=seeds, guidance=GUIDANCE, trigger=TRIGGER, class_word=spec.class_word,
                       out=work / subject / "base-evaluate", progress=False)
    return {"subject": subject, "config": "base model", "train_s": None, **{k: metrics.get(k) for k in METRICS}}


def table(rows: list[dict]) -> str:
    names = ["base model"] + list(CONFIGS)
    lines = ["| config | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for name in names:
        group = [r for r in rows if r["config"] == name]
        if not group:
            continue
        cells = []
        for k in METRICS:
            vals = [r.get(k) for r in group if isinstance(r.get(k), (int, float))]
            if not vals:
                cells.append("—")
                continue
            mean = statistics.fmean(vals)
            spread = statistics.pstdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{mean:.3f} ± {spread:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(text: str) -> None:
    path = HERE / "RESULTS.md"
    start, end = "<!-- LOCKING:START -->", "<!-- LOCKING:END -->"
    body = path.read_text() if path.exists() else f"# Benchmark results\n\n{start}\n{end}\n"
    if start not in body:
        body += f"\n{start}\n{end}\n"
    head, rest = body.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{text}\n{end}{tail}")


def rerender() -> None:
    """Rewrite the RESULTS.md table from benchmarks/locking.json (after an interrupted run)."""
    data = json.loads((HERE / "locking.json").read_text())
    write_results(f"{data['header']}\n\n{table(data['rows'])}\n\n{PAPER}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subjects", nargs="+", default=["stripy-star", "dotty-heart", "checker-ring"])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--steps", type=int, default=None, help="override every recipe's step count")
    p.add_argument("--work", type=Path, default=Path("runs/locking"))
    p.add_argument("--keep", action="store_true", help="keep rows of other subjects from locking.json")
    args = p.parse_args()
    torch.manual_seed(0)
    rows = []
    if args.keep and (HERE / "locking.json").exists():
        rows = [r for r in json.loads((HERE / "locking.json").read_text())["rows"] if r["subject"] not in args.subjects]
        args.subjects = sorted({r["subject"] for r in rows}) + args.subjects
    started = time.time()
    for subject in [s for s in args.subjects if s not in {r["subject"] for r in rows}]:
        rows.append(run_base(args.work, subject, args.seeds))
        for name in args.configs:
            rows.append(run_one(args.work, subject, name, args.seeds, args.steps))
            print(json.dumps(rows[-1]), flush=True)
            save(rows, args, started)  # partial tables survive an interrupted run
    print(table(rows))


def save(rows: list[dict], args, started: float) -> None:
    done = sorted({r["subject"] for r in rows})
    header = (f"Measured {time.strftime('%Y-%m-%d')} on {cpu_name()} ({torch.get_num_threads()} threads), fp32, "
              f"subjects so far: {', '.join(done)} (of {', '.join(args.subjects)}), {args.seeds} seeds per prompt, "
              f"toy oracle scorer; {time.time() - started:.0f} s so far. Mean ± spread over subjects.")
    (HERE / "locking.json").write_text(json.dumps({"header": header, "rows": rows}, indent=2))
    write_results(f"{header}\n\n{table(rows)}\n\n{PAPER}")


if __name__ == "__main__":
    main()
