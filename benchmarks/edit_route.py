"""The edit route in the toy world: pretrain a toy InstructPix2Pix editor, then measure it.

1. Writes ``--pairs`` editing pairs (plain objects, same pose, another scene; toyworld/edits.py).
2. Trains the editor with dreamlock's own trainer: `train --method ip2p --base toy` (the toy base's
   UNet widened to 8 input channels, the whole UNet trained).
3. Chooses the two guidance scales on tuning inputs only (held-out plain objects of another seed,
   and the stripy-star subject).
4. Reports on other inputs: held-out plain objects (does the edit change the scene as instructed,
   and keep class and colour?) and the report subjects (their reference photos edited into every
   scene, scored as `evaluate` scores DreamBooth generations), beside the untrained editor.
Writes benchmarks/edit_route.json and a look image; ``--ship`` copies the editor into the package
(``toy-editor``).

    python benchmarks/edit_route.py --work /tmp/edit-route --pairs 4000 --steps 1500 --ship
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from dreamlock.editing import Editor, load_editor
from dreamlock.families import get_family
from dreamlock.grid import make_grid
from dreamlock.model_defaults import write_model_defaults
from dreamlock.toyworld.edits import judge_object_edits, judge_subject_edits, write_edit_pairs
from dreamlock.toyworld.paths import EDITOR_DIR, resolve_model
from dreamlock.training.api import train

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from train_speed import machine  # noqa: E402

TUNING_SUBJECT = "stripy-star"
REPORT_SUBJECTS = ("dotty-heart", "checker-ring", "twotone-cross", "emblem-triangle")
GUIDANCE = (1.0, 2.0, 4.0)
IMAGE_GUIDANCE = (1.0, 1.5, 2.5)


def train_editor(work: Path, pairs: int, steps: int, batch: int, lr: float) -> tuple[Path, float]:
    data = work / "pairs"
    if not (data / f"{pairs - 1:05d}.png").is_file():
        write_edit_pairs(data, pairs)
    run = work / "run"
    t = time.time()
    if not (run / "run.json").is_file():
        resume = "latest" if (run / "checkpoints").is_dir() else None
        train(base="toy", data=str(data), output=str(run), method="ip2p", resolution=64, train_batch_size=batch,
              max_train_steps=steps, learning_rate=lr, lr_scheduler="constant_with_warmup",
              lr_warmup_steps=max(1, steps // 20), condition_dropout=0.05, caption_dropout=0.05,
              adam_weight_decay=0.0, checkpointing_steps=250, checkpoints_total_limit=1, seed=0, resume=resume)
    return run, time.time() - t


def untrained_editor(work: Path) -> Path:
    """The toy base converted and not trained: its image channels are zero, so it ignores the image."""
    folder = work / "untrained"
    if not (folder / "model_index.json").is_file():
        get_family("ip2p").load_pipeline(resolve_model("toy")).save_pretrained(folder, safe_serialization=True)
    return folder


def strip(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "images"}


def tune(editor: Editor, steps: int) -> tuple[dict, list[dict]]:
    rows = []
    for g in GUIDANCE:
        for ig in IMAGE_GUIDANCE:
            objects = judge_object_edits(editor, n=30, seed=20_000, steps=steps, guidance=g, image_guidance=ig)
            subject = judge_subject_edits(editor, TUNING_SUBJECT, seeds=1, steps=steps, guidance=g, image_guidance=ig)
            rows.append({"guidance": g, "image_guidance": ig, "objects": objects["edits"], **strip(subject)})
            print(f"tuning g={g} ig={ig}: objects {objects['edits']}, {TUNING_SUBJECT} rel "
                  f"{subject['subject_fidelity_rel']:.3f} prompt {subject['prompt_fidelity']:.3f}", flush=True)
    # both must hold: the edit happens (scene) and the subject survives (likeness)
    best = max(rows, key=lambda r: r["objects"]["both"] + r["prompt_fidelity"] * r["subject_fidelity_rel"])
    return {"guidance": best["guidance"], "image_guidance": best["image_guidance"]}, rows


def report(editor: Editor, steps: int, scales: dict) -> dict:
    objects = judge_object_edits(editor, n=60, seed=10_000, steps=steps, **scales)
    subjects = [judge_subject_edits(editor, s, seeds=2, steps=steps, **scales) for s in REPORT_SUBJECTS]
    return {"objects": strip(objects), "subjects": [strip(s) for s in subjects],
            "images": {"objects": objects["images"], **{s["subject"]: s["images"] for s in subjects}}}


def look(result: dict, path: Path) -> None:
    """Rows: each report subject's 5 references, then its edits (beach, snow, forest, night; first seed);
    then 10 held-out objects before and after."""
    tiles, cols = [], 10
    for subject in REPORT_SUBJECTS:
        refs, edited = result["images"][subject]
        tiles += refs + [Image.new("RGB", refs[0].size, "white")] * (cols - len(refs))
        firsts = edited[::2]  # seeds=2: the first seed of each (scene, reference)
        tiles += firsts[:cols] + firsts[cols:2 * cols]
    befores, edited = result["images"]["objects"]
    tiles += befores[:cols] + edited[:cols]
    grid = make_grid(tiles, cols=cols)
    grid.resize((grid.width * 2, grid.height * 2), Image.NEAREST).save(path)


def ship(run: Path, scales: dict) -> Path:
    pipe = get_family("ip2p").load_pipeline(run / "final" / "pipeline", dtype=torch.float16)
    shutil.rmtree(EDITOR_DIR, ignore_errors=True)
    pipe.save_pretrained(EDITOR_DIR, safe_serialization=True)
    write_model_defaults(EDITOR_DIR, scales["guidance"], world="toy", image_guidance=scales["image_guidance"])
    return EDITOR_DIR


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--pairs", type=int, default=4000)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--sample-steps", type=int, default=20)
    p.add_argument("--ship", action="store_true")
    p.add_argument("--out", type=Path, default=HERE / "edit_route.json")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    run, train_s = train_editor(args.work, args.pairs, args.steps, args.batch, args.lr)
    editor = load_editor(run)
    scales, tuning = tune(editor, args.sample_steps)
    trained = report(editor, args.sample_steps, scales)
    before = report(load_editor(untrained_editor(args.work)), args.sample_steps, scales)
    look(trained, HERE / "edit_route_look.png")
    result = {"machine": machine(), "command": " ".join(["python", *sys.argv]), "train_seconds": round(train_s, 1),
              "pairs": args.pairs, "steps": args.steps, "batch": args.batch, "lr": args.lr,
              "sample_steps": args.sample_steps, "chosen": scales, "tuning": tuning,
              "trained": {k: v for k, v in trained.items() if k != "images"},
              "untrained": {k: v for k, v in before.items() if k != "images"}}
    if args.ship:
        result["shipped"] = str(ship(run, scales).relative_to(Path(__file__).resolve().parents[1] / "src"))
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\n{'':<24}{'scene':>8}{'kept':>8}{'both':>8}")
    for name, r in (("editor", trained), ("untrained", before)):
        o = r["objects"]["edits"]
        print(f"objects, {name:<14}{o['scene']:>8.2f}{o['kept']:>8.2f}{o['both']:>8.2f}")
    print(f"objects, truth{'':<10}{trained['objects']['truth']['scene']:>8.2f}{trained['objects']['truth']['kept']:>8.2f}")
    print(f"\n{'subject':<18}{'rel (editor)':>14}{'judged':>8}{'prompt':>8}{'rel (untrained)':>17}")
    for s, u in zip(trained["subjects"], before["subjects"]):
        print(f"{s['subject']:<18}{s['subject_fidelity_rel']:>14.3f}{s['judged_subject']:>8.2f}"
              f"{s['prompt_fidelity']:>8.2f}{u['subject_fidelity_rel']:>17.3f}")


if __name__ == "__main__":
    main()
