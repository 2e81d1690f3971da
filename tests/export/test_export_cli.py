"""`dreamlock export` on the command line: one-line errors with exit code 2, no traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dreamlock.cli import app


def _run(*args):
    result = CliRunner().invoke(app, ["export", *map(str, args)])
    return result, result.output  # click >= 8.2: output holds stdout and stderr


def _assert_one_line_error(result, text, fragment):
    assert result.exit_code == 2, text
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), text
    assert fragment in " ".join(text.split()), text


@pytest.mark.parametrize(
    "which, fmt, fragment",
    [
        ("lora", "a1111-embedding", "trained a LoRA, it has no embeddings; use --format kohya-lora, diffusers-lora, diffusers or single-file"),
        ("ti", "kohya-lora", "learned embeddings only (textual inversion), it has no LoRA"),
        ("full", "diffusers-lora", "is a full fine-tune, it has no LoRA; use --format diffusers or single-file"),
        ("ti", "single-file", "no tokenizer to carry new tokens"),
        ("lora", "onnx", "unknown export format 'onnx'"),
    ],
)
def test_wrong_format_for_run(runs, tmp_path, which, fmt, fragment):
    result, text = _run(getattr(runs, which), "--format", fmt, "--out", tmp_path / "x.safetensors")
    _assert_one_line_error(result, text, fragment)
    assert not (tmp_path / "x.safetensors").exists()


def test_missing_run(tmp_path):
    result, text = _run(tmp_path / "nope", "--format", "diffusers", "--out", tmp_path / "o")
    _assert_one_line_error(result, text, "run folder not found")


def test_bad_dtype_and_lora_scale_on_ti(runs, tmp_path):
    result, text = _run(runs.lora, "--format", "kohya-lora", "--out", tmp_path / "o.safetensors", "--dtype", "int8")
    _assert_one_line_error(result, text, "unknown --dtype 'int8'")
    result, text = _run(runs.ti, "--format", "a1111-embedding", "--out", tmp_path / "o.safetensors", "--lora-scale", "0.5")
    _assert_one_line_error(result, text, "--lora-scale applies to LoRA exports only")


def test_existing_out_needs_overwrite(runs, tmp_path):
    out = tmp_path / "dlk.safetensors"
    out.write_text("keep me")
    result, text = _run(runs.ti, "--format", "a1111-embedding", "--out", out)
    _assert_one_line_error(result, text, "already exists; pass --overwrite")
    assert out.read_text() == "keep me"
    result, text = _run(runs.ti, "--format", "a1111-embedding", "--out", out, "--overwrite")
    assert result.exit_code == 0, text
    assert "exported" in text and out.stat().st_size > 100
    assert not list(tmp_path.glob(".*tmp"))  # no scratch left behind


def test_overwrite_refuses_a_folder_that_is_not_an_export(runs, tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "me.jpg").write_bytes(b"x")
    result, text = _run(runs.ti, "--format", "diffusers-embedding", "--out", out, "--overwrite")
    _assert_one_line_error(result, text, "does not look like an export")
    assert (out / "me.jpg").exists()


def test_out_inside_the_run_final_folder_is_refused(runs):
    result, text = _run(runs.full, "--format", "diffusers", "--out", runs.full / "final" / "pipeline", "--overwrite")
    _assert_one_line_error(result, text, "which this export reads")


def test_a_full_disk_during_export_leaves_nothing_half_written(runs, tmp_path, monkeypatch):
    import errno

    from dreamlock.errors import WorkError
    from dreamlock.exporting import export

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", full)
    out = tmp_path / "dog.safetensors"
    with pytest.raises(WorkError, match="could not write .*dog.safetensors: No space left on device; the partial "
                                        "export was removed") as e:
        export(runs.lora, "kohya-lora", out)
    assert "\n" not in str(e.value) and not out.exists() and list(tmp_path.iterdir()) == []
