"""Prior preservation: the loss against a hand computation; class images generated once, cached,
reused, and the user's own class images used first."""

from __future__ import annotations

import torch

from dreamlock.training.prior import class_images, prior_preservation_loss


def test_prior_loss_matches_hand_computation():
    pred = torch.tensor([[1.0, 2.0], [0.0, 0.0], [3.0, 3.0], [1.0, -1.0]]).view(4, 2, 1, 1)
    target = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 1.0], [0.0, 0.0]]).view(4, 2, 1, 1)
    # instance rows 0-1: mse = ((1+4)/2 + (1+1)/2) / 2 = (2.5 + 1) / 2 = 1.75
    # class rows 2-3:    mse = ((0+4)/2 + (1+1)/2) / 2 = (2 + 1) / 2 = 1.5
    loss, prior = prior_preservation_loss(pred, target, n_instance=2, prior_loss_weight=0.5)
    assert prior.item() == 1.5
    assert loss.item() == 1.75 + 0.5 * 1.5
    weighted, _ = prior_preservation_loss(pred, target, 2, 1.0, weights=torch.tensor([2.0, 0.0, 1.0, 1.0]))
    assert weighted.item() == (2.5 * 2 + 0) / 2 + 1.5


class _CountingPipe:
    """Stands in for the base pipeline: counts how many images it was asked for."""

    def __init__(self):
        self.calls = 0

    def __call__(self, prompts, height, width, num_inference_steps, guidance_scale, generator):
        from PIL import Image

        self.calls += len(prompts)
        return type("Out", (), {"images": [Image.new("RGB", (width, height), (i * 40, 0, 0)) for i in range(len(prompts))]})


def test_class_images_cached_and_user_images_first(tmp_path, images_writer):
    pipe = _CountingPipe()
    args = dict(base="some/model", class_prompt="a photo of dog", resolution=32, cache_root=tmp_path / "cache",
                batch_size=3, steps=2, guidance=7.5, seed=0)
    first = class_images(lambda: pipe, num=5, user_dir=None, **args)
    assert len(first) == 5 and pipe.calls == 5
    again = class_images(lambda: pipe, num=5, user_dir=None, **args)
    assert again == first and pipe.calls == 5  # reused, nothing generated
    user = images_writer(tmp_path / "mine", 2)
    mixed = class_images(lambda: pipe, num=5, user_dir=user, **args)
    assert [p.parent for p in mixed[:2]] == [user, user] and mixed[2:] == first[:3] and pipe.calls == 5
    other = class_images(lambda: pipe, num=2, user_dir=None, **{**args, "class_prompt": "a photo of cat"})
    assert pipe.calls == 7 and other[0].parent != first[0].parent  # another prompt, another cache folder
    assert not list((tmp_path / "cache").rglob("*.tmp"))


class _Pipe:
    """A stand-in pipeline that records which seeds it drew and can fail on a given call."""

    def __init__(self, fail_on: int | None = None):
        self.seeds: list[int] = []
        self.calls, self.fail_on = 0, fail_on

    def __call__(self, prompts, height, width, generator, **_):
        from PIL import Image

        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt  # the user pressed Ctrl-C (or the process is being stopped)
        self.seeds += [g.initial_seed() for g in generator]
        images = [Image.new("RGB", (width, height), (g.initial_seed() % 256, 0, 0)) for g in generator]
        return type("Out", (), {"images": images})()


def test_interrupted_class_generation_resumes_without_redoing_work(tmp_path):
    import pytest

    args = dict(base="some/model", class_prompt="a photo of a dog", num=6, resolution=8, user_dir=None,
                cache_root=tmp_path, batch_size=2, steps=1, guidance=1.0, seed=100)
    first = _Pipe(fail_on=2)
    with pytest.raises(KeyboardInterrupt):
        class_images(lambda: first, **args)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    done = sorted(folder.glob("class-*.png"))
    assert [p.name for p in done] == ["class-00000.png", "class-00001.png"] and first.seeds == [100, 101]
    (folder / ".class-00002.png.tmp").write_bytes(b"half an image")  # as if killed mid-write
    kept = [p.read_bytes() for p in done]
    second = _Pipe()
    paths = class_images(lambda: second, **args)
    assert second.seeds == [102, 103, 104, 105]  # only what was missing, with the seeds it would have had
    assert len(paths) == 6 and [p.read_bytes() for p in paths[:2]] == kept
    assert not list(folder.glob(".*.tmp"))  # the half-written file was replaced, then renamed into place
    assert all(p.suffix == ".png" for p in paths)


def test_a_full_disk_during_class_generation_keeps_the_finished_images(tmp_path, monkeypatch):
    import errno

    import pytest
    from PIL import Image

    from dreamlock.errors import WorkError

    args = dict(base="some/model", class_prompt="a photo of a dog", num=4, resolution=8, user_dir=None,
                cache_root=tmp_path, batch_size=4, steps=1, guidance=1.0, seed=0)
    save, saved = Image.Image.save, []

    def save_until_full(self, fp, *a, **k):
        if len(saved) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        saved.append(fp)
        return save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", save_until_full)
    with pytest.raises(WorkError, match=r"could not write class images in .*: No space left on device; the 2 "
                                        r"finished this time are kept; free space there") as e:
        class_images(lambda: _Pipe(), **args)
    assert "\n" not in str(e.value)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".png") == ["class-00000.png", "class-00001.png"]
    assert not list(folder.glob(".*"))  # no half-written image left behind


def test_class_images_with_their_own_captions_train_with_them(make_config, tmp_path, images_writer):
    """Class images of several scenes, each with a ``.txt`` of the prompt it was made from: each is
    trained against its own prompt; one without a sidecar gets the class prompt."""
    from dreamlock.training.api import prepare_trainer

    mine = images_writer(tmp_path / "class-mine", 3)
    files = sorted(mine.glob("*.png"))
    (files[0].with_suffix(".txt")).write_text("a photo of a dog on the beach\n")
    (files[1].with_suffix(".txt")).write_text("a photo of a dog in the snow\n")
    trainer = prepare_trainer(make_config(with_prior_preservation=True, class_data_dir=str(mine), num_class_images=3,
                                          class_prompt="a photo of a dog"))
    assert trainer.data.klass.prompts == ["a photo of a dog on the beach", "a photo of a dog in the snow",
                                          "a photo of a dog"]
    from dreamlock.training.text_cache import training_prompts

    assert set(trainer.data.klass.prompts) <= set(training_prompts(trainer.data, trainer.method, trainer.config))
    assert torch.isfinite(torch.tensor(trainer.optimizer_step()["loss"]))
