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
from dreamlock.toyworld.subjects import DEMO_SUBJECT, builtin_subject, write_reference_set
from dreamlock.toyworld.vocab import SCENES, caption_for, parse_text, subject_prompt

console = Console(stderr=True)

TRIGGER = "sks"
#: The scenes of the subject's five photos, each captioned with its scene: three on the plain
#: backdrop, two in the forest. Photos from one backdrop cannot lock the dark scenes: the model then
#: draws the subject's detail in the wrong colour in the forest and at night; one dark backdrop among
#: the photos fixes the night too, a bright one does not (benchmarks/RESULTS.md, "references in two scenes").
REFERENCE_SCENES = ("plain", "plain", "plain", "forest", "forest")
#: The scenes the subject's photos never show.
NEW_SCENES = [s for s in SCENES if s not in REFERENCE_SCENES]
#: New-scene generations per scene (3 scenes x 7 = 21 images).
PER_NEW_SCENE = 7
#: LoRA on every UNet layer with weights, ResNet convolutions included: the toy UNet has attention
#: only at 8x8 and 4x4, and attention-only LoRA did not draw a subject's colour or detail
#: (subject_fidelity_rel 0.19 vs 0.62 at 300 steps on the tuning subjects; benchmarks/RESULTS.md).
TOY_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                    "conv1", "conv2"]
# Chosen on tuning subjects (twotone-cross, emblem-triangle; then fresh:10 with the two-scene photos,
# 2026-12-07: LoRA at 600 steps and prior weight 1 locked 11 of 15 new-scene images, at 1,200 and 0.3
# 14 of 15; full at lr 1e-4 and prior weight 1 12 of 20 judged images, at lr 2e-4 and 0.3 20 of 20;
# pivotal at prior weight 0.3 16 of 20 at 600 steps, 17 of 20 at 1,200; LoRA at 400 steps and lr 3e-3,
# a third of the time, 61 of 100 against 55 of 100 on five tuning subjects but 8 of 21 on the demo's
# subject against 18: kept at 1,200; the base model's own prediction as the prior, 70 of 100 against 55
# on the tuning subjects but no better on the benchmark set and worse on the demo's subject: class images
# kept), then measured on the benchmark subjects (benchmarks/RESULTS.md);
# `fast` is the CI smoke setting.
RECIPES = {
    "lora": dict(learning_rate=1e-3, rank=8, lora_target_modules=TOY_LORA_TARGETS, train_text_encoder=True,
                 max_train_steps=1200, prior_loss_weight=0.3),
    "full": dict(learning_rate=2e-4, train_text_encoder=True, max_train_steps=600, prior_loss_weight=0.3),
    # the token's norm capped at 3x the class word's: uncapped it grew 25-50x and, with the two-scene
    # photos, turned "sks heart" into stars on two benchmark subjects (benchmarks/RESULTS.md)
    "ti": dict(embedding_lr=5e-2, max_train_steps=600, embedding_norm_cap=3.0),
    # 1,200 steps as the LoRA's: at 600 the dotted subjects did not lock (benchmarks/RESULTS.md, sixteenth session)
    "pivotal": dict(learning_rate=1e-3, embedding_lr=5e-2, rank=8, lora_target_modules=TOY_LORA_TARGETS,
                    max_train_steps=1200, prior_loss_weight=0.3),
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


def demo(out: str | Path = "dreamlock-demo", subject: str = DEMO_SUBJECT, method: str = "lora",
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

    _step(1, f"subject: {spec.describe()} -> {out / 'photos'} (5 captioned photos: {', '.join(REFERENCE_SCENES)})")
    write_reference_set(spec, out / "photos", n=len(REFERENCE_SCENES), scenes=REFERENCE_SCENES, trigger=TRIGGER)
    _step(2, "prepare")
    prepare(out / "photos", out / "data", size=64, crop="center", min_size=64)
    _step(3, "caption (the photos' own captions are kept)")
    caption(out / "data", trigger=TRIGGER, class_word=spec.class_word)
    _step(4, f"train ({method}{' + prior preservation' if method != 'ti' else ''})")
    run = train(demo_train_config(out / "data", out / "run", spec.class_word, method, steps, fast, out / "class-images"))
    _step(5, "generate in new scenes")
    prompts = [subject_prompt(TRIGGER, spec.class_word, s) for s in NEW_SCENES]
    written = generate(run, prompts, n=PER_NEW_SCENE, steps=20, out=out / "generated", grid=True)
    _step(6, "evaluate (trained run vs base model)")
    common = dict(reference=out / "photos", seeds=n_seeds, steps=20, trigger=TRIGGER,
                  class_word=spec.class_word, progress=True)
    trained = evaluate(run, out=out / "evaluation", **common)
    base = evaluate(shipped_base(), out=out / "evaluation-base", **common)
    _step(7, "report")
    verdict = judge_generations(out / "photos", by_prompt(prompts, written))
    report = write_report(out, spec.describe(), method, trained, base, time.time() - started, verdict)
    console.print(f"[green]demo done[/] in {time.time() - started:.0f} s: {verdict['line']}\nopen {report}")
    return report


#: The demo calls the subject locked when the oracle recognises it, in the scene its prompt asks
#: for, in at least this share of its new-scene generations (17 of 21; issue 15 asks for 16 of 20).
LOCKED_SHARE = 0.8


def by_prompt(prompts: list[str], written: list[Path]) -> dict[str, list[Path]]:
    """`generate`'s image files (``NN-<prompt>-seedS.png``, grids left out) under the prompt that made them."""
    return {prompt: [p for p in written if p.name.startswith(f"{i:02d}-") and not p.name.endswith("-grid.png")]
            for i, prompt in enumerate(prompts)}


def judge_generations(reference_dir: Path, images: dict[str, list[Path]]) -> dict:
    """How many generations show the subject (the oracle's identity similarity to the reference
    centroid above its calibrated threshold) in the scene their prompt asks for (the oracle's class
    and scene calls), and a one-line verdict. ``images``: prompt -> its image files.

    The scene counts: a model that draws the subject on its photos' backdrop whatever the prompt says
    has memorised the photos, not locked the subject (seen on tuning subjects, benchmarks/RESULTS.md)."""
    from PIL import Image

    from dreamlock.evaluation import load_reference_images
    from dreamlock.evaluation.metrics import is_subject
    from dreamlock.evaluation.scorers.toy import ToyScorer

    scorer = ToyScorer()
    ref = scorer.embed(load_reference_images(reference_dir))
    subject, scene = {}, {}
    for prompt, paths in images.items():
        pictures = [Image.open(p).convert("RGB") for p in paths]
        subject.update(zip(paths, map(bool, is_subject(scorer.embed(pictures), ref, scorer.subject_threshold))))
        scene.update(zip(paths, scorer.prompt_match(pictures, parse_text(prompt))))
    judged = {path: subject[path] and scene[path] for path in subject}
    n, k = len(judged), sum(judged.values())
    elsewhere = sum(subject[path] and not scene[path] for path in subject)
    locked = n > 0 and k >= LOCKED_SHARE * n
    line = (f"{'Locked' if locked else 'Not locked'}: the oracle recognises the subject (outline, body colour and "
            f"detail) in the asked scene in {k} of {n} new-scene generations"
            f"{f' ({elsewhere} more show it in another scene)' if elsewhere else ''}"
            f"{'' if locked else f'; the demo asks for {LOCKED_SHARE:.0%}'}.")
    return {"accepted": k, "total": n, "locked": locked, "line": line, "subject_elsewhere": elsewhere,
            "per_image": {path.name: ok for path, ok in judged.items()}}


def _scene_rows(trained: dict, base: dict) -> list[str]:
    """Markdown rows: one per subject prompt, the trained run's grid beside the base model's (the
    scenes of the photos marked)."""
    rows = ["| prompt | trained run | base model |", "|---|---|---|"]
    for t, b in zip(trained.get("per_prompt", []), base.get("per_prompt", [])):
        if t.get("kind") != "subject" or "grid" not in t:
            continue
        seen = " (a backdrop of the photos)" if parse_text(t["prompt"])["scene"] in REFERENCE_SCENES else ""
        rows.append(f"| {t['prompt']}{seen}<br>subject fidelity {_fmt(t.get('subject_fidelity'))} vs "
                    f"{_fmt(b.get('subject_fidelity'))}<br>judged subject {_fmt(t.get('judged_subject'))} vs "
                    f"{_fmt(b.get('judged_subject'))} | ![trained](evaluation/{t['grid']}) | "
                    f"![base](evaluation-base/{b['grid']}) |")
    return rows


def write_report(out: Path, subject: str, method: str, trained: dict, base: dict, seconds: float,
                 verdict: dict | None = None) -> Path:
    keys = ["subject_fidelity", "subject_fidelity_rel", "judged_subject", "judged_in_scene", "prompt_fidelity",
            "class_drift", "class_drift_share", "diversity"]
    rows = [f"| {k} | {_fmt(trained.get(k))} | {_fmt(base.get(k))} |" for k in keys]
    codec = trained.get("codec_ceiling") or {}
    text = "\n".join([
        "# dreamlock demo", "",
        f"Subject: **{subject}** (trigger `{TRIGGER}`), method `{method}`, {seconds:.0f} s end to end.", "",
        f"**{verdict['line']}**" if verdict else "", "",
        "## The subject's photos", "", "![references](evaluation/grids/references.png)", "",
        *(["After the model's VAE round trip (the best any generation can look; `subject_fidelity_rel` "
           f"{_fmt(codec.get('subject_fidelity_rel'))}):", "", "![references after the VAE](evaluation/grids/references-codec.png)", ""]
          if codec else []),
        "## The scenes: trained run vs base model", "", *_scene_rows(trained, base), "",
        "## Metrics", "",
        "| metric | trained run | base model |", "|---|---|---|", *rows, "",
        "- Reference photos: `photos/`; prepared data: `data/`; run: `run/` (samples in `run/samples/`)",
        "- Generations in new scenes: `generated/*-grid.png`",
        "- Full evaluation with image grids: `evaluation/report.md` (base model: `evaluation-base/report.md`)",
        "",
        f"More images: `dreamlock generate {out / 'run'} --prompt \"a photo of {TRIGGER} {{class_word}} in the snow\" "
        "--steps 20 --grid` (the toy model samples at guidance 1 by default, as its `dreamlock.json` says; "
        "`--guidance 5` works too).",
        "",
    ])
    path = out / "REPORT.md"
    path.write_text(text)
    (out / "demo_metrics.json").write_text(json.dumps({"trained": trained, "base": base, "seconds": seconds,
                                                       "verdict": verdict}, indent=2, default=str))
    return path


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "—"
