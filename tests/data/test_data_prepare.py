"""``dreamlock prepare``: crop modes, conversions, bad inputs, report, SRC untouched, duplicates."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

import dreamlock
from dreamlock.data import crop as geometry
from dreamlock.data import imageio
from dreamlock.data.prepare import PrepareConfig, prepare
from dreamlock.errors import UserError


def entry(report, name):
    """The report entry for input ``name``."""
    (found,) = [e for e in report.entries if e.file == name]
    return found


def output(report, out, name) -> Image.Image:
    e = entry(report, name)
    assert e.status == "ok", e
    return Image.open(out / e.output)


def close(pixel, colour, tol=30) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, colour))


# ---- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected", [(512, (512, 512)), ("512", (512, 512)), ("768x512", (768, 512)), ([640, 448], (640, 448))]
)
def test_size_parsing(value, expected):
    assert PrepareConfig(size=value).size == expected


@pytest.mark.parametrize("bad", ["500", "abc", "0", "512x", "16x16", 99999])
def test_bad_size_is_user_error(src, out, bad):
    with pytest.raises(UserError, match="size"):
        prepare(src, out, size=bad)


def test_unknown_option_is_user_error(src, out):
    with pytest.raises(UserError, match="unknown key 'sise'"):
        prepare(src, out, sise=512)


# ---- crop modes -------------------------------------------------------------------------------


def test_center_crop(src, out, img):
    img.save(img.halves((400, 200), img.RED, img.BLUE), src / "wide.png")
    report = prepare(src, out, size=128, min_size=64)
    e = entry(report, "wide.png")
    assert e.crop_box == [100, 0, 300, 200] and e.original_size == [400, 200]
    assert output(report, out, "wide.png").size == (128, 128)


def test_non_square_size(src, out, img):
    img.save(img.photo(1, (600, 600)), src / "sq.png")
    report = prepare(src, out, size="256x128")
    assert entry(report, "sq.png").crop_box == [0, 150, 600, 450]
    assert output(report, out, "sq.png").size == (256, 128)


@pytest.mark.parametrize("background, colour", [("white", (255, 255, 255)), ("black", (0, 0, 0))])
def test_pad_keeps_everything(src, out, img, background, colour):
    img.save(Image.new("RGB", (400, 200), img.RED), src / "wide.png")
    report = prepare(src, out, size=128, min_size=64, crop="pad", background=background)
    e = entry(report, "wide.png")
    assert e.crop_box == [0, 0, 400, 200]
    im = output(report, out, "wide.png")
    assert im.size == (128, 128)
    assert close(im.getpixel((64, 5)), colour, 2) and close(im.getpixel((64, 64)), img.RED)


def test_face_detection_on_astronaut():
    from skimage.data import astronaut

    from dreamlock.data.faces import detect_faces

    faces = detect_faces(Image.fromarray(astronaut()))
    assert faces, "no face found on skimage's astronaut"
    x0, y0, x1, y1 = faces[0]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert 170 <= cx <= 260 and 30 <= cy <= 150


def test_face_crop_contains_face(src, out):
    from skimage.data import astronaut

    Image.fromarray(astronaut()).save(src / "astronaut.png")
    report = prepare(src, out, size=256, crop="face")
    e = entry(report, "astronaut.png")
    assert e.face_box is not None and e.notes == []
    box, face = tuple(e.crop_box), tuple(e.face_box)
    assert geometry.box_contains(box, face)
    assert box[2] - box[0] == box[3] - box[1] >= 256
    # A plain center crop of the same size would cut the top of the face off.
    assert not geometry.box_contains((128, 128, 384, 384), face)
    assert output(report, out, "astronaut.png").size == (256, 256)


def test_face_crop_falls_back_to_center(src, out, img):
    img.save(img.photo(3, (400, 300)), src / "noface.png")
    report = prepare(src, out, size=128, min_size=64, crop="face")
    e = entry(report, "noface.png")
    assert e.status == "ok" and e.face_box is None
    assert "no face found, used center crop" in e.notes
    assert e.crop_box == list(geometry.center_box(400, 300, (128, 128)))


def test_face_box_geometry():
    box = geometry.face_box(1000, 800, (256, 256), (600, 100, 700, 200), margin=0.5)
    assert geometry.box_contains(box, (550, 50, 750, 250))  # face plus margin
    assert box[2] - box[0] == box[3] - box[1] == 256
    edge = geometry.face_box(1000, 800, (256, 256), (950, 0, 1000, 50))
    assert edge[2] == 1000 and edge[1] == 0  # shifted to stay inside the image


# ---- buckets ----------------------------------------------------------------------------------


def test_bucket_list_shape():
    buckets = geometry.make_buckets((512, 512))
    assert (512, 512) in buckets and (384, 640) in buckets and (640, 384) in buckets
    for w, h in buckets:
        assert w % 64 == 0 and h % 64 == 0
        assert 0.8 * 512 * 512 <= w * h <= 512 * 512
        assert 0.5 <= w / h <= 2.0


def test_bucket_assignment(src, out, img):
    img.save(img.photo(1, (600, 300)), src / "wide.png")
    img.save(img.photo(2, (300, 500)), src / "tall.png")
    img.save(img.photo(3, (400, 400)), src / "square.png")
    report = prepare(src, out, bucket=True, min_size=64)
    expected = {"wide.png": (640, 384), "tall.png": (384, 640), "square.png": (512, 512)}
    for name, size in expected.items():
        e = entry(report, name)
        assert e.bucket == f"{size[0]}x{size[1]}"
        assert output(report, out, name).size == size


# ---- orientation and colour modes -------------------------------------------------------------


def test_exif_orientation_applied(src, out, img):
    img.exif_jpeg(src / "rotated.jpg", orientation=6)  # stored 200x100: red left, blue right
    report = prepare(src, out, size=64, min_size=64)
    e = entry(report, "rotated.jpg")
    assert e.original_size == [100, 200]  # upright: portrait
    assert any("EXIF orientation 6" in n for n in e.notes)
    im = output(report, out, "rotated.jpg").convert("RGB")
    # Orientation 6 = rotate 90 degrees clockwise to display: the red left half ends up on top.
    assert close(im.getpixel((32, 8)), img.RED, 40) and close(im.getpixel((32, 56)), img.BLUE, 40)


@pytest.mark.parametrize("background, colour", [("white", (255, 255, 255)), ("black", (0, 0, 0))])
def test_alpha_flattened(src, out, img, background, colour):
    img.rgba_png(src / "rgba.png")
    img.palette_png(src / "palette.png")
    report = prepare(src, out, size=64, min_size=64, background=background, dedupe=False)
    for name, solid in (("rgba.png", img.RED), ("palette.png", img.GREEN)):
        im = output(report, out, name)
        assert im.mode == "RGB"
        assert close(im.getpixel((5, 32)), colour, 2), name
        assert close(im.getpixel((58, 32)), solid, 2), name
        assert any(f"flattened onto {background}" in n for n in entry(report, name).notes)


def test_la_and_grayscale_converted(src, out, img):
    la = Image.new("LA", (300, 300), (100, 255))
    la.paste((0, 0), (0, 0, 150, 300))
    img.save(la, src / "la.png")
    img.save(Image.new("L", (300, 300), 77), src / "gray.png")
    report = prepare(src, out, size=64, min_size=64, background="black", dedupe=False)
    la_out, gray_out = output(report, out, "la.png"), output(report, out, "gray.png")
    assert la_out.mode == gray_out.mode == "RGB"
    assert la_out.getpixel((5, 32)) == (0, 0, 0) and close(la_out.getpixel((58, 32)), (100, 100, 100), 2)
    assert gray_out.getpixel((32, 32)) == (77, 77, 77)


def test_sixteen_bit_cmyk_palette_converted(src, out, img):
    img.sixteen_bit_png(src / "deep.png")
    img.cmyk_jpeg(src / "cmyk.jpg")
    img.save(img.photo(4).convert("P", palette=Image.Palette.ADAPTIVE), src / "pal.png")
    assert Image.open(src / "deep.png").mode.startswith("I")
    report = prepare(src, out, size=64, min_size=64, dedupe=False)
    deep = output(report, out, "deep.png")
    assert deep.mode == "RGB"
    assert close(deep.getpixel((5, 32)), (64, 64, 64), 2) and close(deep.getpixel((58, 32)), (191, 191, 191), 2)
    cmyk = output(report, out, "cmyk.jpg")
    assert cmyk.mode == "RGB"
    r, g, b = cmyk.getpixel((32, 32))
    assert r < 80 and g > 150 and b > 150  # cyan
    assert any("CMYK" in n for n in entry(report, "cmyk.jpg").notes)
    assert output(report, out, "pal.png").mode == "RGB"


def test_to_rgb_float_and_int_modes():
    f = Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32), mode="F")
    assert imageio.to_rgb(f)[0].getpixel((0, 0)) == (128, 128, 128)
    i = Image.fromarray(np.full((4, 4), 200, dtype=np.int32), mode="I")
    assert imageio.to_rgb(i)[0].getpixel((0, 0)) == (200, 200, 200)


# ---- bad inputs -------------------------------------------------------------------------------


def build_bad_folder(src, img):
    img.save(img.photo(1), src / "good.png")
    (src / "empty.jpg").write_bytes(b"")
    img.truncated_jpeg(src / "truncated.jpg")
    (src / "text.jpg").write_text("this is not a JPEG\n")
    img.bomb_png(src / "bomb.png")
    (src / "notes.txt").write_text("some notes")
    img.animated_gif(src / "anim.gif")
    img.save(Image.new("RGB", (1, 1), img.RED), src / "dot.png")
    img.save(img.photo(2), src / ".hidden.png")


BAD_EXPECTED = {
    "good.png": ("ok", None),
    "empty.jpg": ("failed", "empty file"),
    "truncated.jpg": ("failed", "truncated"),
    "text.jpg": ("failed", "not a valid image"),
    "bomb.png": ("failed", "decompression bomb"),
    "notes.txt": ("skipped", "not an image"),
    "anim.gif": ("ok", None),
    "dot.png": ("skipped", "too small"),
    ".hidden.png": ("skipped", "hidden"),
}


def test_bad_inputs_each_get_a_reason(src, out, img):
    build_bad_folder(src, img)
    report = prepare(src, out, size=64, min_size=64, small="upscale")
    assert sorted(e.file for e in report.entries) == sorted(BAD_EXPECTED)
    for name, (status, reason) in BAD_EXPECTED.items():
        e = entry(report, name)
        assert e.status == status, (name, e)
        if reason:
            assert reason in e.reason, (name, e.reason)
            assert e.output is None and e.crop_box is None
    assert report.failed_count == 4 and report.ok_count == 2 and report.skipped_count == 3


@pytest.mark.parametrize("name", ["anim.gif", "anim.webp", "anim.png"])
def test_animated_uses_first_frame(src, out, img, name):
    frames = [Image.new("RGB", (300, 300), c) for c in (img.GREEN, img.RED, img.BLUE)]
    frames[0].save(src / name, save_all=True, append_images=frames[1:], duration=100, loop=0)
    report = prepare(src, out, size=64, min_size=64)
    e = entry(report, name)
    assert "animated (3 frames): used first frame" in e.notes
    assert close(output(report, out, name).getpixel((32, 32)), img.GREEN)


def test_truncated_jpeg_is_not_half_decoded():
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # and read_image forces it during a load


def test_bomb_warning_range_is_an_error(src, out, img):
    img.save(img.photo(1, (120, 100)), src / "big.png")  # 12,000 px: between the limit and 2x
    report = prepare(src, out, size=64, min_size=64, max_pixels=10_000)
    e = entry(report, "big.png")
    assert e.status == "failed" and "decompression bomb" in e.reason
    assert Image.MAX_IMAGE_PIXELS == imageio.DEFAULT_MAX_PIXELS  # restored


def test_permission_error_via_open_bytes(src, out, img, monkeypatch):
    img.save(img.photo(1), src / "locked.png")
    img.save(img.photo(2), src / "fine.png")
    real = imageio._open_bytes

    def fake_open(path):
        if path.name == "locked.png":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(imageio, "_open_bytes", fake_open)
    report = prepare(src, out, size=64, min_size=64)
    assert entry(report, "locked.png").status == "failed"
    assert "permission denied" in entry(report, "locked.png").reason
    assert entry(report, "fine.png").status == "ok"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read chmod 000 files")
def test_permission_error_real_chmod(src, out, img):
    locked = img.save(img.photo(1), src / "locked.png")
    locked.chmod(0)
    try:
        report = prepare(src, out, size=64, min_size=64)
    finally:
        locked.chmod(0o644)
    assert entry(report, "locked.png").status == "failed"
    assert "permission denied" in entry(report, "locked.png").reason


def test_unexpected_error_is_contained(src, out, img, monkeypatch):
    img.save(img.photo(1), src / "a.png")
    img.save(img.photo(2), src / "b.png")
    from dreamlock.data import prepare as prepare_module

    real = prepare_module._frame

    def boom(image, target, cfg, e):
        if e.file == "a.png":
            raise RuntimeError("kaboom")
        return real(image, target, cfg, e)

    monkeypatch.setattr(prepare_module, "_frame", boom)
    report = prepare(src, out, size=64, min_size=64)
    assert entry(report, "a.png").status == "failed" and "kaboom" in entry(report, "a.png").reason
    assert entry(report, "b.png").status == "ok"


# ---- size policy ------------------------------------------------------------------------------


def test_min_size_skip_and_upscale(src, out, img):
    img.save(img.photo(1, (200, 150)), src / "small.png")
    skipped = prepare(src, out, size=256, min_size=256)
    e = entry(skipped, "small.png")
    assert e.status == "skipped" and "--min-size 256" in e.reason
    upscaled = prepare(src, out, size=256, min_size=256, small="upscale")
    e = entry(upscaled, "small.png")
    assert e.status == "ok" and "upscaled from 200x150 (smaller than --min-size 256)" in e.notes
    assert output(upscaled, out, "small.png").size == (256, 256)


# ---- report, naming, SRC untouched, duplicates -------------------------------------------------


def test_report_complete_and_on_disk(src, out, img):
    build_bad_folder(src, img)
    img.save(img.photo(9), src / "sub" / "nested.png")
    report = prepare(src, out, size=64, min_size=64)
    files = sorted(p.relative_to(src).as_posix() for p in src.iterdir() if p.is_file())
    assert sorted(e.file for e in report.entries) == files  # exactly one entry each, no subfolder
    data = json.loads((out / "prepare_report.json").read_text())
    assert [e["file"] for e in data["entries"]] == [e.file for e in report.entries]
    assert data["summary"] == {"ok": report.ok_count, "skipped": report.skipped_count, "failed": report.failed_count}
    keys = {"file", "status", "reason", "original_size", "crop_box", "output", "notes", "duplicate_of"}
    assert all(keys <= set(e) for e in data["entries"])
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == sorted(e.output for e in report.entries if e.output)
    assert json.loads(report.to_json())["config"]["size"] == [64, 64]


def test_recursive(src, out, img):
    img.save(img.photo(1), src / "top.png")
    img.save(img.photo(2), src / "sub" / "deep.png")
    assert [e.file for e in prepare(src, out, size=64, min_size=64).entries] == ["top.png"]
    report = prepare(src, out, size=64, min_size=64, recursive=True)
    assert sorted(e.file for e in report.entries) == ["sub/deep.png", "top.png"]
    assert entry(report, "sub/deep.png").output == "deep.png"


def test_other_pngs_in_out_are_listed(src, out, img):
    img.save(img.photo(1), src / "a.png")
    img.save(img.photo(2), out / "old.png")
    report = prepare(src, out, size=64, min_size=64)
    assert report.other_outputs == ["old.png"]


def test_colliding_stems_get_unique_names(src, out, img):
    img.save(img.photo(1), src / "a.png")
    img.save(img.photo(2), src / "a.jpg")
    report = prepare(src, out, size=64, min_size=64)
    assert {entry(report, "a.jpg").output, entry(report, "a.png").output} == {"a.png", "a-2.png"}


def test_src_untouched(src, out, img):
    build_bad_folder(src, img)
    img.exif_jpeg(src / "rot.jpg", 6)
    img.cmyk_jpeg(src / "cmyk.jpg")
    img.rgba_png(src / "rgba.png")
    before = img.tree_digest(src)
    prepare(src, out, size=64, min_size=64, crop="face", small="upscale")
    assert img.tree_digest(src) == before
    assert not (src / "prepare_report.json").exists()


def test_out_inside_src_is_user_error(src, img):
    img.save(img.photo(1), src / "a.png")
    with pytest.raises(UserError, match="inside SRC"):
        prepare(src, src / "out")
    with pytest.raises(UserError, match="inside SRC"):
        prepare(src, src)
    assert not (src / "out").exists()


def test_missing_or_empty_src_is_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        prepare(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no files"):
        prepare(tmp_path / "empty", tmp_path / "out")


def test_near_duplicates_flagged(src, out, img):
    original = img.photo(5, (400, 300))
    img.save(original, src / "a_original.png")
    img.save(original.resize((300, 225), Image.Resampling.BILINEAR), src / "b_copy.jpg", quality=80)
    img.save(img.photo(6, (400, 300)), src / "c_other.png")
    report = prepare(src, out, size=64, min_size=64)
    dup = entry(report, "b_copy.jpg")
    assert dup.status == "skipped" and dup.duplicate_of == "a_original.png"
    assert "duplicate of a_original.png" in dup.reason
    assert entry(report, "a_original.png").status == entry(report, "c_other.png").status == "ok"
    assert entry(report, "c_other.png").duplicate_of is None
    assert entry(prepare(src, out, size=64, min_size=64, dedupe=False), "b_copy.jpg").status == "ok"


def test_hashes_tolerate_resize_and_separate_images(img):
    from dreamlock.data.dedupe import dhash, hamming, phash

    a, b = img.photo(11, (400, 300)), img.photo(12, (400, 300))
    for fn in (dhash, phash):
        assert hamming(fn(a), fn(a.resize((200, 150)))) <= 4
        assert hamming(fn(a), fn(b)) > 4


def test_api_entry_point_and_config_object(src, out, img):
    img.save(img.photo(1), src / "a.png")
    cfg = PrepareConfig(size=64, min_size=64)
    report = dreamlock.prepare(src, out, cfg, crop="pad")
    assert report.ok_count == 1 and report.config["crop"] == "pad" and report.config["size"] == [64, 64]


# ---- masks (masked training) --------------------------------------------------------------------


def _mask_of_left_half(size):
    """An L mask, white on the left half."""
    return Image.fromarray((np.arange(size[0])[None, :].repeat(size[1], 0) < size[0] // 2).astype(np.uint8) * 255)


@pytest.mark.parametrize("crop", ["center", "pad"])
def test_masks_framed_with_their_images(src, out, img, crop):
    """A mask in SRC/masks/ comes out in OUT/masks/ under the image's output name, white exactly where
    the image's red (masked) half landed; padding is black in the mask."""
    img.save(img.halves((400, 200), img.RED, img.BLUE), src / "wide.jpg")
    img.save(_mask_of_left_half((400, 200)), src / "masks" / "wide.png")
    report = prepare(src, out, size=128, min_size=64, crop=crop)
    e = entry(report, "wide.jpg")
    assert any("mask masks/wide.png framed" in n for n in e.notes)
    image = np.asarray(output(report, out, "wide.jpg"), dtype=int)
    mask = np.asarray(Image.open(out / "masks" / e.output))
    assert mask.shape == image.shape[:2]
    red = (image[..., 0] > 150) & (image[..., 2] < 80)
    assert (mask > 127).mean() > 0.2 and ((mask > 127) == red).mean() > 0.97
    assert [x.file for x in report.entries] == ["wide.jpg"]  # the mask is not an input of its own


def test_mask_of_another_size_is_noted_not_carried(src, out, img):
    img.save(img.photo(1), src / "a.png")
    img.save(_mask_of_left_half((100, 100)), src / "masks" / "a.png")
    img.save(img.photo(2), src / "sub" / "b.png")
    img.save(_mask_of_left_half((320, 240)), src / "sub" / "masks" / "b.png")
    report = prepare(src, out, size=64, min_size=64, recursive=True)
    assert sorted(x.file for x in report.entries) == ["a.png", "sub/b.png"]
    assert any("not carried: it is 100x100, the image 320x240" in n for n in entry(report, "a.png").notes)
    assert not (out / "masks" / "a.png").exists() and (out / "masks" / "b.png").exists()


def test_caption_sidecars_travel_with_their_images(src, out, img):
    img.save(img.photo(1), src / "a.jpg")
    (src / "a.txt").write_text("a photo of sks dog in the snow\n")
    img.save(img.photo(2), src / "b.png")
    (src / "notes.txt").write_text("not a caption")
    report = prepare(src, out, size=64, min_size=64)
    a = entry(report, "a.jpg")
    assert (out / "a.txt").read_text() == "a photo of sks dog in the snow\n" and "caption a.txt copied with it" in a.notes
    assert entry(report, "a.txt").status == "skipped" and "caption sidecar" in entry(report, "a.txt").reason
    assert not (out / "b.txt").exists() and entry(report, "notes.txt").reason.startswith("not an image")
