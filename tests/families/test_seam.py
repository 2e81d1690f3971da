"""The family seam holds: outside ``families/`` no module names a diffusers model or pipeline class
(a static check of the source), and the registry detects families from ``model_index.json``."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

import dreamlock
from dreamlock.errors import UserError
from dreamlock.families import FAMILIES, detect_family, get_family
from dreamlock.families.base import ModelFamily

SRC = Path(dreamlock.__file__).parent
#: diffusers / transformers classes that belong to one family: models, pipelines, text encoders
FAMILY_CLASS = re.compile(r"^(\w*Pipeline|UNet\w*Model|\w*Transformer\w*Model|AutoencoderKL\w*|CLIPTextModel\w*|"
                          r"T5EncoderModel|CLIPTokenizer\w*|T5Tokenizer\w*)$")
ALLOWED = {"DiffusionPipeline"}  # the generic base class names no family


def _names_in_code(path: Path) -> set[str]:
    """Identifiers used by the code (imports, names, attributes), not docstrings or comments."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and FAMILY_CLASS.match(node.value):
            found.add(node.value)  # string annotations such as "StableDiffusionPipeline"
    return found


def test_no_module_outside_families_names_a_family_class():
    offenders = {}
    for path in SRC.rglob("*.py"):
        if "families" in path.relative_to(SRC).parts:
            continue
        names = {n for n in _names_in_code(path) if FAMILY_CLASS.match(n) and n not in ALLOWED}
        if names:
            offenders[str(path.relative_to(SRC))] = sorted(names)
    assert not offenders, f"family classes named outside families/: {offenders}"


def test_the_static_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from diffusers import StableDiffusionXLPipeline\nx: 'UNet2DConditionModel' = None\n")
    assert {"StableDiffusionXLPipeline", "UNet2DConditionModel"} <= _names_in_code(bad)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_declares_the_seam(name):
    family = get_family(name)
    assert family.name == name
    assert family.text_encoder_slots and family.denoiser_name
    assert len({s.kohya_prefix for s in family.text_encoder_slots}) == len(family.text_encoder_slots)
    for method in ("encode_text", "predict"):
        assert getattr(family, method) is not getattr(ModelFamily, method), f"{name} lacks {method}"


def _folder(tmp_path, class_name) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": class_name}))
    return tmp_path


def test_detect_family(tmp_path):
    assert detect_family(_folder(tmp_path / "a", "StableDiffusionPipeline")) == "sd"
    assert detect_family(_folder(tmp_path / "b", "StableDiffusionXLPipeline")) == "sdxl"
    assert detect_family("someone/a-hub-id") == "sd"
    single = tmp_path / "model.safetensors"
    single.write_bytes(b"")
    assert detect_family(single, base_config=tmp_path / "b") == "sdxl"
    with pytest.raises(UserError, match="KandinskyPipeline is not a supported model family.*--family"):
        detect_family(_folder(tmp_path / "c", "KandinskyPipeline"))
    assert detect_family(_folder(tmp_path / "d", "StableDiffusion3Pipeline")) == "sd3"
    assert detect_family(_folder(tmp_path / "e", "FluxPipeline")) == "flux"
    with pytest.raises(UserError, match="unknown model family 'flux2'"):
        get_family("flux2")


def test_forcing_the_wrong_family_is_a_one_line_error(tiny_bases):
    with pytest.raises(UserError, match="has no text_encoder_2, tokenizer_2, so it is not a sdxl model.*--family") as e:
        get_family("sdxl").load_pipeline(tiny_bases["sd"])
    assert "\n" not in str(e.value)
