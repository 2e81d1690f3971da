"""``dreamlock caption``: sidecars, keep/overwrite, trigger insertion, prefix/suffix, registry errors."""

from __future__ import annotations

import sys
import types

import pytest
from PIL import Image

import dreamlock
from dreamlock.data.caption import caption, registry
from dreamlock.data.caption.template import compose, fill_template, insert_subject
from dreamlock.errors import UserError


@pytest.fixture
def folder(tmp_path, img):
    d = tmp_path / "imgs"
    img.save(img.photo(1), d / "a.png")
    img.save(img.photo(2), d / "b.jpg")
    (d / "notes.md").write_text("not an image")
    return d


class EchoCaptioner:
    """A stand-in model captioner that always says the same thing."""

    text = "a dog on grass"

    def __init__(self, model=None):
        self.model = model

    def caption(self, image: Image.Image) -> str:
        assert image.mode == "RGB"
        return self.text


@pytest.fixture
def echo(monkeypatch):
    """Register EchoCaptioner as 'echo' through a stand-in module (the registry imports by name)."""
    module = types.ModuleType("dreamlock_test_echo")
    module.EchoCaptioner = EchoCaptioner
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(registry.CAPTIONERS, "echo", f"{module.__name__}:EchoCaptioner")
    return "echo"


def test_template_sidecars_written(folder):
    report = caption(folder, trigger="sks", class_word="dog")
    assert (folder / "a.txt").read_text() == "a photo of sks dog"
    assert (folder / "b.txt").read_text() == "a photo of sks dog"
    assert not (folder / "notes.txt").exists()
    assert report.written_count == 2 and report.kept_count == 0
    assert [e.file for e in report.entries] == ["a.png", "b.jpg"]


def test_existing_sidecars_kept_unless_overwrite(folder):
    (folder / "a.txt").write_text("my own caption")
    report = caption(folder, trigger="sks", class_word="dog")
    assert (folder / "a.txt").read_text() == "my own caption"
    assert report.kept_count == 1 and report.written_count == 1
    assert report.entries[0].status == "kept" and report.entries[0].caption == "my own caption"
    report = caption(folder, trigger="sks", class_word="dog", overwrite=True)
    assert (folder / "a.txt").read_text() == "a photo of sks dog" and report.written_count == 2


def test_custom_template_prefix_suffix(folder):
    caption(
        folder,
        trigger="sks",
        class_word="dog",
        template="{trigger} {class_word}, studio photo",
        prefix="photo,",
        suffix=" 4k ",
    )
    assert (folder / "a.txt").read_text() == "photo, sks dog, studio photo, 4k"


def test_template_needs_a_word(folder):
    with pytest.raises(UserError, match="--trigger and/or --class-word"):
        caption(folder)
    with pytest.raises(UserError, match="unknown placeholder"):
        caption(folder, trigger="sks", template="a photo of {subject}")
    assert fill_template("a photo of {trigger} {class_word}", None, "dog") == "a photo of dog"


@pytest.mark.parametrize(
    "text, trigger, class_word, expected",
    [
        ("a dog on grass", "sks", "dog", "a sks dog on grass"),
        ("A Dog and another dog", "sks", "dog", "A sks Dog and another dog"),
        ("a cat on grass", "sks", "dog", "sks dog, a cat on grass"),
        ("hotdog stand", "sks", "dog", "sks dog, hotdog stand"),
        ("a sks dog already", "sks", "dog", "a sks dog already"),
        ("a cat", "sks", None, "sks, a cat"),
        ("a dog", None, "dog", "a dog"),
        ("", "sks", "dog", "sks dog"),
        ("  a   dog  ", "sks", "dog", "a sks dog"),
    ],
)
def test_insert_subject(text, trigger, class_word, expected):
    assert insert_subject(text, trigger, class_word) == expected


def test_compose_prefix_suffix():
    assert compose("a dog on grass", "sks", "dog", prefix="photo", suffix="sharp") == "photo, a sks dog on grass, sharp"
    assert compose("a dog", prefix=", ", suffix="") == "a dog"


def test_model_captioner_insertion_and_overwrite(folder, echo):
    report = caption(folder, trigger="sks", class_word="dog", captioner=echo, prefix="pre", suffix="post")
    assert (folder / "a.txt").read_text() == "pre, a sks dog on grass, post"
    assert report.captioner == "echo"
    caption(folder, trigger="sks", class_word="cat", captioner=echo, overwrite=True)
    assert (folder / "b.txt").read_text() == "sks cat, a dog on grass"


def test_model_not_loaded_when_everything_kept(folder, echo, monkeypatch):
    (folder / "a.txt").write_text("x")
    (folder / "b.txt").write_text("y")
    monkeypatch.setattr(EchoCaptioner, "__init__", lambda self, model=None: pytest.fail("model loaded"))
    assert caption(folder, captioner=echo).kept_count == 2


def test_same_stem_sidecar_conflict(tmp_path, img, echo):
    d = tmp_path / "imgs"
    img.save(img.photo(1), d / "a.png")
    img.save(img.photo(2), d / "a.jpg")
    report = caption(d, captioner=echo)
    assert [(e.file, e.status) for e in report.entries] == [("a.jpg", "written"), ("a.png", "skipped")]
    assert "belongs to a.jpg" in report.entries[1].reason


def test_unreadable_image_fails_entry_only(tmp_path, img):
    d = tmp_path / "imgs"
    img.save(img.photo(1), d / "a.png")
    img.truncated_jpeg(d / "b.jpg")
    report = caption(d, trigger="sks", class_word="dog")
    assert [e.status for e in report.entries] == ["written", "failed"]
    assert "truncated" in report.entries[1].reason and report.failed_count == 1


def test_folder_errors(tmp_path):
    with pytest.raises(UserError, match="not an existing folder"):
        caption(tmp_path / "missing", trigger="sks")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no images"):
        caption(tmp_path / "empty", trigger="sks")


@pytest.mark.parametrize("name", ["blip", "florence2", "wd14"])
def test_missing_model_is_one_line_user_error(folder, name):
    with pytest.raises(UserError) as err:
        caption(folder, captioner=name)
    message = str(err.value)
    assert message.startswith(f"{name}: no model given; pass --model") and "\n" not in message
    with pytest.raises(UserError, match="no model given"):
        registry.get_captioner(name)


def test_unknown_captioner(folder):
    with pytest.raises(UserError, match="unknown captioner 'gpt'; choose one of: template, toy"):
        caption(folder, captioner="gpt")


def test_import_failure_is_clear(folder, monkeypatch):
    monkeypatch.setitem(registry.CAPTIONERS, "toy", "dreamlock.toyworld.no_such_module:ToyCaptioner")
    with pytest.raises(UserError, match="captioner 'toy' is not available"):
        caption(folder, captioner="toy")


def test_registry_names_and_protocol():
    assert set(registry.CAPTIONERS) == {"template", "toy", "blip", "florence2", "wd14"}
    assert registry.CAPTIONERS["toy"] == "dreamlock.toyworld.captioner:ToyCaptioner"
    cap = registry.get_captioner("template", trigger="sks", class_word="dog")
    assert isinstance(cap, registry.Captioner)
    assert cap.caption(Image.new("RGB", (8, 8))) == "a photo of sks dog"


def test_api_entry_point(folder):
    report = dreamlock.caption(folder, trigger="sks", class_word="dog")
    assert report.written_count == 2 and '"written": 2' in report.to_json()


def test_bad_captioner_option(folder, echo):
    with pytest.raises(UserError, match="captioner 'echo': bad options"):
        caption(folder, captioner=echo, options={"beams": 2})
