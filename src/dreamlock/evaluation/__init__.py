"""``dreamlock evaluate``: measure how well a run locked its subject in.

:func:`evaluate` loads a run's generator (``load_generator`` from ``dreamlock.generation``) and the reference
images, then calls :func:`evaluate_with`, which works with any object that has
``.images(prompt, seeds, steps, guidance) -> list[PIL.Image]`` (and optionally ``.trigger``,
``.class_word``, ``.default_guidance``, ``.world`` and ``.pipe``). Metrics (see
:mod:`dreamlock.evaluation.metrics`): ``subject_fidelity`` (+ ``_rel``), ``prompt_fidelity``,
``class_drift`` (PRES, + ``class_drift_share``), ``diversity`` (DIV), with the clip-dino scorer
``clip_i`` and ``clip_t``, and ``codec_ceiling`` when the source has a VAE.

Scorer and prompts follow the model when not given: a model whose ``dreamlock.json`` says
``"world": "toy"`` (the shipped toy model and its runs) gets the toy scorer and toy prompts; any
other model gets DreamBench's prompts and the clip-dino scorer, which needs ``--scorer-model``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Protocol, Sequence

import torch
from PIL import Image, UnidentifiedImageError

from dreamlock.data.imageio import is_image_name
from dreamlock.errors import UserError, WorkError
from dreamlock.evaluation import metrics as M
from dreamlock.evaluation.codec import model_vae, round_trip
from dreamlock.evaluation.prompts import (EvalPrompt, default_prompts, dreambench_prompts, fill, load_prompts, make_prompt,
                                          with_alternatives)
from dreamlock.evaluation.scorers import Scorer, get_scorer
from dreamlock.model_defaults import TOY_WORLD
from dreamlock.progress import track

__all__ = ["choose_scorer", "evaluate", "evaluate_with", "load_reference_images"]

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


def choose_scorer(world: str | None, scorer: str | Scorer | None, scorer_model: str | None) -> Scorer:
    """The scorer to use: ``scorer`` as given, else the model's: ``toy`` for the toy world,
    ``clip-dino`` for every other model (one-line UserError naming --scorer-model without weights)."""
    if scorer is not None and not isinstance(scorer, str):
        return scorer
    if scorer is None:
        if world == TOY_WORLD:
            scorer = "toy"
        elif not scorer_model:
            raise UserError("this model is not the toy world, so evaluate scores it with the clip-dino scorer, which needs "
                            "local weights: pass --scorer-model DIR (with clip/ and dino/) or CLIP_DIR,DINO_DIR")
        else:
            scorer = "clip-dino"
    return get_scorer(scorer, scorer_model)


def _as_prompts(prompts: Sequence[str | EvalPrompt] | str | Path | None, trigger: str, class_word: str,
                world: str | None = TOY_WORLD) -> list[EvalPrompt]:
    if prompts is None:
        result = default_prompts(trigger, class_word) if world == TOY_WORLD else dreambench_prompts(trigger, class_word)
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
    for p in track(prompts, "generating", progress):
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
    scorer: str | Scorer | None = None,
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
    to its ``default_guidance`` (the model's recommendation), else 5.0. ``scorer``/``prompts``
    None: chosen by the generator's ``world`` (toy world: the toy scorer and toy prompts; anything
    else, a generator without ``world`` included: clip-dino and DreamBench's prompts). When the
    generator holds a pipeline with a VAE, the references are also scored after a VAE round trip
    (``codec_ceiling``). Returns the metrics dict (also written to ``out/metrics.json`` with
    ``out/report.md`` when ``out`` is given).
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
    world = getattr(generator, "world", None)
    scorer_obj = choose_scorer(world, scorer, scorer_model)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise UserError("--seeds must be at least 1")
    plist = _as_prompts(prompts, trigger, class_word, world)
    generations = _generate(generator, plist, seed_list, steps, guidance, progress)
    codec = model_vae(generator)
    codec_images = round_trip(codec[0], references, codec[1]) if codec else None

    result = score(scorer_obj, references, plist, generations, class_word, impostor_images, codec_images)
    if codec:
        result["codec_ceiling"]["resolution"] = codec[1]
    result["settings"] = {"run": run, "trigger": trigger, "class_word": class_word, "seeds": seed_list,
                          "steps": steps, "guidance": guidance}
    if out is not None:
        from dreamlock.evaluation.report import write_report

        write_report(out, result, generations, references, codec_images)
    return result


def score(
    scorer: Scorer,
    references: list[Image.Image],
    prompts: list[EvalPrompt],
    generations: list[list[Image.Image]],
    class_word: str,
    impostor_images: Sequence[Image.Image] | None = None,
    codec_images: Sequence[Image.Image] | None = None,
) -> dict[str, Any]:
    """All metrics for already generated images (one list per prompt).

    ``codec_images``: the references after the model's VAE round trip, in reference order; scored
    as ``codec_ceiling`` when given."""
    ref = scorer.embed(references)
    embs = [scorer.embed(g) for g in generations]
    fixed = getattr(scorer, "subject_threshold", None)
    if fixed is not None:  # the scorer states its own verdict threshold (the toy oracle's, calibrated on hard negatives)
        tau, calib = float(fixed), {"source": "scorer", "reference_loo": float(M.leave_one_out_similarity(ref).mean())}
    else:
        tau, calib = M.drift_threshold(ref, _embed_or_none(scorer, _drift_impostors(scorer, class_word, references,
                                                                                     impostor_images)))
    layout = getattr(scorer, "layout_features", None)
    layouts = [layout(g) for g in generations] if layout is not None else None
    clip_image = getattr(scorer, "image_features", None)
    ref_clip = clip_image(references) if clip_image is not None else None
    per_prompt, match_all, drift_all, clip_t, subject_judged, subject_in_scene = [], [], [], [], [], []
    subject_embs, class_embs, subject_layouts, class_layouts, subject_clip = [], [], [], [], []
    for i, (p, images, emb) in enumerate(zip(prompts, generations, embs)):
        judged = M.is_subject(emb, ref, tau)
        attributes = scorer.attributes(images)
        div = M.pairwise_layout_distance(layouts[i]) if layouts is not None else M.pairwise_diversity(emb)
        entry: dict[str, Any] = {"prompt": p.text, "kind": p.kind, "n": len(images),
                                 "subject_fidelity": M.subject_fidelity(emb, ref)[0],
                                 "judged_subject": M.fraction(judged), "judged": judged, "diversity": div}
        if p.kind == "subject":
            matches = scorer.prompt_match(images, p.attrs)
            entry["prompt_fidelity"] = M.fraction(matches)
            match_all += matches
            subject_judged += judged
            in_scene = M.in_asked_scene(judged, attributes, p.attrs.get("scene"))
            entry["judged_in_scene"] = M.fraction(in_scene)
            subject_in_scene += in_scene
            subject_embs.append(emb)
            subject_layouts.append(layouts[i] if layouts is not None else None)
            if hasattr(scorer, "text_similarity"):  # CLIP-T: subject prompts only, as in DreamBench
                sims = scorer.text_similarity(images, p.attrs["text"])
                entry["clip_t"] = sum(sims) / len(sims)
                clip_t += sims
            if clip_image is not None:  # CLIP-I
                feats = clip_image(images)
                entry["clip_i"] = float(M.cosine_matrix(feats, ref_clip).mean())
                subject_clip.append(feats)
        else:
            drift_all += judged
            class_embs.append(emb)
            class_layouts.append(layouts[i] if layouts is not None else None)
        entry["attributes"] = attributes
        per_prompt.append(entry)
    fid = M.subject_fidelity(torch.cat(subject_embs), ref) if subject_embs else (None, None)
    if layouts is not None:
        diversity, class_diversity = M.layout_diversity(subject_layouts), M.layout_diversity(class_layouts)
        measure = ("layout", getattr(scorer, "layout_measure", "layout feature distance"))
    else:
        diversity, class_diversity = M.diversity(subject_embs), M.diversity(class_embs)
        measure = ("identity", "1 - cos of identity embeddings (the scorer has no layout features)")
    result: dict[str, Any] = {
        "scorer": getattr(scorer, "name", type(scorer).__name__),
        "subject_fidelity": fid[0],
        "subject_fidelity_rel": fid[1],
        "prompt_fidelity": M.fraction(match_all),
        "judged_subject": M.fraction(subject_judged),
        "judged_in_scene": M.fraction(subject_in_scene),
        "class_drift": M.subject_fidelity(torch.cat(class_embs), ref)[0] if class_embs else None,
        "class_drift_share": M.fraction(drift_all),
        "diversity": diversity,
        "class_diversity": class_diversity,
        "diversity_measure": measure[0],
        "diversity_measure_detail": measure[1],
        "reference_self_similarity": M.reference_self_similarity(ref),
        "drift_threshold": tau,
        "drift_calibration": calib,
        "n_references": len(references),
    }
    if subject_clip:
        result["clip_i"] = float(M.cosine_matrix(torch.cat(subject_clip), ref_clip).mean())
    if clip_t:
        result["clip_t"] = sum(clip_t) / len(clip_t)
    if codec_images:
        result["codec_ceiling"] = codec_ceiling(scorer.embed(codec_images), ref)
    result["per_prompt"] = per_prompt
    return result


def codec_ceiling(codec_emb: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Round-tripped references (row i: reference i through the VAE) scored like generations.

    ``subject_fidelity``: mean cosine of each round-tripped reference to the *other* original
    references (what a perfect generation, a new photo of the subject, would score after decoding;
    the same-image pairs are left out as they are for ``reference_self_similarity``);
    ``subject_fidelity_rel``: that over ``reference_self_similarity`` (1.0: the codec loses no
    likeness); ``same_image``: mean cosine of each reference to its own round trip."""
    sim = M.cosine_matrix(codec_emb, ref)
    fid = M.off_diagonal_mean(sim)
    return {"subject_fidelity": fid, "subject_fidelity_rel": fid / M.reference_self_similarity(ref),
            "same_image": float(sim.diagonal().mean())}


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
    scorer: str | None = None,
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
    threshold (the toy scorer renders its own when not given). ``scorer`` None: the model's (toy
    for the toy world, else clip-dino with ``scorer_model``), see :func:`choose_scorer`. Writes
    ``out`` (default ``RUN/evaluate`` for a run folder) and returns the metrics.
    """
    from dreamlock.model_defaults import world_of

    references = load_reference_images(reference)
    impostor_images = load_reference_images(impostors) if impostors is not None else None
    # fail on missing or bad scorer weights before loading a model: a local model's world is read
    # off its files (anything else is loaded first, and evaluate_with chooses by its world)
    scorer_obj: str | Scorer | None = None
    if scorer is not None or Path(run).exists():
        scorer_obj = choose_scorer(world_of(run) if scorer is None else None, scorer, scorer_model)
    generator = _load_generator(run)
    if out is None:
        out = Path(run) / "evaluate" if Path(run).is_dir() else Path(f"evaluate-{Path(str(run)).name}")
    return evaluate_with(generator, references, prompts, seeds, scorer_obj, out, steps, guidance, trigger, class_word,
                         scorer_model, impostor_images=impostor_images, progress=progress, run=str(run))
