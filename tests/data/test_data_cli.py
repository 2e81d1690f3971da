"""CLI of the data steps: exit codes 0/1/2, one error line, never a traceback."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dreamlock.cli import app


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def assert_clean_error(result, code: int, text: str):
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    errors = error_lines(result)
    assert len(errors) == 1 and text in errors[0], result.stderr


def test_prepare_ok_exit_0(src, out, img):
    img.save(img.photo(1), src / "a.png")
    (src / "readme.txt").write_text("not an image")
    result = run("prepare", src, out, "--size", "64", "--min-size", "64")
    assert result.exit_code == 0, result.stderr
    assert "prepare: 1 ok, 1 skipped, 0 failed" in result.stderr
    assert (out / "a.png").is_file() and (out / "prepare_report.json").is_file()


def test_prepare_failed_file_exit_1(src, out, img):
    img.save(img.photo(1), src / "a.png")
    img.truncated_jpeg(src / "broken.jpg")
    result = run("prepare", src, out, "--size", "64", "--min-size", "64")
    assert_clean_error(result, 1, "1 of 2 file(s) failed")
    report = json.loads((out / "prepare_report.json").read_text())
    assert [e["status"] for e in report["entries"]] == ["ok", "failed"]


@pytest.mark.parametrize(
    "args, text",
    [
        (["--size", "500"], "multiple of 8"),
        (["--size", "big"], "768x512"),
        (["--crop", "middle"], "'crop'"),
        (["--background", "pink"], "'background'"),
        (["--small", "drop"], "'small'"),
    ],
)
def test_prepare_bad_flags_exit_2(src, out, img, args, text):
    img.save(img.photo(1), src / "a.png")
    assert_clean_error(run("prepare", src, out, *args), 2, text)
    assert not out.exists()


def test_prepare_missing_src_exit_2(tmp_path):
    assert_clean_error(run("prepare", tmp_path / "nope", tmp_path / "out"), 2, "does not exist")


def test_prepare_out_inside_src_exit_2(src, img):
    img.save(img.photo(1), src / "a.png")
    assert_clean_error(run("prepare", src, src / "out"), 2, "inside SRC")


def test_prepare_flags_reach_config(src, out, img):
    img.save(img.photo(1, (100, 80)), src / "small.png")
    result = run(
        "prepare",
        src,
        out,
        "--size",
        "128x64",
        "--crop",
        "pad",
        "--background",
        "black",
        "--min-size",
        "256",
        "--small",
        "upscale",
        "--bucket",
        "--recursive",
    )
    assert result.exit_code == 0, result.stderr
    assert "warning:" in result.stderr and "upscaled from 100x80" in result.stderr
    cfg = json.loads((out / "prepare_report.json").read_text())["config"]
    assert (cfg["size"], cfg["crop"], cfg["background"]) == ([128, 64], "pad", "black")
    assert (cfg["min_size"], cfg["small"], cfg["bucket"], cfg["recursive"]) == (256, "upscale", True, True)


def test_caption_cli_template_and_errors(tmp_path, img):
    folder = tmp_path / "imgs"
    img.save(img.photo(1), folder / "a.png")
    result = run("caption", folder, "--trigger", "sks", "--class-word", "dog", "--prefix", "best", "--suffix", "hd")
    assert result.exit_code == 0, result.stderr
    assert (folder / "a.txt").read_text() == "best, a photo of sks dog, hd"
    assert_clean_error(run("caption", folder, "--captioner", "blip"), 2, "blip: no model given; pass --model")
    assert_clean_error(run("caption", folder, "--captioner", "nope"), 2, "unknown captioner")
    assert_clean_error(run("caption", tmp_path / "missing"), 2, "not an existing folder")


def test_caption_cli_failed_image_exit_1(tmp_path, img):
    folder = tmp_path / "imgs"
    img.save(img.photo(1), folder / "a.png")
    (folder / "b.png").write_bytes(b"garbage")
    result = run("caption", folder, "--trigger", "sks", "--class-word", "dog")
    assert_clean_error(result, 1, "1 of 2 image(s) could not be captioned")
    assert (folder / "a.txt").is_file() and not (folder / "b.txt").exists()


def test_prepare_that_keeps_nothing_exits_2_with_the_fix(src, out, img):
    img.save(img.photo(1), src / "a.png")  # 64 px: smaller than --min-size 256
    result = run("prepare", src, out, "--size", "64")
    assert_clean_error(result, 2, "no image was kept, so there is nothing to train on (a.png: smaller than --min-size 256")
    assert "--small upscale" in error_lines(result)[0]
