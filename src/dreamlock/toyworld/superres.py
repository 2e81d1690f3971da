"""The super-resolution stage in the toy world: 16 px -> 64 px (the x4 factor of SD's upscaler, at
the toy scale: the toy VAE downsamples by 4, so the low-resolution image is the latents' size).

At 16 px a subject's detail (dots, stripes, an emblem) is a few pixels of colour; a generic upscaler
must guess it, one fine-tuned on the subject's photos can redraw it. ``write_sr_dataset`` renders
the generic pretraining set (plain objects and random patterned ones, every scene); ``judge_upscaling``
measures how much of a subject comes back from 16 px.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from dreamlock.toyworld.render import Look, random_labels, render_look
from dreamlock.toyworld.subjects import builtin_subject, make_subject, reference_images, render_subject
from dreamlock.toyworld.vocab import SCENE_PHRASES, SCENES, caption_for

#: the toy upscaler's factor and sizes
FACTOR, HIGH = 4, 64
LOW = HIGH // FACTOR


def downscale(image: Image.Image) -> Image.Image:
    """The low-resolution copy an upscaler starts from (box filter, as the training pairs are made)."""
    return image.resize((image.width // FACTOR, image.height // FACTOR), Image.Resampling.BOX)


def write_sr_dataset(folder: str | Path, n: int, seed: int = 0, patterned: float = 0.5) -> Path:
    """``n`` 64 px renders with captions: plain objects, and (share ``patterned``) random subjects with a
    pattern, marking or emblem, on every scene. Subjects made for the report are not excluded by name,
    but ``make_subject`` draws from a space of thousands of looks."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = np.random.default_rng([seed, i, 77])
        labels = random_labels(rng)
        look = make_subject(rng).look() if rng.random() < patterned else Look(labels["class"], labels["colour"])
        render_look(look, labels["scene"], rng, HIGH).save(folder / f"{i:05d}.png", compress_level=1)
        (folder / f"{i:05d}.txt").write_text(caption_for(look.cls, look.colour, labels["scene"]))
    return folder


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-10))


def _high_pass(image: Image.Image) -> np.ndarray:
    """The image minus its blur (radius 1.5 px at 64 px): the fine detail (edges, stripes, dots)."""
    blurred = image.filter(ImageFilter.GaussianBlur(1.5))
    return np.asarray(image, dtype=np.float64) - np.asarray(blurred, dtype=np.float64)


def pixel_scores(images: list[Image.Image], truth: list[Image.Image]) -> dict:
    """Against the true renders: PSNR of the whole image (dB), and PSNR of its fine detail (the
    high-pass part, so a blurry guess and wrong detail both score low). These need no judge: what
    a person comparing the images side by side sees."""
    psnr = [_psnr(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)) for a, b in zip(images, truth)]
    detail = [_psnr(_high_pass(a), _high_pass(b)) for a, b in zip(images, truth)]
    return {"psnr": float(np.mean(psnr)), "detail_psnr": float(np.mean(detail))}


def judge_upscaling(upscale, subject: str, prompt: str, seeds: int = 4, steps: int = 20) -> dict:
    """Render the subject anew (every scene, ``seeds`` poses each: never a training photo), shrink each
    to 16 px, upscale it with ``upscale(images, prompt, seeds) -> images`` (``prompt`` with the scene's
    phrase, "a photo of sks heart on the beach", as a chained generation's prompt names it; seeds: the
    images' indices) and score the results as `evaluate` scores generations: subject fidelity against
    the references, the oracle's subject verdict, and how often the oracle reads the subject's detail
    and detail colour. Bicubic upscaling and the
    true 64 px renders are scored the same way (floor and ceiling). ``pixel_scores`` compares each
    image with its true render (PSNR, detail PSNR): the oracle judges the subject alone and was fooled
    by stripe bands without the star's outline on an empty backdrop (2026-11-28); PSNR is not."""
    from dreamlock.evaluation import metrics
    from dreamlock.evaluation.scorers.toy import ToyScorer

    spec = builtin_subject(subject)
    truth = [render_subject(spec, scene, np.random.default_rng([s, 555, i]), HIGH)
             for i, scene in enumerate(SCENES) for s in range(seeds)]
    small = [downscale(im) for im in truth]
    scorer = ToyScorer()
    ref = scorer.embed(reference_images(spec))
    tau = scorer.subject_threshold if scorer.subject_threshold is not None else metrics.drift_threshold(ref)[0]

    def score(images: list[Image.Image], pixels: bool = True) -> dict:
        emb = scorer.embed(images)
        calls = scorer.attributes(images)
        return {"subject_fidelity_rel": metrics.subject_fidelity(emb, ref)[1],
                "judged_subject": metrics.fraction(metrics.is_subject(emb, ref, tau)),
                "detail": float(np.mean([c["detail"] == spec.detail and c["detail_colour"] == spec.detail_colour
                                         for c in calls])),
                **(pixel_scores(images, truth) if pixels else {})}

    upscaled = []
    for i, scene in enumerate(SCENES):  # the prompt names the scene, as the prompt of a chained generation does
        phrase = SCENE_PHRASES[scene]
        part = list(range(i * seeds, (i + 1) * seeds))
        upscaled += upscale([small[j] for j in part], f"{prompt} {phrase}" if phrase else prompt, part)
    bicubic = [im.resize((HIGH, HIGH), Image.Resampling.BICUBIC) for im in small]
    return {"subject": subject, "n": len(truth), "upscaled": score(upscaled), "bicubic": score(bicubic),
            "truth": score(truth, pixels=False), "images": (small, upscaled, truth)}
