"""Quality bar of the shipped toy base model: does it draw what the prompt asks?

Generates one image per prompt for fresh random (class, colour, scene) prompts with fresh seeds
and lets the toy oracle judge class, colour and scene. The bar (issue 4): each >= 90%.
Also measures how the oracle judges clean renders of the same prompts (its own ceiling), and the
prompts locking relies on, which name no colour ("a photo of a heart in the night"): there the
oracle's class and scene heads are lenient (a smeared object passes), so each generation must also
be accepted by the subject verifier as a plain object of its class in one of the body colours
(against 5 plain-scene renders per colour, the locking judge's rule), per scene.

    python benchmarks/base_quality.py [--n 96] [--seed 1000] [--guidance 1 2 5] [--model DIR] [--out FILE]

The first guidance value (default: the toy model's ``GUIDANCE``) also draws the grid.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import numpy as np
import torch

from dreamlock.generation import load_generator
from dreamlock.grid import make_grid
from dreamlock.toyworld.base import GUIDANCE, shipped_base
from dreamlock.toyworld.oracle import load_oracle
from dreamlock.toyworld.render import random_labels, render
from dreamlock.toyworld.vocab import caption_for

HERE = Path(__file__).parent


def measure(n: int = 96, seed: int = 1000, steps: int = 20, guidance: float = GUIDANCE, grid: Path | None = None,
            model: Path | None = None) -> dict:
    """Oracle-judged prompt match of a base model (default: the shipped one) on ``n`` fresh prompts
    (one fresh seed each)."""
    rng = np.random.default_rng(seed)
    labels = [random_labels(rng) for _ in range(n)]
    gen = load_generator(model or shipped_base())
    images = [gen.images(caption_for(lb["class"], lb["colour"], lb["scene"]), [seed + i], steps, guidance)[0]
              for i, lb in enumerate(labels)]
    oracle = load_oracle()
    judged = oracle.predict(images)
    clean = oracle.predict([render(lb["class"], lb["colour"], lb["scene"], seed + i) for i, lb in enumerate(labels)])
    result = {}
    for key in ("class", "colour", "scene"):
        result[key] = float(np.mean([j[key] == lb[key] for j, lb in zip(judged, labels)]))
        result[f"{key}_clean_renders"] = float(np.mean([j[key] == lb[key] for j, lb in zip(clean, labels)]))
    if grid is not None:
        make_grid(images[:48], cols=8).save(grid)
    return result


@functools.cache
def plain_look_references() -> dict:
    """(class, colour) -> oracle embeddings of 5 plain-scene renders of that plain object (made once
    per process: every batch and guidance is judged against the same references)."""
    from dreamlock.evaluation.scorers.toy import ToyScorer
    from dreamlock.toyworld.render import Look, render_look
    from dreamlock.toyworld.vocab import CLASSES, COLOURS

    scorer = ToyScorer()
    return {(cls, colour): scorer.embed([render_look(Look(cls, colour), "plain", np.random.default_rng([7, k]))
                                         for k in range(5)])
            for cls in CLASSES for colour in COLOURS}


def plain_object_verdicts(images, classes: list[str]) -> list[bool]:
    """Whether each image is accepted as a plain object of its class in some body colour."""
    from dreamlock.evaluation.metrics import is_subject
    from dreamlock.evaluation.scorers.toy import ToyScorer

    scorer = ToyScorer()
    emb = scorer.embed(images)
    verdict = [False] * len(images)
    for (cls, _), refs in plain_look_references().items():
        rows = [i for i, c in enumerate(classes) if c == cls]
        if rows:
            for i, ok in zip(rows, is_subject(emb[rows], refs, scorer.subject_threshold)):
                verdict[i] = verdict[i] or ok
    return verdict


def measure_colourless(n: int = 96, seed: int = 2000, steps: int = 20, guidance: float = GUIDANCE,
                       model: Path | None = None, grid: Path | None = None) -> dict:
    """Class prompts without a colour, ``n`` of them spread over the scenes: the oracle's class and
    scene verdicts, and the share accepted as a plain object of the class (per scene), for the
    generations and for clean renders in random colours (the ceiling)."""
    from dreamlock.toyworld.vocab import COLOURS, SCENES

    rng = np.random.default_rng(seed)
    labels = [dict(random_labels(rng), scene=SCENES[i % len(SCENES)]) for i in range(n)]
    gen = load_generator(model or shipped_base())
    images = [gen.images(caption_for(lb["class"], None, lb["scene"]), [seed + i], steps, guidance)[0]
              for i, lb in enumerate(labels)]
    clean = [render(lb["class"], list(COLOURS)[i % len(COLOURS)], lb["scene"], seed + i) for i, lb in enumerate(labels)]
    classes = [lb["class"] for lb in labels]
    result = {}
    for name, batch in (("", images), ("_clean_renders", clean)):
        judged = load_oracle().predict(batch)
        plain = plain_object_verdicts(batch, classes)
        for key in ("class", "scene"):
            result[key + name] = float(np.mean([j[key] == lb[key] for j, lb in zip(judged, labels)]))
        result["plain_object" + name] = float(np.mean(plain))
        result["plain_object_per_scene" + name] = {
            s: float(np.mean([ok for ok, lb in zip(plain, labels) if lb["scene"] == s])) for s in SCENES}
    if grid is not None:
        order = sorted(range(n), key=lambda i: SCENES.index(labels[i]["scene"]))
        make_grid([images[i] for i in order][:60], cols=12).save(grid)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=96)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--guidance", type=float, nargs="+", default=[GUIDANCE])
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped toy base)")
    p.add_argument("--out", type=Path, default=HERE / "base_quality.json")
    p.add_argument("--grid", type=Path, default=HERE / "base_quality_grid.png")
    p.add_argument("--colourless-grid", type=Path, default=HERE / "base_quality_colourless_grid.png")
    args = p.parse_args()
    results = {}
    print("| guidance | class | colour | scene | clean renders (oracle ceiling) |\n|---|---|---|---|---|")
    for i, guidance in enumerate(args.guidance):
        t = time.time()
        result = measure(args.n, args.seed, guidance=guidance, grid=args.grid if i == 0 else None, model=args.model)
        result.update(seconds=time.time() - t, threads=torch.get_num_threads(), n=args.n, seed=args.seed,
                      model=str(args.model or "shipped"), cpu_capability=torch.backends.cpu.get_cpu_capability(),
                      date=time.strftime("%Y-%m-%d"))
        results[f"{guidance:g}"] = result
        ceiling = "/".join(f"{result[k + '_clean_renders']:.0%}" for k in ("class", "colour", "scene"))
        print(f"| {guidance:g} | {result['class']:.1%} | {result['colour']:.1%} | {result['scene']:.1%} | {ceiling} |", flush=True)
    print("\nprompts without a colour (what locking asks for): accepted as a plain object of the class\n"
          "| guidance | class | scene | plain object | per scene | clean renders |\n|---|---|---|---|---|---|")
    for i, guidance in enumerate(args.guidance):
        r = measure_colourless(args.n, args.seed + 1000, guidance=guidance, model=args.model,
                               grid=args.colourless_grid if i == 0 else None)
        results[f"{guidance:g}"]["colourless"] = r
        scenes = " ".join(f"{s} {v:.0%}" for s, v in r["plain_object_per_scene"].items())
        print(f"| {guidance:g} | {r['class']:.1%} | {r['scene']:.1%} | {r['plain_object']:.1%} | {scenes} | "
              f"{r['plain_object_clean_renders']:.0%} |", flush=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
