"""The on-disk latent cache (tiny random SD; plumbing): a second start encodes nothing and gets the
same latents; a changed image, size or VAE misses; an interrupted encoding keeps its finished
chunks and leaves no half-written entry; a damaged entry is encoded again; a full disk only warns."""

from __future__ import annotations

import errno

import pytest
import torch
from safetensors.torch import load_file

from dreamlock.training import latent_cache
from dreamlock.training.api import build_data, load_adapter
from dreamlock.training.latent_cache import CACHE_DIR, CHUNK


def _counting(adapter):
    """Wrap the adapter's encoder; returns the list of chunk sizes it was called with."""
    calls, encode = [], adapter.encode_images

    def counted(pixels):
        calls.append(len(pixels))
        return encode(pixels)

    adapter.encode_images = counted
    return calls


def _tensors(data) -> list[torch.Tensor]:
    out = []
    for bucket in data.buckets:
        for images in (bucket.instance, bucket.klass):
            if images is not None:
                out += [images.latents] + ([images.flipped] if images.flipped is not None else [])
    return out


def _entries(config):
    return sorted((config.output / CACHE_DIR).glob("*.safetensors"))


@pytest.fixture
def flipped_config(make_config, tmp_path, images_writer):
    data = images_writer(tmp_path / "many", CHUNK + 4)
    return make_config(data=str(data), random_flip=True, with_prior_preservation=True, num_class_images=3,
                       class_generation_guidance=1.0)


def test_a_second_start_reads_every_latent_from_disk_and_equals_a_fresh_encoding(flipped_config):
    first = load_adapter(flipped_config)
    fresh = _tensors(build_data(flipped_config, first))
    assert len(_entries(flipped_config)) == CHUNK + 4 + 3  # instance and class images, each with its mirror
    again = load_adapter(flipped_config)
    calls = _counting(again)
    cached = _tensors(build_data(flipped_config, again))
    assert calls == []
    assert len(cached) == len(fresh) == 4
    assert all(torch.equal(a, b) for a, b in zip(fresh, cached))


def test_a_changed_image_size_or_vae_misses_the_cache(make_config, tmp_path, images_writer):
    data = images_writer(tmp_path / "few", 3)
    config = make_config(data=str(data), with_prior_preservation=False)
    build_data(config, load_adapter(config))
    images_writer(tmp_path / "other", 1, seed=7)
    (tmp_path / "other" / "img0.png").replace(data / "img1.png")  # the user replaced one photo
    adapter = load_adapter(config)
    calls = _counting(adapter)
    build_data(config, adapter)
    assert calls == [1]
    bigger = config.model_copy(update={"resolution": 40})
    adapter = load_adapter(bigger)
    calls = _counting(adapter)
    build_data(bigger, adapter)
    assert calls == [3]
    adapter = load_adapter(config)
    with torch.no_grad():
        next(adapter.vae.parameters()).add_(0.01)  # another VAE (a retrained base in the same folder)
    calls = _counting(adapter)
    build_data(config, adapter)
    assert calls == [3]


def test_an_interrupted_encoding_keeps_its_finished_chunks_and_no_half_entry(flipped_config):
    adapter = load_adapter(flipped_config)
    encode, calls = adapter.encode_images, []

    def dies_in_the_second_chunk(pixels):
        calls.append(len(pixels))
        if len(calls) == 3:  # chunk 1 and its mirror went through
            raise KeyboardInterrupt
        return encode(pixels)

    adapter.encode_images = dies_in_the_second_chunk
    with pytest.raises(KeyboardInterrupt):
        build_data(flipped_config, adapter)
    kept = _entries(flipped_config)
    assert len(kept) == CHUNK
    assert not list((flipped_config.output / CACHE_DIR).glob(".*"))
    for entry in kept:
        assert set(load_file(str(entry))) == {"latents", "flipped"}
    adapter = load_adapter(flipped_config)
    calls = _counting(adapter)
    build_data(flipped_config, adapter)
    assert sum(calls) == 2 * (4 + 3)  # only the unfinished instance images and the class images, with mirrors


def test_a_damaged_entry_or_a_stale_scratch_file_is_handled(make_config, tmp_path, images_writer):
    config = make_config(data=str(images_writer(tmp_path / "few", 2)), with_prior_preservation=False)
    fresh = _tensors(build_data(config, load_adapter(config)))
    damaged = _entries(config)[0]
    damaged.write_bytes(damaged.read_bytes()[:40])  # torn by something outside dreamlock
    scratch = damaged.parent / ".stale.tmp"
    scratch.write_bytes(b"half")
    adapter = load_adapter(config)
    calls = _counting(adapter)
    again = _tensors(build_data(config, adapter))
    assert calls == [1] and not scratch.exists()
    assert max((a - b).abs().max().item() for a, b in zip(fresh, again)) < 1e-5, [(a - b).abs().max() for a, b in zip(fresh, again)]


def test_a_full_disk_warns_once_and_training_data_is_still_built(make_config, tmp_path, images_writer,
                                                                 monkeypatch, capsys):
    config = make_config(data=str(images_writer(tmp_path / "few", 3)), with_prior_preservation=False)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(latent_cache, "save_file", full)
    data = build_data(config, load_adapter(config))
    assert data.buckets[0].instance.latents.shape[0] == 3
    err = capsys.readouterr().err
    assert err.count("could not write the latent cache") == 1 and "No space left on device" in err
    assert _entries(config) == [] and not list((config.output / CACHE_DIR).glob(".*"))
