"""Recipe search for the toy-world demo recipes, on tuning subjects kept apart from the locking table.

Trains each named variant of a demo recipe on each subject (prior preservation on, except for
textual inversion), evaluates it with the toy oracle at the toy guidance and prints one JSON line
per run. The locking table (benchmarks/locking.py) then measures the chosen recipes on *other*
subjects, so that the table is not tuned to its own subjects.

    python benchmarks/recipe_search.py --subjects twotone-cross emblem-triangle --variants lora lora_conv_te
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dreamlock.data.masks import MASK_DIR
from dreamlock.evaluation import evaluate
from dreamlock.generation import generate
from dreamlock.toyworld.demo import TOY_LORA_TARGETS, TRIGGER, by_prompt, demo_train_config, judge_generations
from dreamlock.toyworld.subjects import builtin_subject, write_reference_set
from dreamlock.toyworld.base import shipped_base
from dreamlock.toyworld.vocab import SCENES, caption_for, subject_prompt
from dreamlock.training.api import train

ATTENTION = ["to_q", "to_k", "to_v", "to_out.0"]
CONV_TE = dict(lora_target_modules=TOY_LORA_TARGETS, train_text_encoder=True)
#: the best tuning recipe of 2026-11-28 (the demo's LoRA recipe since 2026-12-07)
LORA_1200 = dict(CONV_TE, prior_loss_weight=0.3, max_train_steps=1200)


def two_scenes(other: str) -> tuple[str, ...]:
    """Reference scenes: 3 plain photos and 2 in ``other``."""
    return ("plain",) * 3 + (other,) * 2


def full_forest2(steps: int, prior: float | None = None, lr: float | None = None) -> tuple[str, dict]:
    """A full fine-tune variant on the demo's photos (3 plain + 2 forest); prior weight and lr default to the recipe's."""
    overrides = dict(max_train_steps=steps, ref_scenes=two_scenes("forest"))
    if prior is not None:
        overrides["prior_loss_weight"] = prior
    if lr is not None:
        overrides["learning_rate"] = lr
    return "full", overrides


#: name -> (method, overrides of the demo recipe). The 2026-11-26 variants first, then 2026-11-28's.
VARIANTS = {
    "lora": ("lora", dict(lora_target_modules=ATTENTION, train_text_encoder=False, max_train_steps=300)),
    "lora_te": ("lora", dict(lora_target_modules=ATTENTION, train_text_encoder=True, max_train_steps=300)),
    "lora_conv": ("lora", dict(lora_target_modules=TOY_LORA_TARGETS, train_text_encoder=False, max_train_steps=300)),
    "lora_conv_te": ("lora", dict(CONV_TE, max_train_steps=300)),
    "lora_conv_te_lr2e-3": ("lora", dict(CONV_TE, learning_rate=2e-3, max_train_steps=300)),
    "lora_conv_te_600": ("lora", dict(CONV_TE, max_train_steps=600)),
    "lora_conv_te_lr3e-3": ("lora", dict(CONV_TE, learning_rate=3e-3, max_train_steps=300)),
    "lora_conv_te_noprior": ("lora", dict(CONV_TE, with_prior_preservation=False, max_train_steps=300)),
    "lora_conv_te_r32_lr2e-3": ("lora", dict(CONV_TE, rank=32, learning_rate=2e-3, max_train_steps=300)),
    "lora_conv_te_1200": ("lora", dict(CONV_TE, max_train_steps=1200)),
    "lora_conv_te_1200_prior0.3": ("lora", dict(CONV_TE, prior_loss_weight=0.3, max_train_steps=1200)),
    "lora_conv_te_1200_prior0.1": ("lora", dict(CONV_TE, prior_loss_weight=0.1, max_train_steps=1200)),
    # class images of every scene, each trained with its own scene's class prompt (2026-11-28, 7th session)
    "lora_conv_te_1200_prior0.3_scenes": ("lora", dict(CONV_TE, prior_loss_weight=0.3, max_train_steps=1200,
                                                       class_scenes=True)),
    "lora_conv_te_1200_scenes": ("lora", dict(CONV_TE, max_train_steps=1200, class_scenes=True)),
    # attention only (token-bound), the 1,200-step lighter-prior recipe (2026-12-07, eleventh session)
    "lora_te_1200_prior0.3": ("lora", dict(lora_target_modules=ATTENTION, train_text_encoder=True, prior_loss_weight=0.3,
                                          max_train_steps=1200)),
    "lora_conv_te_1200_prior0.3_lr5e-4": ("lora", dict(CONV_TE, prior_loss_weight=0.3, learning_rate=5e-4,
                                                       max_train_steps=1200)),
    # masked training: the references' loss counts on the subject, the background at 0.1 / 0 (2026-12-07, 12th session)
    "lora_conv_te_1200_prior0.3_masked": ("lora", dict(LORA_1200, masked_loss=True)),
    "lora_conv_te_1200_prior0.3_masked0": ("lora", dict(LORA_1200, masked_loss=True, masked_loss_background=0.0)),
    # references in two backgrounds: 3 plain + 2 forest / night / beach renders, each captioned with its scene
    # (12th session)
    "lora_conv_te_1200_prior0.3_refs_forest2": ("lora", dict(LORA_1200, ref_scenes=two_scenes("forest"))),
    "lora_conv_te_1200_prior0.3_refs_night2": ("lora", dict(LORA_1200, ref_scenes=two_scenes("night"))),
    "lora_conv_te_1200_prior0.3_refs_beach2": ("lora", dict(LORA_1200, ref_scenes=two_scenes("beach"))),
    "lora_conv_te_600_refs_forest2": ("lora", dict(CONV_TE, max_train_steps=600, ref_scenes=two_scenes("forest"))),
    "lora_conv_te_600_prior0.3_refs_forest2": ("lora", dict(LORA_1200, max_train_steps=600,
                                                            ref_scenes=two_scenes("forest"))),
    # 13th session, the two-scene photos (3 plain + 2 forest): the demo's LoRA at batch 2, then the other methods
    "lora_conv_te_1200_prior0.3_b2_refs_forest2": ("lora", dict(LORA_1200, train_batch_size=2,
                                                                ref_scenes=two_scenes("forest"))),
    # 14th session: the demo's LoRA in fewer steps at a higher learning rate (the demo's time, issue 15)
    "lora_conv_te_600_prior0.3_lr2e-3_refs_forest2": ("lora", dict(LORA_1200, max_train_steps=600, learning_rate=2e-3,
                                                                   ref_scenes=two_scenes("forest"))),
    "lora_conv_te_400_prior0.3_lr3e-3_refs_forest2": ("lora", dict(LORA_1200, max_train_steps=400, learning_rate=3e-3,
                                                                   ref_scenes=two_scenes("forest"))),
    "lora_conv_te_600_prior0.3_lr2e-3_b2_refs_forest2": ("lora", dict(LORA_1200, max_train_steps=600, learning_rate=2e-3,
                                                                      train_batch_size=2, ref_scenes=two_scenes("forest"))),
    "lora_conv_te_400_prior0.3_lr3e-3_b2_refs_forest2": ("lora", dict(LORA_1200, max_train_steps=400, learning_rate=3e-3,
                                                                      train_batch_size=2, ref_scenes=two_scenes("forest"))),
    "lora_conv_te_300_prior0.3_lr4e-3_refs_forest2": ("lora", dict(LORA_1200, max_train_steps=300, learning_rate=4e-3,
                                                                   ref_scenes=two_scenes("forest"))),
    "lora_conv_te_400_prior0.3_lr3e-3_cosine_refs_forest2": ("lora", dict(LORA_1200, max_train_steps=400, learning_rate=3e-3,
                                                                          lr_scheduler="cosine",
                                                                          ref_scenes=two_scenes("forest"))),
    "lora_conv_te_600_prior0.3_lr2e-3_cosine_refs_forest2": ("lora", dict(LORA_1200, max_train_steps=600, learning_rate=2e-3,
                                                                          lr_scheduler="cosine",
                                                                          ref_scenes=two_scenes("forest"))),
    # 2026-12-07 (fifteenth session): min-SNR weighting (gamma 5) on the short recipe
    "lora_conv_te_400_prior0.3_lr3e-3_snr5_refs_forest2": ("lora", dict(LORA_1200, max_train_steps=400, learning_rate=3e-3,
                                                                        snr_gamma=5.0, ref_scenes=two_scenes("forest"))),
    # the class-image-free prior: the base's own prediction for the class prompt on the instance latents
    "lora_conv_te_1200_prior0.3_predprior_refs_forest2": ("lora", dict(LORA_1200, prior_mode="prior_prediction",
                                                                       ref_scenes=two_scenes("forest"))),
    "lora_conv_te_1200_prior1_predprior_refs_forest2": ("lora", dict(LORA_1200, prior_mode="prior_prediction",
                                                                     prior_loss_weight=1.0, ref_scenes=two_scenes("forest"))),
    "full_600_refs_forest2": full_forest2(600),
    "full_600_prior0.3_refs_forest2": full_forest2(600, prior=0.3),
    "full_1200_prior0.3_refs_forest2": full_forest2(1200, prior=0.3),
    "full_600_prior0.3_lr2e-4_refs_forest2": full_forest2(600, prior=0.3, lr=2e-4),
    "full_300_prior0.3_lr2e-4_refs_forest2": full_forest2(300, prior=0.3, lr=2e-4),
    "full_300_prior0.3_lr4e-4_refs_forest2": full_forest2(300, prior=0.3, lr=4e-4),
    # 16th session: the full fine-tune's recipe in fewer steps, for the demo's time
    "full_400_prior0.3_lr3e-4_refs_forest2": full_forest2(400, prior=0.3, lr=3e-4),
    "full_400_prior0.15_lr3e-4_refs_forest2": full_forest2(400, prior=0.15, lr=3e-4),
    "pivotal_1200_prior0.3_refs_forest2": ("pivotal", dict(max_train_steps=1200, prior_loss_weight=0.3,
                                                           ref_scenes=two_scenes("forest"))),
    "pivotal_600_prior0.3_refs_forest2": ("pivotal", dict(max_train_steps=600, prior_loss_weight=0.3,
                                                          ref_scenes=two_scenes("forest"))),
    # 14th session: pivotal's learned token capped at 3x (as the TI recipe; uncapped it grows 25-50x)
    "pivotal_600_prior0.3_cap3_refs_forest2": ("pivotal", dict(max_train_steps=600, prior_loss_weight=0.3,
                                                               embedding_norm_cap=3.0, ref_scenes=two_scenes("forest"))),
    "ti_refs_forest2": ("ti", dict(ref_scenes=two_scenes("forest"))),
    # the learned token's norm capped at 1x / 3x the class word's (it grew 25-50x without a cap)
    "ti_cap1_refs_forest2": ("ti", dict(embedding_norm_cap=1.0, ref_scenes=two_scenes("forest"))),
    "ti_cap3_refs_forest2": ("ti", dict(embedding_norm_cap=3.0, ref_scenes=two_scenes("forest"))),
    "full": ("full", dict(max_train_steps=300)),
    "full_lr3e-4": ("full", dict(learning_rate=3e-4, max_train_steps=300)),
    "full_lr2e-4": ("full", dict(learning_rate=2e-4, max_train_steps=300)),
    "full_600": ("full", dict(max_train_steps=600)),
    "ti": ("ti", dict(max_train_steps=300)),
    "ti_600": ("ti", dict(max_train_steps=600)),
    "pivotal_conv": ("pivotal", dict(lora_target_modules=TOY_LORA_TARGETS, max_train_steps=300)),
    "pivotal_conv_te": ("pivotal", dict(CONV_TE, max_train_steps=300)),
}
#: the judge's scenes: every scene but the plain one (a run trained on references in other scenes too
#: reports them all; the rows say which were new)
JUDGE_SCENES = [s for s in SCENES if s != "plain"]
METRICS = ["subject_fidelity_rel", "judged_subject", "prompt_fidelity", "class_drift", "class_drift_share", "diversity"]


def judge_new_scenes(run: Path, refs: Path, class_word: str, guidance: float | None = None) -> dict:
    """The demo's criterion: the share of 4 new scenes x 5 seeds that the oracle accepts as the subject
    in the asked scene, per scene (``guidance`` None: the model's, 1 for the toy base)."""
    prompts = [subject_prompt(TRIGGER, class_word, s) for s in JUDGE_SCENES]
    folder = run / ("judged" if guidance is None else f"judged-guidance{guidance:g}")
    written = generate(run, prompts, n=5, steps=20, out=folder, grid=True, guidance=guidance)
    images = by_prompt(prompts, written)
    verdict = judge_generations(refs, images)
    per_scene = {s: sum(verdict["per_image"][p.name] for p in images[prompt]) for s, prompt in zip(JUDGE_SCENES, prompts)}
    return {"accepted": verdict["accepted"], "total": verdict["total"], "per_scene": per_scene,
            "subject_elsewhere": verdict["subject_elsewhere"]}


def scene_class_images(class_word: str, folder: Path, per_scene: int = 8, base: Path | None = None) -> Path:
    """``per_scene`` images of the class in every scene by ``base`` (default: the shipped base), each
    with its prompt as sidecar."""
    if len(list(folder.glob("*.txt"))) == per_scene * len(SCENES):
        return folder
    for k, scene in enumerate(SCENES):
        prompt = caption_for(class_word, None, scene)
        for j, path in enumerate(generate(base or shipped_base(), [prompt], n=per_scene, seed=1000 * k, steps=20,
                                          out=folder / "tmp")):
            image = path.rename(folder / f"class-{scene}-{j:02d}.png")
            image.with_suffix(".txt").write_text(prompt + "\n")
    return folder


def scene_reference_set(spec, scenes: tuple[str, ...], folder: Path) -> Path:
    """References rendered in ``scenes`` (the poses of the plain reference set), each captioned with
    its scene's subject prompt."""
    if not folder.exists():
        write_reference_set(spec, folder, n=len(scenes), scenes=scenes, trigger=TRIGGER)
    return folder


def run_variant(work: Path, subject: str, name: str, seeds: int, full_evaluation: bool, base: Path | None = None,
                guidance: float | None = None) -> dict:
    method, overrides = VARIANTS[name]
    spec = builtin_subject(subject)
    refs = work / subject / "refs"
    if not (refs / MASK_DIR).exists():  # the masks too (masked variants), for folders written before them
        write_reference_set(spec, refs, n=5, masks=True)
    run = work / subject / name
    cfg = demo_train_config(refs, run, spec.class_word, method, None, False, work / "class-cache")
    # the variants are overrides of the demo recipe as it was when they were named (prior weight 1)
    cfg.update(validation_prompt=[], with_prior_preservation=method != "ti", prior_loss_weight=1.0)
    overrides = dict(overrides)
    if scenes := overrides.pop("ref_scenes", None):  # trained on these; judged against the plain references
        cfg["data"] = str(scene_reference_set(spec, scenes, work / subject / f"refs-{'-'.join(scenes)}"))
    if overrides.pop("class_scenes", False):
        cfg["class_data_dir"] = str(scene_class_images(spec.class_word, work / "class-scenes" / spec.class_word,
                                                       base=base))
    cfg.update(overrides)
    if base is not None:
        cfg["base"] = str(base)
    started = time.time()
    if not (run / "run.json").exists():
        train(cfg)
    row = {"subject": subject, "variant": name, "base": str(base) if base else "shipped", "train_s": round(time.time() - started),
           "guidance": guidance, "new_scenes": judge_new_scenes(run, refs, spec.class_word, guidance)}
    if full_evaluation:
        m = evaluate(run, refs, seeds=seeds, trigger=TRIGGER, class_word=spec.class_word, out=run / "evaluate",
                     progress=False)
        row.update({k: round(m[k], 3) for k in METRICS})
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subjects", nargs="+", default=["twotone-cross", "emblem-triangle"])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--work", type=Path, default=Path("runs/recipe-search"))
    p.add_argument("--base", type=Path, default=None, help="another base model than the shipped one")
    p.add_argument("--guidance", type=float, default=None, help="sampling guidance of the judge [default: the model's]")
    p.add_argument("--judge-only", action="store_true", help="only the new-scene judge, not the full evaluation")
    args = p.parse_args()
    for subject in args.subjects:
        for name in args.variants:
            print(json.dumps(run_variant(args.work, subject, name, args.seeds, not args.judge_only, args.base, args.guidance)), flush=True)


if __name__ == "__main__":
    main()
