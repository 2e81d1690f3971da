"""Wrong inputs across every command (tiny random SD; plumbing): each gives exit code 2, exactly
one ``error:`` line naming the problem (and the key, file or flag), no traceback, and leaves what
the user gave untouched. One table, so a new command or check adds a row."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dreamlock.cli import app


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_bases, images_writer):
    """A user's folder: photos, prepared data, a finished LoRA run, a model missing its UNet."""
    from dreamlock.training.api import train

    tiny_base = tiny_bases["sd"]
    root = tmp_path_factory.mktemp("wrong-inputs")
    data = images_writer(root / "data", 2)
    (root / "empty").mkdir()
    photos = images_writer(root / "photos", 1)
    captioned = images_writer(root / "captioned", 1)
    for image in captioned.glob("*.png"):
        image.with_suffix(".txt").write_text("a photo of a dog")
    run = train(base=str(tiny_base), data=str(data), output=str(root / "run"), method="lora", class_word="dog",
                max_train_steps=2, resolution=32, checkpointing_steps=1)
    ti = train(base=str(tiny_base), data=str(data), output=str(root / "ti"), method="ti", class_word="dog",
               max_train_steps=1, resolution=32)
    no_unet = root / "no-unet"
    shutil.copytree(tiny_base, no_unet)
    shutil.rmtree(no_unet / "unet")
    (root / "lora.bin").write_bytes(b"not even a pickle")
    return {"root": root, "base": tiny_base, "data": data, "run": run, "ti": ti, "photos": photos,
            "captioned": captioned, "no_unet": no_unet, "flux": tiny_bases["flux"],
            "ip2p": tiny_bases["ip2p"], "upscaler": tiny_bases["sd-upscale"]}


def _train(w, *extra: str) -> list[str]:
    return ["train", "--base", str(w["base"]), "--data", str(w["data"]), "--output", str(w["root"] / "new-run"),
            "--class-word", "dog", "--set", "resolution=32", *extra]


CASES = [
    # train: data and paths
    ("missing data folder", lambda w: ["train", "--base", str(w["base"]), "--data", str(w["root"] / "nope"),
                                       "--output", str(w["root"] / "r1")], "data folder not found"),
    ("empty data folder", lambda w: ["train", "--base", str(w["base"]), "--data", str(w["root"] / "empty"),
                                     "--output", str(w["root"] / "r2")], "no images"),
    ("caption without the trigger", lambda w: ["train", "--base", str(w["base"]), "--data", str(w["captioned"]),
                                               "--output", str(w["root"] / "r3")], "caption lacks the trigger word"),
    ("base model not found", lambda w: ["train", "--base", "./no/such/model", "--data", str(w["data"]),
                                        "--output", str(w["root"] / "r4")], "base model not found"),
    ("base folder missing its UNet", lambda w: ["train", "--base", str(w["no_unet"]), "--data", str(w["data"]),
                                                "--output", str(w["root"] / "r5")], "unet"),
    ("output already holds a run", lambda w: _train(w)[:5] + ["--output", str(w["run"]), *_train(w)[7:]],
     "already holds a run"),
    ("output is the data folder", lambda w: _train(w)[:5] + ["--output", str(w["data"]), *_train(w)[7:]],
     "is the data folder"),
    ("resume from a folder that is not a checkpoint", lambda w: _train(w, "--resume", str(w["photos"])),
     "not a checkpoint folder"),
    ("resume latest without checkpoints", lambda w: _train(w, "--resume", "latest"), "no checkpoint"),
    ("resume another run's checkpoint", lambda w: _train(w, "--resume", str(w["run"] / "checkpoints" / "checkpoint-1")),
     "a checkpoint of another run"),
    ("output inside a file", lambda w: _train(w)[:5] + ["--output", str(next(w["data"].glob("*.png")) / "run"),
                                                        *_train(w)[7:]], "is a file, not a folder"),
    # train: keys and values
    ("unknown config key", lambda w: _train(w, "--set", "learning_rat=1e-4"), "unknown key 'learning_rat'"),
    ("wrong type", lambda w: _train(w, "--set", "rank=x"), "key 'rank'"),
    ("negative steps", lambda w: _train(w, "--steps", "-5"), "key 'max_train_steps'"),
    ("unknown method", lambda w: _train(w, "--method", "magic"), "unknown method 'magic'"),
    ("unknown family", lambda w: _train(w, "--family", "sd9"), "unknown model family 'sd9'"),
    ("a family the model is not", lambda w: _train(w, "--family", "sdxl"), "so it is not a sdxl model"),
    ("prior preservation without a class", lambda w: ["train", "--base", str(w["base"]), "--data", str(w["data"]),
                                                      "--output", str(w["root"] / "r6"), "--prior-preservation"],
     "with_prior_preservation needs class_word"),
    ("select_best without checkpoints", lambda w: _train(w, "--select-best"), "set checkpointing_steps"),
    ("masked loss without masks", lambda w: _train(w, "--masked-loss"), "no mask for masked_loss; put one in"),
    ("a flow setting on a DDPM model", lambda w: _train(w, "--set", "weighting_scheme=logit_normal"),
     "weighting_scheme is for flow-matching models"),
    ("drop_t5 on a model without T5", lambda w: _train(w, "--set", "drop_t5=true"), "drop_t5 is for SD3"),
    ("NF4 without a GPU", lambda w: _train(w, "--memory-preset", "12gb"), "needs a CUDA GPU"),
    # the edit route
    ("ip2p data without the images before the edit", lambda w: _train(w, "--method", "ip2p"), "no image before the edit"),
    ("ip2p with prior preservation", lambda w: _train(w, "--method", "ip2p", "--prior-preservation"),
     "prior preservation does not apply"),
    ("samples while training an image editor", lambda w: ["train", "--base", str(w["ip2p"]), "--data", str(w["data"]),
                                                          "--output", str(w["root"] / "r8"), "--set",
                                                          "validation_prompt=['a dog']"],
     "validation_prompt generates from a prompt alone"),
    ("ip2p from a FLUX base", lambda w: ["train", "--base", str(w["flux"]), "--data", str(w["data"]), "--output",
                                         str(w["root"] / "r7"), "--method", "ip2p"], "it starts from a ip2p or sd model"),
    ("generate from an image editor", lambda w: ["generate", str(w["ip2p"]), "--prompt", "a dog"], "is an image editor"),
    ("edit with a text-to-image model", lambda w: ["edit", str(w["base"]), str(next(w["data"].glob("*.png"))),
                                                   "-i", "make it red"], "not an image editor"),
    ("edit a missing image", lambda w: ["edit", str(w["ip2p"]), str(w["root"] / "nope.png"), "-i", "make it red"],
     "cannot read the image to edit"),
    ("edit with an empty instruction", lambda w: ["edit", str(w["ip2p"]), str(next(w["data"].glob("*.png"))),
                                                  "-i", " "], "--instruction is empty"),
    # the super-resolution stage
    ("sr from a FLUX base", lambda w: ["train", "--base", str(w["flux"]), "--data", str(w["data"]), "--output",
                                       str(w["root"] / "r9"), "--method", "sr"], "it starts from a sd-upscale or sd or if-sr model"),
    ("sr as IF stage II from an SD base", lambda w: ["train", "--base", str(w["base"]), "--data", str(w["data"]),
                                                     "--output", str(w["root"] / "r10"), "--method", "sr", "--family",
                                                     "if-sr"], "it starts from a if-sr model, and"),
    ("generate from an upscaler", lambda w: ["generate", str(w["upscaler"]), "--prompt", "a dog"], "is an upscaler"),
    ("upscale with a text-to-image model", lambda w: ["generate", str(w["base"]), "--prompt", "a dog", "--upscale",
                                                      str(w["base"])], "not an upscaler"),
    # generate
    ("generate from a missing folder", lambda w: ["generate", str(w["root"] / "nope"), "--prompt", "a dog"],
     "base model not found"),
    ("generate an empty prompt", lambda w: ["generate", str(w["run"]), "--prompt", " "], "--prompt is empty"),
    ("generate with a LoRA for another family", lambda w: ["generate", str(w["flux"]), "--prompt", "a dog", "--lora",
                                                           str(w["run"] / "final" / "pytorch_lora_weights.safetensors")],
     "made for another model family"),
    ("generate with a pickled LoRA", lambda w: ["generate", str(w["base"]), "--prompt", "a dog", "--lora",
                                                str(w["root"] / "lora.bin")], "can run arbitrary code"),
    ("generate with a missing LoRA", lambda w: ["generate", str(w["base"]), "--prompt", "a dog", "--lora",
                                                str(w["root"] / "nope.safetensors")], "LoRA file not found"),
    ("generate from a checkpoint that is not kept", lambda w: ["generate", str(w["run"]), "--prompt", "a dog",
                                                               "--checkpoint", "999"], "999"),
    # export
    ("unknown export format", lambda w: ["export", str(w["run"]), "--format", "ckpt", "--out", str(w["root"] / "x")],
     "unknown export format 'ckpt'"),
    ("a format the run cannot fill", lambda w: ["export", str(w["ti"]), "--format", "kohya-lora", "--out",
                                                str(w["root"] / "x.safetensors")], "it has no LoRA"),
    ("unknown dtype", lambda w: ["export", str(w["run"]), "--format", "diffusers-lora", "--dtype", "fp8",
                                 "--out", str(w["root"] / "y")], "unknown --dtype 'fp8'"),
    ("export a folder that is not a run", lambda w: ["export", str(w["photos"]), "--format", "diffusers",
                                                     "--out", str(w["root"] / "z")], "not a dreamlock run"),
    # prepare and caption
    ("prepare a missing folder", lambda w: ["prepare", str(w["root"] / "nope"), str(w["root"] / "p1")], "nope"),
    ("prepare into its own source", lambda w: ["prepare", str(w["photos"]), str(w["photos"] / "out")], "inside"),
    ("prepare keeping nothing", lambda w: ["prepare", str(w["photos"]), str(w["root"] / "p2"), "--size", "64"],
     "no image was kept"),
    ("caption a missing folder", lambda w: ["caption", str(w["root"] / "nope"), "--trigger", "sks"], "nope"),
    # evaluate
    ("evaluate without references", lambda w: ["evaluate", str(w["run"]), "--reference", str(w["root"] / "empty")],
     "empty"),
]


def test_a_trigger_the_tokenizer_splits_warns_and_trains(world):
    """Not an error: one ``warning:`` line naming the pieces and the fix; the run goes on."""
    out = world["root"] / "split-trigger"
    result = CliRunner().invoke(app, ["train", "--base", str(world["base"]), "--data", str(world["data"]), "--output",
                                      str(out), "--trigger", "qzxv", "--class-word", "dog", "--steps", "1",
                                      "--set", "resolution=32", "--no-prior-preservation"])
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert result.exit_code == 0, result.stderr[-500:]
    assert len(warnings) == 1 and "trigger 'qzxv' splits into 4 tokens (q z x v)" in warnings[0], result.stderr[-500:]
    assert (out / "run.json").is_file()
    quiet = CliRunner().invoke(app, ["train", "--base", str(world["base"]), "--data", str(world["data"]), "--output",
                                     str(world["root"] / "one-token"), "--trigger", "sks", "--class-word", "dog",
                                     "--steps", "1", "--set", "resolution=32", "--no-prior-preservation"])
    assert quiet.exit_code == 0 and "warning:" not in quiet.stderr, quiet.stderr[-500:]


@pytest.mark.parametrize("name, args, says", CASES, ids=[c[0] for c in CASES])
def test_wrong_input_is_one_line_exit_2_and_changes_nothing(world, name, args, says):
    root = world["root"]
    before = {k: _digest(world[k]) for k in ("data", "run", "photos", "captioned")}
    result = CliRunner().invoke(app, args(world))
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2, (name, result.exit_code, result.stderr[-500:])
    assert "Traceback" not in result.stdout + result.stderr
    assert len(errors) == 1 and says in errors[0], (name, result.stderr[-500:])
    assert {k: _digest(world[k]) for k in before} == before
    assert not (root / "new-run" / "run.json").exists()
