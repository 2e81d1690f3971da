"""``select_best``: score every checkpoint while training, keep the best likeness that has not
drifted, and stop once it stops improving.

At step 0 (the base model) and at every checkpoint, a small evaluation runs on the live weights:
its own prompts and seeds (never `evaluate`'s defaults), the instance images as the only
references. The table lands in ``RUN/selection.json`` (rewritten after every row, so a resumed run
keeps it) and ``RUN/selection.md`` (the table and each checkpoint's samples). The rule
(:func:`choose`):

- a checkpoint is *eligible* when its prompt fidelity is within ``selection_prompt_margin`` of the
  best any checkpoint reached, and its class drift (PRES, the class prompt's similarity to the
  references) has moved at most ``selection_drift_margin`` (a share, 0.5) of the way from the base
  model's value to the references' own similarity (1: class images look like the subject);
- the chosen checkpoint is the eligible one with the highest subject fidelity (the earliest on a
  tie); when none is eligible, the one with the lowest class drift;
- without scorer weights (a real model and no ``scorer_model``) the score is a denoising loss on
  the instance images and class images at fixed noise (lowest wins), the weaker signal the best
  peers offer: it cannot see drift in new scenes.

``early_stop_patience`` N stops training when the chosen checkpoint is N evaluations old.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from dreamlock.grid import make_grid

SELECTION_JSON = "selection.json"
SELECTION_MD = "selection.md"
SELECTION_DIR = "selection"
#: Seeds of the selection's generations: far from `evaluate`'s (0..seeds-1), so the report never
#: sees the images the choice was made on.
SEED_OFFSET = 100_000
#: Real models: prompts that are not among DreamBench's (evaluate's default) prompts.
REAL_SUBJECT_PROMPTS = ("a photo of {trigger} {class_word} in a garden", "a photo of {trigger} {class_word} on a table",
                        "a photo of {trigger} {class_word} at sunset")
REAL_CLASS_PROMPTS = ("a photo of a {class_word} in a garden",)


@dataclass(frozen=True)
class Rule:
    """The selection rule's margins (see the module docstring)."""

    prompt_margin: float = 0.1
    drift_margin: float = 0.5
    by: str = "likeness"  # "likeness" (a scorer) or "loss" (no scorer weights)

    def describe(self) -> str:
        if self.by == "loss":
            return ("lowest denoising loss on the instance and class images at fixed noise (no scorer weights: "
                    "a weaker signal that cannot see drift in new scenes)")
        return (f"highest subject fidelity among checkpoints whose prompt fidelity is within {self.prompt_margin} of "
                f"the best seen and whose class drift has moved at most {self.drift_margin:.0%} of the way from the base "
                "model's (step 0) to the references' own similarity; if none qualifies, the lowest class drift")


def eligible(rows: list[dict], rule: Rule) -> list[dict]:
    """Candidate rows (step > 0) that keep prompt fidelity and class drift within the rule's margins."""
    base = next((r for r in rows if r["step"] == 0), None)
    candidates = [r for r in rows if r["step"] > 0]
    if not candidates:
        return []
    best_prompt = max(r["prompt_fidelity"] for r in candidates)
    drift_cap = float("inf")
    if base is not None:
        ceiling = base.get("reference_self_similarity", 1.0)
        drift_cap = base["class_drift"] + rule.drift_margin * (ceiling - base["class_drift"])
    return [r for r in candidates
            if r["prompt_fidelity"] >= best_prompt - rule.prompt_margin and r["class_drift"] <= drift_cap]


def choose(rows: list[dict], rule: Rule) -> int | None:
    """The chosen step of a selection table (None before the first checkpoint)."""
    candidates = [r for r in rows if r["step"] > 0]
    if not candidates:
        return None
    if rule.by == "loss":
        return min(candidates, key=lambda r: (r["loss"], r["step"]))["step"]
    ok = eligible(rows, rule)
    if ok:
        return max(ok, key=lambda r: (r["subject_fidelity"], -r["step"]))["step"]
    return min(candidates, key=lambda r: (r["class_drift"], r["step"]))["step"]


def drift_warning(rows: list[dict], rule: Rule) -> str | None:
    """When no checkpoint kept the class apart from the subject, say so (the choice is then only
    the least drifted of drifted checkpoints, within the noise of a few seeds)."""
    if rule.by == "loss" or not any(r["step"] > 0 for r in rows) or eligible(rows, rule):
        return None
    return ("every checkpoint drifted: class-prompt images look like the subject (or prompts stopped working), so "
            "the least drifted one was kept; train with prior preservation (--prior-preservation), fewer steps or "
            "a lower learning rate")


def should_stop(rows: list[dict], rule: Rule, patience: int | None) -> bool:
    """True when the chosen checkpoint is ``patience`` evaluations behind the newest one."""
    if not patience:
        return False
    steps = [r["step"] for r in rows if r["step"] > 0]
    chosen = choose(rows, rule)
    return chosen is not None and len(steps) - 1 - steps.index(chosen) >= patience


class LiveSource:
    """Images from the live training modules (an ImageSource for the evaluation's scorer)."""

    def __init__(self, pipe, rewrite: Callable[[str], str], resolution: int):
        self.pipe, self.rewrite, self.resolution = pipe, rewrite, resolution

    @torch.no_grad()
    def images(self, prompt: str, seeds: list[int], steps: int, guidance: float) -> list[Image.Image]:
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        return self.pipe([self.rewrite(prompt)] * len(seeds), height=self.resolution, width=self.resolution,
                         generator=gens, num_inference_steps=steps, guidance_scale=guidance).images


def selection_prompts(world: str | None, trigger: str, class_word: str) -> list:
    """The selection's own prompts. The toy vocabulary has one phrasing per scene, so for the toy
    world they differ from `evaluate`'s by the plain scene and by seeds; for real models they are
    other prompts than DreamBench's."""
    from dreamlock.evaluation.prompts import make_prompt
    from dreamlock.model_defaults import TOY_WORLD
    from dreamlock.toyworld.vocab import caption_for, subject_prompt

    if world == TOY_WORLD:
        texts = [subject_prompt(trigger, class_word, s) for s in ("plain", "beach", "night")]
        texts.append(caption_for(class_word, None, "plain"))
    else:
        texts = [p.format(trigger=trigger, class_word=class_word) for p in REAL_SUBJECT_PROMPTS + REAL_CLASS_PROMPTS]
    return [make_prompt(t, trigger, class_word) for t in texts]


class Selector:
    """Scores checkpoints during a run and keeps ``selection.json`` / ``selection.md`` up to date."""

    def __init__(self, run_dir: Path, rule: Rule, patience: int | None, score_fn: Callable[[int], tuple[dict, list]],
                 header: dict):
        self.run_dir, self.rule, self.patience, self.score_fn = Path(run_dir), rule, patience, score_fn
        self.header = header
        self.rows: list[dict] = []

    # ---- state ---------------------------------------------------------------------------
    def load(self, up_to_step: int) -> None:
        """A resumed run keeps the rows it had scored up to the checkpoint it resumes from."""
        path = self.run_dir / SELECTION_JSON
        if path.is_file():
            self.rows = [r for r in json.loads(path.read_text())["rows"] if r["step"] <= up_to_step]

    def has(self, step: int) -> bool:
        return any(r["step"] == step for r in self.rows)

    @property
    def chosen(self) -> int | None:
        return choose(self.rows, self.rule)

    def should_stop(self) -> bool:
        return should_stop(self.rows, self.rule, self.patience)

    # ---- scoring -------------------------------------------------------------------------
    def record(self, step: int) -> dict:
        started = time.monotonic()
        metrics, images = self.score_fn(step)
        row = {"step": step, **metrics, "seconds": round(time.monotonic() - started, 2)}
        self.rows = [r for r in self.rows if r["step"] != step] + [row]
        self.rows.sort(key=lambda r: r["step"])
        if images:
            out = self.run_dir / SELECTION_DIR
            out.mkdir(parents=True, exist_ok=True)
            make_grid(images, cols=self.header.get("seeds", len(images))).save(out / f"step-{step:06d}.png")
        self.write()
        return row

    def write(self, last_step: int | None = None, stopped_early: bool = False, final_step: int | None = None) -> None:
        data = {**self.header, "rule": self.rule.describe(), "rule_params": asdict(self.rule),
                "early_stop_patience": self.patience, "chosen_step": self.chosen, "rows": self.rows,
                "warning": drift_warning(self.rows, self.rule)}
        if last_step is not None:  # the run has finished: final/ holds final_step
            data.update(last_step=last_step, stopped_early=stopped_early, final_step=final_step)
        tmp = self.run_dir / f".{SELECTION_JSON}.tmp"
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.run_dir / SELECTION_JSON)
        (self.run_dir / SELECTION_MD).write_text(selection_markdown(data))


KEYS = ("subject_fidelity", "prompt_fidelity", "class_drift", "diversity", "loss", "seconds")


def selection_markdown(data: dict) -> str:
    """The table (chosen step marked) and each scored checkpoint's samples."""
    keys = [k for k in KEYS if any(k in r for r in data["rows"])]
    lines = ["# Checkpoint selection", "", f"Rule: {data['rule']}.", "",
             f"Chosen step: **{data['chosen_step']}**" + (" (training stopped early)" if data.get("stopped_early") else ""),
             "", *([f"**Warning:** {data['warning']}.", ""] if data.get("warning") else []), "| step | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for r in data["rows"]:
        mark = " ← chosen" if r["step"] == data["chosen_step"] else (" (base model)" if r["step"] == 0 else "")
        cells = [f"{r[k]:.3f}" if isinstance(r.get(k), (int, float)) else "—" for k in keys]
        lines.append(f"| {r['step']}{mark} | " + " | ".join(cells) + " |")
    lines += ["", "Samples (one row per selection prompt, seeds from "
              f"{SEED_OFFSET}):", ""]
    for r in data["rows"]:
        path = Path(SELECTION_DIR) / f"step-{r['step']:06d}.png"
        lines.append(f"- step {r['step']}: ![step {r['step']}]({path.as_posix()})")
    return "\n".join(lines) + "\n"


# ---- building one for a trainer ---------------------------------------------------------------
def make_selector(trainer) -> Selector:
    """The selector of a run with ``select_best`` (or ``early_stop_patience``): its scorer follows the
    base model (toy world: the toy oracle; otherwise clip-dino with ``scorer_model``, else the loss)."""
    from dreamlock.model_defaults import TOY_WORLD, model_world

    c = trainer.config
    world = model_world(c.base)
    by = c.selection_scorer or ("toy" if world == TOY_WORLD else "clip-dino" if c.scorer_model else "loss")
    rule = Rule(c.selection_prompt_margin, c.selection_drift_margin, by="loss" if by == "loss" else "likeness")
    seeds = [SEED_OFFSET + i for i in range(c.selection_seeds)]
    header = {"scorer": by, "seeds": len(seeds), "seed_list": seeds}
    if by == "loss":
        score_fn = _loss_scorer(trainer, seeds)
    else:
        prompts = selection_prompts(world, c.trigger, c.class_word)
        header["prompts"] = [p.text for p in prompts]
        score_fn = _likeness_scorer(trainer, by, prompts, seeds)
    return Selector(trainer.run_dir, rule, c.early_stop_patience, score_fn, header)


def _likeness_scorer(trainer, scorer_name: str, prompts: list, seeds: list[int]):
    from dreamlock.evaluation import load_reference_images, score
    from dreamlock.evaluation.scorers import get_scorer

    c = trainer.config
    scorer = get_scorer(scorer_name, c.scorer_model)
    references = load_reference_images(c.data)

    def score_fn(step: int) -> tuple[dict, list]:
        modules = trainer.method.trainable_modules()
        for m in modules:
            m.eval()
        source = LiveSource(trainer.adapter.sampling_pipeline(), trainer.method.rewrite_prompt, c.resolution)
        with trainer.adapter.unparked():  # offload_frozen: the VAE and frozen text encoders come back to sample
            generations = [source.images(p.text, seeds, c.validation_inference_steps, c.validation_guidance)
                           for p in prompts]
        for m in modules:
            m.train()
        metrics = score(scorer, references, prompts, generations, c.class_word)
        row = {k: metrics[k] for k in ("subject_fidelity", "prompt_fidelity", "class_drift", "diversity",
                                       "reference_self_similarity")}
        return row, [im for p, g in zip(prompts, generations) for im in g]

    return score_fn


def _loss_scorer(trainer, seeds: list[int]):
    """Mean denoising loss (instance + prior) over fixed batches, noise and timesteps."""

    @torch.no_grad()
    def score_fn(step: int) -> tuple[dict, list]:
        total = []
        for s in seeds:
            gen = torch.Generator().manual_seed(s)
            _, parts = trainer.micro_loss(s, gen)
            total.append(parts["loss"])  # the instance loss plus the weighted prior loss
        return {"loss": sum(total) / len(total)}, []

    return score_fn
