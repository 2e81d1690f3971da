"""Generation and base-model loading on the tiny random model (plumbing)."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.torch import save_file

from dreamlock.errors import UserError
from dreamlock.generation import generate, load_generator
from dreamlock.families import get_family


def load_base_pipeline(base):
    return get_family("sd").load_pipeline(base)


def test_generate_writes_seeded_images_and_grid(tiny_base, tmp_path):
    files = generate(tiny_base, ["a photo of a dog", "a photo of a cat"], n=3, seed=5, steps=2, out=tmp_path / "g", grid=True)
    names = sorted(p.name for p in files)
    assert len(files) == 8 and "00-a-photo-of-a-dog-seed5.png" in names and "01-a-photo-of-a-cat-grid.png" in names
    again = generate(tiny_base, "a photo of a dog", n=1, seed=6, steps=2, out=tmp_path / "h")
    a = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(again[0]))
    b = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(tmp_path / "g" / "00-a-photo-of-a-dog-seed6.png"))
    # a seed gives the same image whatever the batch, up to float rounding (batched BLAS): ≤ 2/255
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_seed_images_are_batch_independent(tiny_base):
    gen = load_generator(tiny_base)
    together = gen.images("a photo of a dog", [0, 1, 2], steps=2, batch_size=3)
    alone = gen.images("a photo of a dog", [2], steps=2)
    assert np.abs(np.asarray(together[2], dtype=float) - np.asarray(alone[0], dtype=float)).max() <= 2
    assert not np.array_equal(np.asarray(together[0]), np.asarray(together[1]))


def test_generate_rejects_empty_prompt(tiny_base, tmp_path):
    with pytest.raises(UserError, match="--prompt is empty"):
        generate(tiny_base, [" "], out=tmp_path)


def test_pickled_checkpoint_refused_without_opt_in(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not really a pickle")
    with pytest.raises(UserError, match="--allow-pickle"):
        load_base_pipeline(ckpt)


def test_single_file_needs_local_config(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({}, str(path))
    with pytest.raises(UserError, match="--base-config"):
        load_base_pipeline(path)


def test_missing_paths_and_offline_hub_ids_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="base model not found"):
        load_base_pipeline(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="not a diffusers model folder"):
        load_base_pipeline(tmp_path)
    with pytest.raises(UserError, match="could not be loaded from the hub"):
        load_base_pipeline("someone/some-model-that-is-not-cached")


def test_generated_files_are_named_after_the_filled_prompt(make_config, tmp_path):
    """Placeholders in a prompt are filled from the run before naming the files."""
    from dreamlock.training.api import train

    run = train(make_config(method="lora", max_train_steps=1))
    files = generate(run, "a photo of {trigger} {class_word}", n=1, steps=2, out=tmp_path / "g")
    assert [p.name for p in files] == ["00-a-photo-of-sks-dog-seed0.png"]


def test_model_carried_guidance_is_the_default(tiny_base, make_config, tmp_path):
    """A model folder's dreamlock.json sets the guidance `generate` uses when none is given, and a
    run inherits it from its base model; an explicit value still wins."""
    import shutil

    from dreamlock.model_defaults import write_model_defaults
    from dreamlock.training.api import train

    base = tmp_path / "base"
    shutil.copytree(tiny_base, base)
    write_model_defaults(base, 1.0)
    assert load_generator(base).default_guidance == 1.0
    assert load_generator(tiny_base).default_guidance == 7.5  # no dreamlock.json: the family's usual value
    run = train(make_config(method="lora", base=str(base), max_train_steps=1))
    assert load_generator(run).default_guidance == 1.0

    def image(name: str, guidance: float | None) -> np.ndarray:
        (path,) = generate(base, "a photo of a dog", n=1, steps=2, guidance=guidance, out=tmp_path / name)
        return np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(path), dtype=np.int16)

    default, one, strong = image("default", None), image("one", 1.0), image("strong", 7.5)
    assert np.array_equal(default, one) and np.abs(default - strong).max() > 0


def test_bad_model_defaults_file_is_a_user_error(tmp_path):
    from dreamlock.model_defaults import DEFAULTS_FILE, model_guidance

    (tmp_path / DEFAULTS_FILE).write_text('{"guidance": "high"}')
    with pytest.raises(UserError, match="must be a number"):
        model_guidance(tmp_path)
    (tmp_path / DEFAULTS_FILE).write_text("[1, 2]")
    with pytest.raises(UserError, match="not a JSON object"):
        model_guidance(tmp_path)
    assert model_guidance(tmp_path / "missing") is None and model_guidance(None) is None


def test_training_takes_the_model_guidance_for_class_images_and_samples(tiny_base, make_config, tmp_path):
    """Unset class-image / validation guidance come from the base model's dreamlock.json (else its
    family's: 7.5 for SD, 3.5 for FLUX.1); the resolved values are what config.toml records."""
    import shutil

    from dreamlock.families import get_family
    from dreamlock.model_defaults import write_model_defaults
    from dreamlock.training.api import with_model_guidance

    base = tmp_path / "base"
    shutil.copytree(tiny_base, base)
    write_model_defaults(base, 1.0)
    sd, flux = get_family("sd"), get_family("flux")
    resolved = with_model_guidance(make_config(base=str(base)), sd)
    assert (resolved.class_generation_guidance, resolved.validation_guidance) == (1.0, 1.0)
    plain = with_model_guidance(make_config(), sd)
    assert (plain.class_generation_guidance, plain.validation_guidance) == (7.5, 7.5)
    assert with_model_guidance(make_config(), flux).validation_guidance == 3.5
    explicit = with_model_guidance(make_config(base=str(base), class_generation_guidance=3.0), sd)
    assert (explicit.class_generation_guidance, explicit.validation_guidance) == (3.0, 1.0)


def test_toy_names_the_shipped_toy_base(tmp_path):
    """``--base toy`` / ``dreamlock generate toy``: the toy base without a path into the package."""
    from dreamlock.toyworld.paths import ASSET_DIR
    from dreamlock.training.config import TrainConfig

    assert TrainConfig(base="toy", data=str(tmp_path), output=str(tmp_path / "r")).base == str(ASSET_DIR)
    generator = load_generator("toy")
    assert generator.world == "toy" and generator.source == str(ASSET_DIR)


@pytest.mark.parametrize("allow_pickle", [False, True])
def test_a_planted_pickle_in_a_model_folder_never_runs(tmp_path, allow_pickle):
    """A component whose weights are a pickle that would run a command: refused without
    --allow-pickle (one line naming the fix); with it, torch's weights-only loader refuses the
    payload. Either way the command never runs."""
    import os
    import pickle
    import shutil

    from dreamlock.families.build import save_tiny_pipeline

    base = save_tiny_pipeline(tmp_path / "model")
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (base / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with open(base / "unet" / "diffusion_pytorch_model.bin", "wb") as f:
        pickle.dump(Payload(), f)
    with pytest.raises(UserError) as e:
        get_family("sd").load_pipeline(base, allow_pickle=allow_pickle)
    assert not marker.exists() and "\n" not in str(e.value)
    if not allow_pickle:
        assert "pickled weights only" in str(e.value) and "--allow-pickle" in str(e.value)
    shutil.rmtree(base)
