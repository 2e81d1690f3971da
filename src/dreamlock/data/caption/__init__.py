"""``dreamlock caption``: write a ``<image>.txt`` caption sidecar next to each image in a folder.

Existing sidecars are kept unless ``overwrite``. Captioners come from the registry
(``template``, ``toy``, ``blip``, ``florence2``, ``wd14``); the trigger and class word are added to
model captions by ``template.compose``. The model is loaded only when some image needs a caption.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from pydantic import BaseModel, Field

from dreamlock.atomic import write_text
from dreamlock.data.caption.registry import (
    CAPTIONERS,
    MODEL_EXAMPLES,
    Captioner,
    check_name,
    get_captioner,
    require_model,
)
from dreamlock.data.caption.template import DEFAULT_TEMPLATE, compose
from dreamlock.data.imageio import ImageLoadError, is_image_name, read_image
from dreamlock.errors import UserError

__all__ = ["CAPTIONERS", "CaptionEntry", "CaptionReport", "Captioner", "caption", "get_captioner", "sidecar_path"]


class CaptionEntry(BaseModel):
    """What happened to one image's sidecar."""

    file: str
    sidecar: str
    status: Literal["written", "kept", "skipped", "failed"]
    caption: str | None = None
    reason: str | None = None


class CaptionReport(BaseModel):
    """The result of a caption run."""

    dir: str
    captioner: str
    entries: list[CaptionEntry] = Field(default_factory=list)

    def _count(self, status: str) -> int:
        return sum(e.status == status for e in self.entries)

    @property
    def written_count(self) -> int:
        """Sidecars written in this run."""
        return self._count("written")

    @property
    def kept_count(self) -> int:
        """Existing sidecars left as they were."""
        return self._count("kept")

    @property
    def failed_count(self) -> int:
        """Images that could not be captioned."""
        return self._count("failed")

    def to_json(self) -> str:
        """The report as JSON text."""
        data = self.model_dump(mode="json")
        data["summary"] = {"written": self.written_count, "kept": self.kept_count, "failed": self.failed_count}
        return json.dumps(data, indent=2, ensure_ascii=False)


def sidecar_path(image: Path) -> Path:
    """``photo.jpg`` -> ``photo.txt`` in the same folder."""
    return image.with_suffix(".txt")


def list_images(folder: Path) -> list[Path]:
    """Image files (by extension, not hidden) directly in ``folder``, sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_name(p) and not p.name.startswith("."))


def _plan(images: list[Path], overwrite: bool) -> Iterator[CaptionEntry]:
    """One entry per image: ``kept`` / ``skipped`` decided now, the rest ``written`` (to do)."""
    claimed: dict[Path, str] = {}
    for image in images:
        side = sidecar_path(image)
        entry = CaptionEntry(file=image.name, sidecar=side.name, status="written")
        if side in claimed:
            entry.status, entry.reason = "skipped", f"sidecar {side.name} belongs to {claimed[side]} (same name)"
        elif side.exists() and not overwrite:
            entry.status, entry.reason = "kept", "sidecar exists (use --overwrite to replace it)"
            entry.caption = side.read_text(encoding="utf-8", errors="replace").strip()
        claimed.setdefault(side, image.name)
        yield entry


def _caption_one(folder: Path, entry: CaptionEntry, captioner: Captioner, text_args: dict) -> None:
    """Caption one image and write its sidecar; failures are recorded in ``entry``."""
    try:
        loaded = read_image(folder / entry.file)
        raw = captioner.caption(loaded.image)
        entry.caption = compose(str(raw or ""), **text_args)
        write_text(folder / entry.sidecar, entry.caption)  # atomically, UTF-8, no trailing newline
    except ImageLoadError as e:
        entry.status, entry.reason = "failed", e.reason
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - one bad image must not stop the run
        entry.status, entry.reason = "failed", f"captioner error ({type(e).__name__}: {e})"


def _with_progress(entries: list[CaptionEntry], show: bool) -> Iterable[CaptionEntry]:
    if not show or len(entries) < 2:
        return entries
    from dreamlock.progress import track

    return track(entries, "captioning")


def caption(
    dir: Path | str,
    trigger: str | None = None,
    class_word: str | None = None,
    captioner: str = "template",
    model: str | None = None,
    overwrite: bool = False,
    prefix: str = "",
    suffix: str = "",
    *,
    template: str = DEFAULT_TEMPLATE,
    options: dict[str, Any] | None = None,
    progress: bool = False,
) -> CaptionReport:
    """Write ``<image>.txt`` sidecars for every image in ``dir``; return what was done.

    ``captioner`` is a registry name; ``model`` a local folder or Hub id for model captioners;
    ``options`` extra constructor arguments of the captioner (e.g. ``{"num_beams": 1}`` for blip,
    ``{"task": "<DETAILED_CAPTION>"}`` for florence2, ``{"threshold": 0.5}`` for wd14).
    Bad arguments raise ``UserError``; an image that cannot be read is a ``failed`` entry.
    """
    folder = Path(dir)
    if not folder.is_dir():
        raise UserError(f"DIR {folder} is not an existing folder; give the folder holding your images")
    check_name(captioner)
    if captioner in MODEL_EXAMPLES:
        require_model(captioner, model)
    images = list_images(folder)
    if not images:
        raise UserError(f"DIR {folder} holds no images (.png, .jpg, .webp, ...); run `dreamlock prepare` first")
    report = CaptionReport(dir=str(folder), captioner=captioner, entries=list(_plan(images, overwrite)))
    todo = [e for e in report.entries if e.status == "written"]
    if todo:
        kwargs = dict(options or {})
        if captioner == "template":
            kwargs.update(template=template, trigger=trigger, class_word=class_word)
        cap = get_captioner(captioner, model, **kwargs)
        text_args = {"trigger": trigger, "class_word": class_word, "prefix": prefix, "suffix": suffix}
        for entry in _with_progress(todo, progress):
            _caption_one(folder, entry, cap, text_args)
    return report


def summary_table(report: CaptionReport, max_rows: int = 40):
    """A rich Table of the run (file, status, caption or reason)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"caption ({report.captioner}): {report.written_count} written, {report.kept_count} kept, "
        f"{report.failed_count} failed",
        title_justify="left",
    )
    for column in ("file", "status", "caption / reason"):
        table.add_column(column, overflow="fold")
    colours = {"written": "green", "kept": "cyan", "skipped": "yellow", "failed": "red"}
    for e in report.entries[:max_rows]:
        detail = e.caption if e.status in ("written", "kept") else e.reason
        table.add_row(escape(e.file), f"[{colours[e.status]}]{e.status}[/]", escape(detail or ""))
    if len(report.entries) > max_rows:
        table.add_row(f"... {len(report.entries) - max_rows} more", "", "")
    return table
