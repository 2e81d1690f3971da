"""The edit route on tiny random models (plumbing): an SD model converted to InstructPix2Pix predicts
what it predicted before; `train --method ip2p` trains the whole UNet on (before, instruction,
after) pairs and resumes exactly; `dreamlock edit` draws from the image it is given; LoRA trains on
an InstructPix2Pix base too. What the toy editor learns is measured in tests/toyworld/test_ip2p_toy.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from dreamlock.cli import app
from dreamlock.editing import edit
from dreamlock.exporting import export
from dreamlock.families import detect_family, get_family
from dreamlock.families.conditioning import Conditioning
from dreamlock.families.ip2p import from_sd
from dreamlock.training.api import prepare_trainer, train
from dreamlock.training.config import TrainConfig


def write_pairs(folder, n: int = 3, size: int = 32, seed: int = 0):
    """Edited images with an instruction each, and the images before the edit in input/."""
    rng = np.random.default_rng(seed)
    (folder / "input").mkdir(parents=True)
    for i in range(n):
        before = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(before).save(folder / "input" / f"{i}.png")
        Image.fromarray(255 - before).save(folder / f"{i}.png")  # the "edit": a negative
        (folder / f"{i}.txt").write_text("make it a negative")
    return folder


@pytest.fixture
def make(tiny_bases, tmp_path):
    data = write_pairs(tmp_path / "pairs")

    def config(**overrides) -> TrainConfig:
        values = dict(base=str(tiny_bases["sd"]), data=str(data), output=str(tmp_path / "run"), method="ip2p",
                      resolution=32, max_train_steps=3, learning_rate=1e-3, condition_dropout=0.3, random_flip=True)
        return TrainConfig.model_validate(values | overrides)

    return config


def test_a_converted_sd_model_predicts_what_it_predicted(tiny_bases):
    sd = get_family("sd").load(str(tiny_bases["sd"]))
    noisy, t = torch.randn(2, 4, 16, 16), torch.tensor([10, 500])
    cond = sd.encode_text(["a photo of a dog", "a red star"])
    want = sd.predict(noisy, t, cond)
    ip2p = get_family("ip2p")(from_sd(sd.pipe))
    assert ip2p.denoiser.config.in_channels == 8 and ip2p.pipe.unet.conv_in.weight.shape[1] == 8
    got = ip2p.predict(noisy, t, Conditioning(cond.embeds, extras={"image": torch.randn(2, 4, 16, 16)}))
    assert torch.allclose(want, got, atol=1e-5)


def test_ip2p_trains_the_unet_from_an_sd_base_and_leaves_the_rest(make):
    trainer = prepare_trainer(make())
    assert trainer.adapter.name == "ip2p" and trainer.adapter.denoiser.config.in_channels == 8
    unet = {k: v.clone() for k, v in trainer.adapter.denoiser.state_dict().items()}
    text = {k: v.clone() for k, v in trainer.adapter.text_encoders()[0].encoder.state_dict().items()}
    trainer.run()
    after = trainer.adapter.denoiser.state_dict()
    assert not torch.equal(unet["conv_in.weight"][:, 4:], after["conv_in.weight"][:, 4:])  # the image channels learn
    assert sum(not torch.equal(unet[k], after[k]) for k in unet) > len(unet) // 2
    assert all(torch.equal(v, trainer.adapter.text_encoders()[0].encoder.state_dict()[k]) for k, v in text.items())


def test_resume_equals_the_uninterrupted_run(make, tmp_path):
    straight = prepare_trainer(make(output=str(tmp_path / "a"), max_train_steps=4))
    straight.run()
    first = prepare_trainer(make(output=str(tmp_path / "b"), max_train_steps=4, checkpointing_steps=2))
    first.run(stop_after=2)
    resumed = prepare_trainer(make(output=str(tmp_path / "b"), max_train_steps=4, checkpointing_steps=2, resume="latest"))
    resumed.run()
    want, got = straight.adapter.denoiser.state_dict(), resumed.adapter.denoiser.state_dict()
    assert max((want[k] - got[k]).abs().max().item() for k in want) <= 1e-6


def _edits(run, image, tmp_path, name):
    files = edit(run, image, ["make it a negative"], n=2, steps=3, out=tmp_path / name)
    return np.stack([np.asarray(Image.open(f), dtype=np.float32) for f in files])


def test_edit_draws_from_the_image_it_is_given(make, tiny_bases, tmp_path):
    run = train(**make(max_train_steps=6, learning_rate=1e-2).model_dump(exclude={"config_version"}))
    exported = export(run, "diffusers", tmp_path / "exported")
    assert detect_family(exported) == "ip2p"
    pairs = make().data
    one, two = pairs / "input" / "0.png", pairs / "input" / "1.png"
    assert np.abs(_edits(run, one, tmp_path, "a") - _edits(run, two, tmp_path, "b")).mean() > 0.0
    untrained = tmp_path / "untrained"
    get_family("ip2p").load_pipeline(tiny_bases["sd"]).save_pretrained(untrained)
    # converted but untrained, the image channels are zero: the image cannot matter (so the check above can fail)
    assert np.abs(_edits(untrained, one, tmp_path, "c") - _edits(untrained, two, tmp_path, "d")).max() == 0.0


def test_lora_trains_on_an_ip2p_base(tiny_bases, make, tmp_path):
    run = train(**make(base=str(tiny_bases["ip2p"]), method="lora", output=str(tmp_path / "lora"), learning_rate=1e-2)
                .model_dump(exclude={"config_version"}))
    assert (run / "final" / "pytorch_lora_weights.safetensors").is_file()
    files = edit(run, make().data / "input" / "0.png", ["make it a negative"], n=1, steps=2, out=tmp_path / "e")
    assert len(files) == 1


def test_the_edit_command_writes_edits_and_a_grid(tiny_bases, make, tmp_path):
    image = make().data / "input" / "0.png"
    result = CliRunner().invoke(app, ["edit", str(tiny_bases["ip2p"]), str(image), "-i", "make it a negative",
                                      "-i", "put it on the beach", "-n", "2", "--steps", "2", "--out",
                                      str(tmp_path / "out"), "--grid"])
    assert result.exit_code == 0, result.stderr[-500:]
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(names) == 6 and sum(n.endswith("-grid.png") for n in names) == 2
    grid = Image.open(tmp_path / "out" / [n for n in names if n.endswith("grid.png")][0])
    assert grid.width > 3 * 32  # the input and two edits side by side
