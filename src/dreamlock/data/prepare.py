"""``dreamlock prepare``: turn a folder of photos into same-size PNGs and a report.

Every file in SRC gets exactly one report entry (ok / skipped / failed, with a reason); one bad
file never stops the run. SRC is only ever read; everything is written into OUT.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from PIL import Image, ImageOps
from pydantic import BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError

from dreamlock.atomic import atomic_path, write_bytes, write_text
from dreamlock.config import StrictModel, validate
from dreamlock.data import crop as geometry
from dreamlock.data.dedupe import DuplicateFinder
from dreamlock.data.imageio import DEFAULT_MAX_PIXELS, ImageLoadError, LoadedImage, is_image_name, read_image
from dreamlock.data.masks import MASK_DIR, mask_files
from dreamlock.errors import UserError

REPORT_NAME = "prepare_report.json"
#: Images with a side below this are always skipped, even with ``small="upscale"``.
TOO_SMALL_SIDE = 32
BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}


class PrepareConfig(StrictModel):
    """Options of ``dreamlock prepare`` (same names as the flags, with underscores)."""

    size: tuple[int, int] = Field((512, 512), description="output size (width, height); '512' or '768x512'")
    crop: Literal["center", "face", "pad"] = "center"
    bucket: bool = Field(False, description="resize to the nearest aspect-ratio bucket instead of `size`")
    background: Literal["white", "black"] = "white"
    min_size: int = Field(256, ge=1, description="images whose short side is smaller are `small`")
    small: Literal["skip", "upscale"] = "skip"
    recursive: bool = False
    dedupe: bool = True
    duplicate_distance: int = Field(4, ge=0, le=64, description="max differing hash bits for a near-duplicate")
    face_margin: float = Field(0.6, ge=0.0, le=10.0, description="margin around a face, in face sizes per side")
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, description="refuse images declaring more pixels")

    @field_validator("size", mode="before")
    @classmethod
    def _parse_size(cls, value: Any) -> tuple[int, int]:
        try:
            return geometry.parse_size(value)
        except (ValueError, TypeError) as e:
            raise PydanticCustomError("size", str(e)) from None

    @property
    def background_rgb(self) -> tuple[int, int, int]:
        """The background colour as RGB."""
        return BACKGROUNDS[self.background]


class ReportEntry(BaseModel):
    """What happened to one input file."""

    file: str
    status: Literal["ok", "skipped", "failed"] = "ok"
    reason: str | None = None
    original_size: list[int] | None = None
    crop_box: list[int] | None = None
    face_box: list[int] | None = None
    bucket: str | None = None
    output: str | None = None
    output_size: list[int] | None = None
    notes: list[str] = Field(default_factory=list)
    duplicate_of: str | None = None


class PrepareReport(BaseModel):
    """The result of a prepare run; written to ``OUT/prepare_report.json``."""

    src: str
    out: str
    config: dict[str, Any]
    entries: list[ReportEntry] = Field(default_factory=list)
    other_outputs: list[str] = Field(
        default_factory=list, description="PNGs already in OUT that this run did not write (e.g. from an earlier run)"
    )

    def _count(self, status: str) -> int:
        return sum(e.status == status for e in self.entries)

    @property
    def ok_count(self) -> int:
        """Images written."""
        return self._count("ok")

    @property
    def skipped_count(self) -> int:
        """Files left out on purpose (not images, too small, duplicates...)."""
        return self._count("skipped")

    @property
    def failed_count(self) -> int:
        """Files that should have been images but could not be used."""
        return self._count("failed")

    @property
    def report_path(self) -> Path:
        """Where the report is written."""
        return Path(self.out) / REPORT_NAME

    def to_json(self) -> str:
        """The report as JSON text (with a summary of counts)."""
        data = self.model_dump(mode="json")
        data["summary"] = {"ok": self.ok_count, "skipped": self.skipped_count, "failed": self.failed_count}
        return json.dumps(data, indent=2, ensure_ascii=False)

    def write(self) -> Path:
        """Write the report into OUT atomically; return its path."""
        path = self.report_path
        write_text(path, self.to_json() + "\n")
        return path


def resolve_config(config: PrepareConfig | None = None, **overrides: Any) -> PrepareConfig:
    """A config from an optional base plus keyword overrides, validated (UserError on problems)."""
    base = config.model_dump() if config is not None else {}
    return validate(PrepareConfig, {**base, **overrides}, source="prepare")


def check_paths(src: Path | str, out: Path | str) -> tuple[Path, Path]:
    """Validate SRC and OUT; raise a one-line UserError when they are unusable."""
    src, out = Path(src), Path(out)
    if not src.exists():
        raise UserError(f"SRC {src} does not exist; give the folder holding your photos")
    if not src.is_dir():
        raise UserError(f"SRC {src} is not a folder; give the folder holding your photos")
    src_r, out_r = src.resolve(), out.resolve()
    if out_r == src_r or out_r.is_relative_to(src_r):
        raise UserError(f"OUT {out} is inside SRC {src}; choose an output folder outside SRC (SRC is never modified)")
    if out.exists() and not out.is_dir():
        raise UserError(f"OUT {out} exists and is not a folder; choose a folder path")
    return src, out


def list_inputs(src: Path, recursive: bool) -> list[Path]:
    """Every non-folder entry in SRC (sorted); subfolders too when ``recursive``, but not the masks
    in ``masks/`` folders (they go with their images)."""
    found = src.rglob("*") if recursive else src.iterdir()
    return sorted((p for p in found if not p.is_dir() and MASK_DIR not in p.relative_to(src).parts[:-1]),
                  key=lambda p: p.relative_to(src).as_posix())


class _Namer:
    """Unique output names (case-insensitive): ``a.png``, ``a-2.png``, ..."""

    def __init__(self) -> None:
        self._taken: set[str] = {REPORT_NAME.lower()}

    def claim(self, stem: str) -> str:
        name, n = f"{stem}.png", 1
        while name.lower() in self._taken:
            n += 1
            name = f"{stem}-{n}.png"
        self._taken.add(name.lower())
        return name


@dataclass
class _Run:
    """Everything one file's processing needs."""

    cfg: PrepareConfig
    src: Path
    out: Path
    namer: _Namer
    finder: DuplicateFinder | None
    buckets: list[geometry.Size] | None
    masks: dict[Path, Path | None]  # each input's mask (masks/ beside it), listed once per folder
    image_names: set[tuple[Path, str]]  # (folder, stem) of every image-named input: their .txt are captions


def _frame(image: Image.Image, target: geometry.Size, cfg: PrepareConfig, entry: ReportEntry) -> Image.Image:
    """Crop (or pad) and resize to ``target``; record the box and notes in ``entry``."""
    w, h = image.size
    if cfg.crop == "pad":
        entry.crop_box = [0, 0, w, h]
        if abs(w / h - target[0] / target[1]) > 0.01:
            entry.notes.append(f"padded with {cfg.background} to {target[0]}x{target[1]}")
        return geometry.pad_resize(image, target, cfg.background_rgb)
    box = geometry.center_box(w, h, target)
    if cfg.crop == "face":
        from dreamlock.data.faces import largest_face

        face = largest_face(image)
        if face is None:
            entry.notes.append("no face found, used center crop")
        else:
            entry.face_box = list(face)
            box = geometry.face_box(w, h, target, face, cfg.face_margin)
    entry.crop_box = list(box)
    return geometry.crop_resize(image, box, target)


def _size_problem(loaded: LoadedImage, cfg: PrepareConfig, entry: ReportEntry) -> str | None:
    """A skip reason for images that are too small, or None (noting upscales)."""
    w, h = loaded.size
    if min(w, h) < TOO_SMALL_SIDE:
        return f"too small ({w}x{h}); at least {TOO_SMALL_SIDE} pixels per side are needed"
    if min(w, h) < cfg.min_size:
        if cfg.small == "skip":
            return f"smaller than --min-size {cfg.min_size} ({w}x{h}); use --small upscale to keep it"
        entry.notes.append(f"upscaled from {w}x{h} (smaller than --min-size {cfg.min_size})")
    return None


def _save_png(image: Image.Image, path: Path) -> None:
    """Write a PNG atomically (temporary file, then rename)."""
    with atomic_path(path) as scratch:
        image.save(scratch, format="PNG", compress_level=4)


def _process(path: Path, run: _Run, entry: ReportEntry) -> None:
    """Load, check, crop and write one file, filling ``entry``."""
    cfg = run.cfg
    try:
        loaded = read_image(path, cfg.background_rgb, cfg.max_pixels)
    except ImageLoadError as e:
        entry.status, entry.reason = ("skipped" if e.skipped else "failed"), e.reason
        return
    entry.original_size, entry.notes = list(loaded.size), list(loaded.notes)
    if reason := _size_problem(loaded, cfg, entry):
        entry.status, entry.reason = "skipped", reason
        return
    hashes = run.finder.hashes(loaded.image) if run.finder else None
    if run.finder and (first := run.finder.find(hashes)):
        entry.status, entry.reason, entry.duplicate_of = "skipped", f"near-duplicate of {first}", first
        return
    target = cfg.size
    if run.buckets:
        target = geometry.nearest_bucket(*loaded.size, run.buckets)
        entry.bucket = f"{target[0]}x{target[1]}"
    result = _frame(loaded.image, target, cfg, entry)
    box_w, box_h = entry.crop_box[2] - entry.crop_box[0], entry.crop_box[3] - entry.crop_box[1]
    if cfg.crop != "pad" and (box_w < target[0] or box_h < target[1]) and min(loaded.size) >= cfg.min_size:
        entry.notes.append(f"crop {box_w}x{box_h} enlarged to {target[0]}x{target[1]}")
    name = run.namer.claim(path.stem)
    _save_png(result, run.out / name)
    entry.output, entry.output_size = name, list(result.size)
    _carry_mask(path, loaded.size, run, entry)
    _carry_caption(path, run, entry)
    if run.finder:
        run.finder.add(entry.file, hashes)


def _carry_mask(path: Path, size: tuple[int, int], run: _Run, entry: ReportEntry) -> None:
    """The image's mask (``masks/`` beside it, for masked training), framed as the image was, into
    OUT/masks/ under the image's output name; a note either way."""
    mask = run.masks[path]
    if mask is None:
        return
    where = mask.relative_to(run.src).as_posix()
    with Image.open(mask) as im:
        im = ImageOps.exif_transpose(im).convert("L")
    if im.size != tuple(size):
        entry.notes.append(f"mask {where} not carried: it is {im.size[0]}x{im.size[1]}, the image {size[0]}x{size[1]}")
        return
    target = tuple(entry.output_size)
    if run.cfg.crop == "pad":
        framed = geometry.pad_resize(im.convert("RGB"), target, (0, 0, 0)).convert("L")
    else:
        framed = geometry.crop_resize(im, tuple(entry.crop_box), target)
    (run.out / MASK_DIR).mkdir(exist_ok=True)
    _save_png(framed, run.out / MASK_DIR / entry.output)
    entry.notes.append(f"mask {where} framed with it")


def _carry_caption(path: Path, run: _Run, entry: ReportEntry) -> None:
    """The image's caption sidecar (``name.txt`` beside it), copied beside its output."""
    sidecar = path.with_suffix(".txt")
    if sidecar.is_file():
        target = run.out / Path(entry.output).with_suffix(".txt")
        write_bytes(target, sidecar.read_bytes())
        entry.notes.append(f"caption {sidecar.name} copied with it")


def _is_caption_sidecar(path: Path, run: _Run) -> bool:
    """A ``.txt`` beside an image of the same name (it travels with the image)."""
    return path.suffix.lower() == ".txt" and (path.parent, path.stem) in run.image_names


def _process_file(path: Path, run: _Run) -> ReportEntry:
    """One report entry for one input file; never raises for a bad file."""
    entry = ReportEntry(file=path.relative_to(run.src).as_posix())
    if path.name.startswith("."):
        entry.status, entry.reason = "skipped", "hidden file"
        return entry
    if _is_caption_sidecar(path, run):
        entry.status, entry.reason = "skipped", "caption sidecar: copied with its image"
        return entry
    try:
        _process(path, run, entry)
    except MemoryError:
        entry.status, entry.reason = "failed", "out of memory while processing; downscale the image first"
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the run
        entry.status, entry.reason = "failed", f"unexpected error ({type(e).__name__}: {e})"
    if entry.status != "ok":
        entry.crop_box = entry.output = entry.output_size = None
    return entry


def _with_progress(files: list[Path], show: bool) -> Iterator[Path]:
    """Iterate ``files`` with a rich progress bar on stderr when ``show``."""
    if not show:
        yield from files
        return
    from dreamlock.progress import track

    yield from track(files, "preparing")


def prepare(
    src: Path | str,
    out: Path | str,
    config: PrepareConfig | None = None,
    *,
    progress: bool = False,
    **overrides: Any,
) -> PrepareReport:
    """Prepare every file in ``src`` into ``out`` (PNGs + ``prepare_report.json``).

    ``overrides`` are ``PrepareConfig`` fields (e.g. ``size="768x512", crop="face"``) applied on
    top of ``config``. Bad files are reported, not raised; bad arguments raise ``UserError``.
    """
    cfg = resolve_config(config, **overrides)
    src, out = check_paths(src, out)
    files = list_inputs(src, cfg.recursive)
    if not files:
        hint = "" if cfg.recursive else " (use --recursive to include subfolders)"
        raise UserError(f"SRC {src} holds no files; put your photos there{hint}")
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(
        cfg=cfg,
        src=src,
        out=out,
        namer=_Namer(),
        finder=DuplicateFinder(cfg.duplicate_distance) if cfg.dedupe else None,
        buckets=geometry.make_buckets(cfg.size) if cfg.bucket else None,
        masks=dict(zip(files, mask_files(files))),
        image_names={(p.parent, p.stem) for p in files if is_image_name(p)},
    )
    report = PrepareReport(src=str(src), out=str(out), config=cfg.model_dump(mode="json"))
    report.entries = [_process_file(p, run) for p in _with_progress(files, progress)]
    written = {e.output for e in report.entries if e.output}
    report.other_outputs = sorted(p.name for p in out.glob("*.png") if p.name not in written)
    report.write()
    return report


def summary_table(report: PrepareReport, max_rows: int = 40):
    """A rich Table of the run: every entry for small runs, the problems only for large ones."""
    from rich.markup import escape
    from rich.table import Table

    rows: Iterable[ReportEntry] = report.entries
    if len(report.entries) > max_rows:
        rows = [e for e in report.entries if e.status != "ok" or any("upscaled" in n for n in e.notes)]
    table = Table(
        title=f"prepare: {report.ok_count} ok, {report.skipped_count} skipped, {report.failed_count} failed",
        title_justify="left",
    )
    for column in ("file", "status", "output", "reason / notes"):
        table.add_column(column, overflow="fold")
    colours = {"ok": "green", "skipped": "yellow", "failed": "red"}
    for e in list(rows)[:max_rows]:
        detail = "; ".join(([e.reason] if e.reason else []) + e.notes)
        table.add_row(escape(e.file), f"[{colours[e.status]}]{e.status}[/]", escape(e.output or ""), escape(detail))
    return table
