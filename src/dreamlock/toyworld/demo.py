"""`dreamlock demo`: the whole workflow on the toy world, on a laptop CPU, in minutes.

make a subject -> its "photos" -> prepare -> caption -> train (LoRA + prior preservation by
default) -> generate it in new scenes -> evaluate against the base model -> a short report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console

from dreamlock.errors import UserError
from dreamlock.toyworld.base import shipped_base
from dreamlock.toyworld.subjects import builtin_subject, write_reference_set
from dreamlock.toyworld.vocab import SCENES, caption_for, subject_prompt

console = Console(stderr=True)

TRIGGER = "sks"
#: LoRA on every UNet layer with weights, ResNet convolutions included: the toy UNet has attention
#: only at 8x8 and 4x4, and attention-only LoRA did not draw a subject's colour or detail
#: (subject_fidelity_rel 0.19 vs 0.62 at 300 steps on the tuning subjects; benchmarks/RESULTS.md).
TOY_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                    "conv1", "conv2"]
# Chosen on two tuning subjects (twotone-cross, emblem-triangle), then measured on the benchmark's
# three (benchmarks/RESULTS.md); `fast` is the CI smoke setting.
RECIPES = {
    "lora": dict(learning_rate=1e-3, rank=8, lora_target_modules=TOY_LORA_TARGETS, train_text_encoder=True,
                 max_train_steps=600),
    "full": dict(learning_rate=1e-4, train_text_encoder=True, max_train_steps=600),
    "ti": dict(embedding_lr=5e-2, max_train_steps=600),
    "pivotal": dict(learning_rate=1e-3, embedding_lr=5e-2, rank=8, lora_target_modules=TOY_LORA_TARGETS,
                    max_train_steps=600),
}


def demo_train_config(data: Path, run: Path, class_word: str, method: str, steps: int | None,
                      fast: bool, cache: Path) -> dict:
    recipe = dict(RECIPES[method])
    if steps is not None:
        recipe["max_train_steps"] = steps
    elif fast:
        recipe["max_train_steps"] = 30
    prior = method != "ti"
    return dict(
        base=str(shipped_base()), data=str(data), output=str(run), method=method, trigger=TRIGGER,
        class_word=class_word, resolution=64, train_batch_size=4, random_flip=True,
        # the class prompt in the words pretraining used ("a photo of a star"): measured, the
        # article-less "a photo of star" left "a photo of a star" free to drift to the subject
        with_prior_preservation=prior, class_prompt=caption_for(class_word, None, "plain"),
        num_class_images=8 if fast else 40, class_generation_steps=20,
        sample_batch_size=20, class_cache_dir=str(cache), seed=0,
        validation_prompt=[subject_prompt(TRIGGER, class_word, s) for s in ("plain", "beach", "snow")],
        num_validation_images=4, **recipe,
    )


def _step(n: int, text: str) -> None:
    console.rule(f"[bold]{n}/7[/] {text}")


def demo(out: str | Path = "dreamlock-demo", subject: str = "stripy-star", method: str = "lora",
         steps: int | None = None, fast: bool = False, seeds: int | None = None) -> Path:
    """Run the toy-world demo into ``out`` and return the path of its report."""
    from dreamlock.data.caption import caption
    from dreamlock.data.prepare import prepare
    from dreamlock.evaluation import evaluate
    from dreamlock.generation import generate
    from dreamlock.training.api import train

    if method not in RECIPES:
        raise UserError(f"--method {method}: choose one of {', '.join(RECIPES)}")
    out = Path(out)
    if (out / "run" / "run.json").exists():
        raise UserError(f"{out}: already holds a demo; remove it or pass another --out")
    started = time.time()
    spec = builtin_subject(subject)
    n_seeds = seeds or (2 if fast else 8)

    _step(1, f"subject: {spec.describe()} -> {out / 'photos'}")
    write_reference_set(spec, out / "photos", n=5)
    _step(2, "prepare")
    prepare(out / "photos", out / "data", size=64, crop="center", min_size=64)
    _step(3, "caption")
    caption(out / "data", trigger=TRIGGER, class_word=spec.class_word)
    _step(4, f"train ({method}{' + prior preservation' if method != 'ti' else ''})")
    run = train(demo_train_config(out / "data", out / "run", spec.class_word, method, steps, fast, out / "class-images"))
    _step(5, "generate in new scenes")
    prompts = [subject_prompt(TRIGGER, spec.class_word, s) for s in SCENES]
    generate(run, prompts, n=4, steps=20, out=out / "generated", grid=True)
    _step(6, "evaluate (trained run vs base model)")
    common = dict(reference=out / "photos", seeds=n_seeds, steps=20, trigger=TRIGGER,
                  class_word=spec.class_word, progress=True)
    trained = evaluate(run, out=out / "evaluation", **common)
    base = evaluate(shipped_base(), out=out / "evaluation-base", **common)
    _step(7, "report")
    report = write_report(out, spec.describe(), method, trained, base, time.time() - started)
    console.print(f"[green]demo done[/] in {time.time() - started:.0f} s: open {report}")
    return report


def write_report(out: Path, subject: str, method: str, trained: dict, base: dict, seconds: float) -> Path:
    keys = ["subject_fidelity", "subject_fidelity_rel", "prompt_fidelity", "class_drift", "diversity"]
    rows = [f"| {k} | {_fmt(trained.get(k))} | {_fmt(base.get(k))} |" for k in keys]
    text = "\n".join([
        "# dreamlock demo", "",
        f"Subject: **{subject}** (trigger `{TRIGGER}`), method `{method}`, {seconds:.0f} s end to end.", "",
        "| metric | trained run | base model |", "|---|---|---|", *rows, "",
        "- Reference photos: `photos/`; prepared data: `data/`; run: `run/` (samples in `run/samples/`)",
        "- Generations in new scenes: `generated/*-grid.png`",
        "- Full evaluation with image grids: `evaluation/report.md` (base model: `evaluation-base/report.md`)",
        "",
        f"More images: `dreamlock generate {out / 'run'} --prompt \"a photo of {TRIGGER} {{class_word}} in the snow\" "
        "--steps 20 --grid` (the toy model samples at guidance 1 by default: its `dreamlock.json` says so, "
        "because it never learned an empty prompt).",
        "",
    ])
    path = out / "REPORT.md"
    path.write_text(text)
    (out / "demo_metrics.json").write_text(json.dumps({"trained": trained, "base": base, "seconds": seconds}, indent=2, default=str))
    return path


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "—"
