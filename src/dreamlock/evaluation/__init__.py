"""``dreamlock evaluate``: measure how well a run locked its subject in.

:func:`evaluate` loads a run's generator (``load_generator`` from ``dreamlock.generation``) and the reference
images, then calls :func:`evaluate_with`, which works with any object that has
``.images(prompt, seeds, steps, guidance) -> list[PIL.Image]`` (and optionally ``.trigger``,
``.class_word``). Metrics (see
:mod:`dreamlock.evaluation.metrics`): ``subject_fidelity`` (+ ``_rel``), ``prompt_fidelity``,
``class_drift``, ``diversity``.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Protocol, Sequence

import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from dreamlock.data.imageio import is_image_name
from dreamlock.errors import UserError, WorkError
from dreamlock.evaluation import metrics as M
from dreamlock.evaluation.prompts import EvalPrompt, default_prompts, fill, load_prompts, make_prompt, with_alternatives
from dreamlock.evaluation.scorers import Scorer, get_scorer

__all__ = ["evaluate", "evaluate_with", "load_reference_images"]

class ImageSource(Protocol):
    """Anything that turns a prompt and seeds into images (a run's generator, a fake in tests)."""

    def images(self, prompt: str, seeds: list[int], steps: int, guidance: float) -> list[Image.Image]: ...


def load_reference_images(folder: str | Path) -> list[Image.Image]:
    """Every image in ``folder`` (sorted by name), as RGB. At least 2 are needed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--reference {folder}: folder not found (give the subject's reference images folder)")
    images = []
    for path in sorted(p for p in folder.iterdir() if is_image_name(p) and p.is_file()):
        try:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as e:
            raise UserError(f"{path}: cannot read this image ({e}); remove or replace it") from None
    if len(images) < 2:
        raise UserError(f"--reference {folder}: found {len(images)} image(s); need at least 2 (a reference set is 3-6)")
    return images


def _as_prompts(prompts: Sequence[str | EvalPrompt] | str | Path | None, trigger: str, class_word: str) -> list[EvalPrompt]:
    if prompts is None:
        result = default_prompts(trigger, class_word)
    elif isinstance(prompts, (str, Path)):
        result = load_prompts(prompts, trigger, class_word)
    else:
        result = [p if isinstance(p, EvalPrompt) else make_prompt(fill(p, trigger, class_word), trigger, class_word)
                  for p in prompts]
    if not result:
        raise UserError("no evaluation prompts; give at least one (--prompts FILE)")
    return with_alternatives(result)


def _generate(source: ImageSource, prompts: list[EvalPrompt], seeds: list[int], steps: int, guidance: float, progress: bool) -> list[list[Image.Image]]:
    out = []
    for p in tqdm(prompts, desc="generating", unit="prompt", disable=not progress):
        images = list(source.images(p.text, seeds, steps, guidance))
        if len(images) != len(seeds):
            raise WorkError(f"generator returned {len(images)} images for {len(seeds)} seeds on prompt {p.text!r}")
        out.append([im.convert("RGB") for im in images])
    return out


def _drift_impostors(scorer: Scorer, class_word: str, references: list[Image.Image], given: Sequence[Image.Image] | None) -> list[Image.Image] | None:
    if given is not None:
        return list(given)
    make = getattr(scorer, "impostors", None)
    if make is None:
        return None
    if "references" in inspect.signature(make).parameters:
        return make(class_word, references=references)
    return make(class_word)


def evaluate_with(
    generator: ImageSource,
    reference_images: Sequence[Image.Image],
    prompts: Sequence[str | EvalPrompt] | str | Path | None = None,
    seeds: int | Sequence[int] = 8,
    scorer: str | Scorer = "toy",
    out: str | Path | None = None,
    steps: int = 20,
    guidance: float | None = None,
    trigger: str | None = None,
    class_word: str | None = None,
    scorer_model: str | None = None,
    impostor_images: Sequence[Image.Image] | None = None,
    progress: bool = True,
    run: str | None = None,
) -> dict[str, Any]:
    """Generate every prompt x seed with ``generator``, score against ``reference_images``.

    ``trigger``/``class_word`` default to the generator's attributes of the same name, ``guidance``
    to its ``default_guidance`` (the model's recommendation), else 5.0. Returns the
    metrics dict (also written to ``out/metrics.json`` with ``out/report.md`` when ``out`` is given).
    """
    trigger = trigger or getattr(generator, "trigger", None)
    class_word = class_word or getattr(generator, "class_word", None)
    if guidance is None:
        recommended = getattr(generator, "default_guidance", None)
        guidance = recommended if recommended is not None else 5.0
    if not trigger:
        raise UserError("no trigger word: pass --trigger (e.g. --trigger sks); the run does not record one")
    if not class_word:
        raise UserError("no class word: pass --class-word (e.g. --class-word star); the run does not record one")
    references = [im.convert("RGB") for im in reference_images]
    if len(references) < 2:
        raise UserError(f"need at least 2 reference images, got {len(references)}")
    scorer_obj = get_scorer(scorer, scorer_model) if isinstance(scorer, str) else scorer
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise UserError("--seeds must be at least 1")
    plist = _as_prompts(prompts, trigger, class_word)
    generations = _generate(generator, plist, seed_list, steps, guidance, progress)

    result = score(scorer_obj, references, plist, generations, class_word, impostor_images)
    result["settings"] = {"run": run, "trigger": trigger, "class_word": class_word, "seeds": seed_list,
                          "steps": steps, "guidance": guidance}
    if out is not None:
        from dreamlock.evaluation.report import write_report

        write_report(out, result, generations, references)
    return result


def score(
    scorer: Scorer,
    references: list[Image.Image],
    prompts: list[EvalPrompt],
    generations: list[list[Image.Image]],
    class_word: str,
    impostor_images: Sequence[Image.Image] | None = None,
) -> dict[str, Any]:
    """All metrics for already generated images (one list per prompt)."""
    ref = scorer.embed(references)
    embs = [scorer.embed(g) for g in generations]
    tau, calib = M.drift_threshold(ref, _embed_or_none(scorer, _drift_impostors(scorer, class_word, references, impostor_images)))
    per_prompt, match_all, subject_embs, drift_all, clip_t = [], [], [], [], []
    for p, images, emb in zip(prompts, generations, embs):
        judged = M.is_subject(emb, ref, tau)
        entry: dict[str, Any] = {"prompt": p.text, "kind": p.kind, "n": len(images),
                                 "subject_fidelity": M.subject_fidelity(emb, ref)[0],
                                 "judged_subject": M.fraction(judged), "diversity": M.pairwise_diversity(emb)}
        if p.kind == "subject":
            matches = scorer.prompt_match(images, p.attrs)
            entry["prompt_fidelity"] = M.fraction(matches)
            match_all += matches
            subject_embs.append(emb)
        else:
            drift_all += judged
        if hasattr(scorer, "text_similarity"):
            entry["clip_t"] = sum(scorer.text_similarity(images, p.attrs["text"])) / len(images)
            clip_t.append(entry["clip_t"])
        entry["attributes"] = scorer.attributes(images)
        per_prompt.append(entry)
    class_embs = [e for p, e in zip(prompts, embs) if p.kind == "class"]
    fid = M.subject_fidelity(torch.cat(subject_embs), ref) if subject_embs else (None, None)
    result: dict[str, Any] = {
        "scorer": getattr(scorer, "name", type(scorer).__name__),
        "subject_fidelity": fid[0],
        "subject_fidelity_rel": fid[1],
        "prompt_fidelity": M.fraction(match_all),
        "class_drift": M.fraction(drift_all),
        "diversity": M.diversity(subject_embs),
        "class_diversity": M.diversity(class_embs),
        "reference_self_similarity": M.reference_self_similarity(ref),
        "drift_threshold": tau,
        "drift_calibration": calib,
        "n_references": len(references),
    }
    if clip_t:
        result["clip_t"] = sum(clip_t) / len(clip_t)
    result["per_prompt"] = per_prompt
    return result


def _embed_or_none(scorer: Scorer, images: list[Image.Image] | None) -> torch.Tensor | None:
    return scorer.embed(images) if images else None


def _load_generator(run: str | Path) -> ImageSource:
    """A run's (or model's) generator; imported here so evaluation stays light to import."""
    from dreamlock.generation import load_generator

    return load_generator(run)


def evaluate(
    run: str | Path,
    reference: str | Path,
    prompts: str | Path | Sequence[str] | None = None,
    seeds: int = 8,
    scorer: str = "toy",
    out: str | Path | None = None,
    steps: int = 20,
    guidance: float | None = None,
    trigger: str | None = None,
    class_word: str | None = None,
    scorer_model: str | None = None,
    impostors: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a training run (or model) against a folder of reference images.

    ``impostors``: a folder of other subjects of the same class, to calibrate the class-drift
    threshold (the toy scorer renders its own when not given). Writes ``out`` (default
    ``RUN/evaluate`` for a run folder) and returns the metrics.
    """
    references = load_reference_images(reference)
    impostor_images = load_reference_images(impostors) if impostors is not None else None
    scorer_obj = get_scorer(scorer, scorer_model)  # fail on bad scorer weights before loading a model
    generator = _load_generator(run)
    if out is None:
        out = Path(run) / "evaluate" if Path(run).is_dir() else Path(f"evaluate-{Path(str(run)).name}")
    return evaluate_with(generator, references, prompts, seeds, scorer_obj, out, steps, guidance, trigger, class_word,
                         impostor_images=impostor_images, progress=progress, run=str(run))
