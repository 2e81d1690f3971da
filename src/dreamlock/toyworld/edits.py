"""Editing pairs in the toy world: the same object, the same pose, another scene.

Paired data is free here: render a look on one scene, then the very same look and pose on another.
The instruction is the target scene's phrase in the toy vocabulary ("on the beach", "in the snow",
"in the forest", "at night"); the plain studio backdrop is never a target (no phrase names it).
Pairs show plain objects only, as pretraining does, so every subject with a pattern stays new to
an editor trained on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dreamlock.toyworld.render import Look, render_look, sample_pose
from dreamlock.toyworld.vocab import CLASSES, COLOURS, SCENE_PHRASES, SCENES

#: scenes an edit can move to, and the instruction that asks for each
TARGETS: dict[str, str] = {scene: phrase for scene, phrase in SCENE_PHRASES.items() if phrase}


def instruction(scene: str) -> str:
    """The instruction that moves an object to ``scene``."""
    return TARGETS[scene]


def edit_pair(look: Look, source: str, target: str, seed: int, size: int = 64) -> tuple[Image.Image, Image.Image]:
    """(before, after): ``look`` at one pose on ``source``, then on ``target`` (each with its own scene
    variation and camera noise)."""
    pose = sample_pose(np.random.default_rng([seed, 1]), look.scale)
    before = render_look(look, source, np.random.default_rng([seed, 2]), size, pose)
    after = render_look(look, target, np.random.default_rng([seed, 3]), size, pose)
    return before, after


def random_edit(rng: np.random.Generator) -> tuple[Look, str, str]:
    """A plain look, a source scene (any) and a different target scene."""
    look = Look(CLASSES[int(rng.integers(len(CLASSES)))], list(COLOURS)[int(rng.integers(len(COLOURS)))])
    source = SCENES[int(rng.integers(len(SCENES)))]
    targets = [s for s in TARGETS if s != source]
    return look, source, targets[int(rng.integers(len(targets)))]


def write_edit_pairs(folder: str | Path, n: int, seed: int = 0, size: int = 64) -> Path:
    """``n`` pairs in the layout `dreamlock train --method ip2p` reads: ``NNNNN.png`` (after),
    ``NNNNN.txt`` (the instruction), ``input/NNNNN.png`` (before)."""
    folder = Path(folder)
    (folder / "input").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        look, source, target = random_edit(np.random.default_rng([seed, i]))
        before, after = edit_pair(look, source, target, seed * 1_000_003 + i, size)
        before.save(folder / "input" / f"{i:05d}.png", compress_level=1)
        after.save(folder / f"{i:05d}.png", compress_level=1)
        (folder / f"{i:05d}.txt").write_text(instruction(target))
    return folder


def judge_object_edits(editor, n: int = 40, seed: int = 10_000, steps: int = 20, guidance: float | None = None,
                       image_guidance: float | None = None) -> dict:
    """Edit ``n`` held-out plain objects (pairs drawn from ``seed``, disjoint from training's) to their
    target scenes, one seed each, and let the oracle judge: ``scene`` (the edit did what the
    instruction says), ``kept`` (class and colour of the object before), ``both``; the same figures
    for the true after-images give the oracle's own ceiling."""
    from dreamlock.toyworld.oracle import load_oracle

    befores, truths, asked = [], [], []
    for i in range(n):
        look, source, target = random_edit(np.random.default_rng([seed, i]))
        before, after = edit_pair(look, source, target, seed * 1_000_003 + i)
        befores.append(before)
        truths.append(after)
        asked.append((look, target))
    edited = editor.edit_many(befores, [instruction(t) for _, t in asked], list(range(n)), steps, guidance,
                              image_guidance)
    oracle = load_oracle()

    def rates(images):
        calls = oracle.predict(images)
        scene = [c["scene"] == t for c, (_, t) in zip(calls, asked)]
        kept = [c["class"] == lk.cls and c["colour"] == lk.colour for c, (lk, _) in zip(calls, asked)]
        return {"scene": float(np.mean(scene)), "kept": float(np.mean(kept)),
                "both": float(np.mean([s and k for s, k in zip(scene, kept)]))}

    return {"n": n, "edits": rates(edited), "truth": rates(truths), "images": (befores, edited)}


def judge_subject_edits(editor, subject: str, n_refs: int = 5, seeds: int = 2, steps: int = 20,
                        guidance: float | None = None, image_guidance: float | None = None) -> dict:
    """Edit each reference photo of ``subject`` to every target scene (``seeds`` edits each) and score
    them as `evaluate` scores DreamBooth generations: subject fidelity (absolute and relative to the
    references' self-similarity), the oracle's subject verdict, prompt fidelity (class and scene)."""
    from dreamlock.evaluation import metrics
    from dreamlock.evaluation.scorers.toy import ToyScorer
    from dreamlock.toyworld.subjects import builtin_subject, reference_images

    spec = builtin_subject(subject)
    refs = reference_images(spec, n_refs)
    jobs = [(ref, scene, 100 * r + s) for scene in TARGETS for r, ref in enumerate(refs) for s in range(seeds)]
    edited = editor.edit_many([j[0] for j in jobs], [instruction(j[1]) for j in jobs], [j[2] for j in jobs], steps,
                              guidance, image_guidance)
    targets = [j[1] for j in jobs]
    scorer = ToyScorer()
    gen, ref = scorer.embed(edited), scorer.embed(refs)
    fidelity, rel = metrics.subject_fidelity(gen, ref)
    tau = scorer.subject_threshold if scorer.subject_threshold is not None else metrics.drift_threshold(ref)[0]
    calls = scorer.attributes(edited)
    prompt = [c["class"] == spec.cls and c["scene"] == t for c, t in zip(calls, targets)]
    return {"subject": subject, "n": len(edited), "subject_fidelity": fidelity, "subject_fidelity_rel": rel,
            "judged_subject": metrics.fraction(metrics.is_subject(gen, ref, tau)),
            "prompt_fidelity": float(np.mean(prompt)), "images": (refs, edited)}
