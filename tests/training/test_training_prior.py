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
