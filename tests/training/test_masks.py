"""Masked training (data/masks.py, training/data.py): the weighted loss against a hand computation, masks to
latent weights, flips kept aligned, bad masks refused, and the loss on the tiny random model with
white masks equal to the unmasked one. (Plumbing tests; whether it helps locking is measured in
benchmarks/RESULTS.md.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dreamlock.errors import UserError
from dreamlock.training.data import Bucket, ImageSet, TrainData, loss_weights
from dreamlock.data.masks import MASK_DIR, check_masks, load_masks, mask_files
from dreamlock.training.prior import per_sample_mse, prior_preservation_loss
from dreamlock.training.api import prepare_trainer
from dreamlock.training.dataset import find_images


def test_weighted_mse_matches_hand_computation():
    pred = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[[1.0, 3.0]], [[2.0, 0.0]]]])  # errors: channel 0 (1, 9), channel 1 (4, 0)
    weight = torch.tensor([[[[1.0, 0.0]]]])  # only the left pixel counts, in both channels
    assert per_sample_mse(pred, target, weight).item() == pytest.approx((1 + 4) / 2)
    half = torch.tensor([[[[1.0, 0.5]]]])
    assert per_sample_mse(pred, target, half).item() == pytest.approx((1 + 4 + 0.5 * 9 + 0.5 * 0) / 3)
    assert per_sample_mse(pred, target, torch.ones(1, 1, 1, 2)).item() == pytest.approx(per_sample_mse(pred, target).item())


def test_prior_loss_weights_only_where_given():
    pred, target = torch.zeros(2, 1, 1, 2), torch.tensor([1.0, 3.0, 1.0, 3.0]).view(2, 1, 1, 2)
    weight = torch.tensor([[1.0, 0.0], [1.0, 1.0]]).view(2, 1, 1, 2)  # instance row masked, class row not
    loss, prior = prior_preservation_loss(pred, target, 1, 0.5, pixel_weight=weight)
    assert prior.item() == pytest.approx(5.0) and loss.item() == pytest.approx(1.0 + 0.5 * 5.0)


def test_loss_weights_are_area_shares_with_background():
    masks = torch.zeros(1, 1, 4, 4)
    masks[..., :2, :2] = 1.0  # the top-left latent cell fully inside, one cell half inside
    masks[..., 2, 2] = 1.0
    w = loss_weights(masks, (2, 2), background=0.1)
    assert w.shape == (1, 1, 2, 2)
    assert torch.allclose(w[0, 0], torch.tensor([[1.0, 0.1], [0.1, 0.1 + 0.9 * 0.25]]))


def _write(folder, name, size, value=255):
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("L" if folder.name == MASK_DIR else "RGB", size, value).save(folder / name)


def test_masks_found_by_name_and_checked(tmp_path):
    _write(tmp_path, "a.png", (8, 8))
    _write(tmp_path, "b.jpg", (8, 8))
    images = find_images(tmp_path)
    _write(tmp_path / MASK_DIR, "a.png", (8, 8))
    assert mask_files(images) == [tmp_path / MASK_DIR / "a.png", None]
    with pytest.raises(UserError, match=r"b.jpg: no mask .*masks.*b.png.*masked_loss = false"):
        check_masks(images)
    _write(tmp_path / MASK_DIR, "b.png", (6, 8))
    with pytest.raises(UserError, match=r"b.png: 6x8, but its image is 8x8"):
        check_masks(images)
    _write(tmp_path / MASK_DIR, "b.png", (8, 8), value=0)
    with pytest.raises(UserError, match=r"b.png: all black"):
        check_masks(images)
    _write(tmp_path / MASK_DIR, "b.png", (8, 8))
    assert check_masks(images) == mask_files(images)
    assert load_masks(check_masks(images), (4, 4)).shape == (2, 1, 4, 4)


def test_flipped_weights_follow_flipped_latents():
    """Each picked example's weights mirror exactly when its latents do."""
    latents = torch.zeros(3, 1, 2, 2)
    latents[..., 0] = 1.0  # left column marked
    weight = latents.clone()
    images = ImageSet(latents, latents.flip(-1), ["p"] * 3, torch.zeros(3, 4), None, (weight, weight.flip(-1)))
    data = TrainData([Bucket(images, None)], batch_size=3, seed=0, caption_dropout=0.0)
    gen = torch.Generator().manual_seed(0)
    flips = 0
    for number in range(8):
        batch = data.batch(number, gen)
        assert torch.equal(batch.loss_weight, batch.latents)
        flips += int((batch.latents[:, 0, 0, 1] == 1).sum())
    assert 0 < flips < 24  # both ways were drawn


def _white_masks(folder):
    for image in find_images(folder):
        with Image.open(image) as im:
            _write(folder / MASK_DIR, image.name, im.size)


def test_white_masks_give_the_unmasked_loss(make_config, instance_dir):
    """Tiny random model: masks that cover everything change nothing; a run without masks is refused."""
    with pytest.raises(UserError, match="no mask for masked_loss"):
        prepare_trainer(make_config(masked_loss=True, output=str(instance_dir.parent / "refused")))
    plain = prepare_trainer(make_config(with_prior_preservation=True, output=str(instance_dir.parent / "plain")))
    _white_masks(instance_dir)
    masked = prepare_trainer(make_config(with_prior_preservation=True, masked_loss=True, masked_loss_background=0.0,
                                         output=str(instance_dir.parent / "masked")))
    assert masked.data.instance.loss_weight is not None and plain.data.instance.loss_weight is None
    for number in range(2):
        a = plain.micro_loss(number, torch.Generator().manual_seed(number))[1]
        b = masked.micro_loss(number, torch.Generator().manual_seed(number))[1]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5) and b["prior_loss"] == pytest.approx(a["prior_loss"])


def test_masked_background_leaves_the_loss(make_config, instance_dir):
    """Tiny random model: a mask over the left half, background weight 0: the latent weights are 1 on
    the left half and 0 on the right, and they reach the loss (it differs from the unmasked one)."""
    plain = prepare_trainer(make_config(output=str(instance_dir.parent / "plain")))
    for image in find_images(instance_dir):
        mask = np.zeros((32, 32), dtype=np.uint8)
        mask[:, :16] = 255
        (instance_dir / MASK_DIR).mkdir(exist_ok=True)
        Image.fromarray(mask).save(instance_dir / MASK_DIR / image.name)
    trainer = prepare_trainer(make_config(masked_loss=True, masked_loss_background=0.0))
    w = trainer.data.instance.loss_weight[0]
    half = w.shape[-1] // 2
    assert torch.all(w[..., :half] == 1) and torch.all(w[..., half:] == 0)
    a = plain.micro_loss(0, torch.Generator().manual_seed(0))[1]["loss"]
    b = trainer.micro_loss(0, torch.Generator().manual_seed(0))[1]["loss"]
    assert abs(a - b) > 1e-4 * a
