"""Report files, the API entry point with a stand-in generator module, and the CLI."""

from __future__ import annotations

import json
import sys
import types

from PIL import Image
from typer.testing import CliRunner

from dreamlock.cli import app
from dreamlock.evaluation import evaluate, evaluate_with
from dreamlock.evaluation.report import image_grid
from dreamlock.model_defaults import write_model_defaults
from dreamlock.toyworld.subjects import write_reference_set


METRICS = ("subject_fidelity", "subject_fidelity_rel", "prompt_fidelity", "class_drift", "class_drift_share", "diversity",
           "diversity_measure")


def test_report_files(tmp_path, subject, references, make_generator):
    out = tmp_path / "eval"
    r = evaluate_with(make_generator(subject), references, seeds=3, out=out, progress=False)
    data = json.loads((out / "metrics.json").read_text())
    for key in METRICS:
        assert data[key] == r[key]
    md = (out / "report.md").read_text()
    assert "| `subject_fidelity` |" in md and "| `class_drift` |" in md and "| `class_drift_share` |" in md
    assert "Diversity measure: layout:" in md
    assert "codec_ceiling" not in data and "Codec ceiling" not in md  # a stand-in generator has no VAE
    for entry in data["per_prompt"]:
        assert f"]({entry['grid']})" in md
        grid = Image.open(out / entry["grid"])
        assert grid.width >= 3 * 128  # 3 seeds, tiles enlarged to 128 px
    assert (out / "grids" / "references.png").is_file()


def test_image_grid_layout():
    tiles = [Image.new("RGB", (64, 64), "red")] * 10
    grid = image_grid(tiles, cols=4, min_tile=128, pad=2)
    assert grid.size == (4 * 128 + 5 * 2, 3 * 128 + 4 * 2)


def _fake_generate_module(monkeypatch, subject, make_generator):
    module = types.ModuleType("dreamlock.generation")
    module.load_generator = lambda run: make_generator(subject)
    monkeypatch.setitem(sys.modules, "dreamlock.generation", module)


def test_evaluate_api_and_cli(tmp_path, monkeypatch, subject, make_generator):
    _fake_generate_module(monkeypatch, subject, make_generator)
    ref = tmp_path / "ref"
    write_reference_set(subject, ref, n=4)
    run = tmp_path / "run"
    run.mkdir()
    write_model_defaults(run, world="toy")  # the stand-in draws the toy world; its folder says so
    r = evaluate(run, ref, seeds=2, progress=False)
    assert (run / "evaluate" / "metrics.json").is_file() and r["subject_fidelity_rel"] > 0.8
    result = CliRunner().invoke(app, ["evaluate", str(run), "--reference", str(ref), "--seeds", "2", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "report.md").is_file()


def test_cli_user_errors_exit_2(tmp_path, monkeypatch, subject, make_generator):
    _fake_generate_module(monkeypatch, subject, make_generator)
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path), "--reference", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "folder not found" in result.output
    ref = tmp_path / "ref"
    write_reference_set(subject, ref, n=3)
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path), "--reference", str(ref), "--scorer", "clip-dino"])
    assert result.exit_code == 2 and "--scorer-model" in result.output


def test_reference_folder_reads_the_same_image_types_as_prepare(tmp_path):
    """TIFF and WebP references count; sidecars, sub-folders named like images and other files do not."""
    from dreamlock.evaluation import load_reference_images

    for i, ext in enumerate(["png", "tif", "webp"]):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / f"ref{i}.{ext}", lossless=True)
    (tmp_path / "ref0.txt").write_text("a photo of sks star\n")
    (tmp_path / "folder.png").mkdir()
    images = load_reference_images(tmp_path)
    assert [im.getpixel((0, 0)) for im in images] == [(0, 0, 0), (40, 0, 0), (80, 0, 0)]
