"""WD14-style tagger (ONNX): a folder with ``model.onnx`` and ``selected_tags.csv``.

The layout of the SmilingWolf ``wd-*-tagger`` repositories: the model takes one NHWC float32
image (BGR, 0..255, padded to a white square, side read from the model's input shape) and gives one
sigmoid score per tag row of ``selected_tags.csv`` (columns ``name`` and ``category``: 9 = rating,
4 = character, 0 = general). The caption is the tags above their threshold, best first, joined
with ", " (rating tags left out, underscores shown as spaces).

Needs ``onnxruntime`` (``pip install 'dreamlock[wd14]'``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dreamlock.data.caption.registry import require_model, require_package
from dreamlock.errors import UserError

MODEL_FILE = "model.onnx"
TAGS_FILE = "selected_tags.csv"
RATING, GENERAL, CHARACTER = 9, 0, 4
DEFAULT_SIDE = 448
INSTALL = "pip install 'dreamlock[wd14]' (or pip install onnxruntime)"
HOW = f"pass --model FOLDER holding {MODEL_FILE} and {TAGS_FILE} (e.g. a download of SmilingWolf/wd-vit-tagger-v3)"


@dataclass(frozen=True)
class Tag:
    """One row of selected_tags.csv."""

    name: str
    category: int


def read_tags(path: Path) -> list[Tag]:
    """Read ``selected_tags.csv``; raise a one-line UserError when it is unusable."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return [Tag(row["name"], int(row.get("category") or GENERAL)) for row in rows]
    except (OSError, KeyError, ValueError) as e:
        raise UserError(f"wd14: cannot read {path} ({e}); it needs 'name' and 'category' columns") from None


def _tag_text(name: str) -> str:
    """Booru tag -> caption words (kaomoji such as ^_^ keep their underscores)."""
    return name if len(name) <= 3 else name.replace("_", " ")


class WD14Captioner:
    """Tags an image with a WD14 ONNX tagger."""

    def __init__(self, model: str | None = None, threshold: float = 0.35, character_threshold: float = 0.85):
        folder = Path(require_model("wd14", model)).expanduser()
        if not (folder / MODEL_FILE).is_file() or not (folder / TAGS_FILE).is_file():
            raise UserError(f"wd14: {folder} must be a folder holding {MODEL_FILE} and {TAGS_FILE}; {HOW}")
        ort = require_package("wd14", "onnxruntime", INSTALL)
        self.tags = read_tags(folder / TAGS_FILE)
        try:
            self.session = ort.InferenceSession(str(folder / MODEL_FILE), providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
            raise UserError(f"wd14: cannot load {folder / MODEL_FILE} ({str(e).splitlines()[0]})") from None
        self.input = self.session.get_inputs()[0]
        self.side = self._input_side()
        self.thresholds = {GENERAL: threshold, CHARACTER: character_threshold}

    def _input_side(self) -> int:
        shape = self.input.shape
        side = shape[1] if len(shape) == 4 else None
        return side if isinstance(side, int) and side > 0 else DEFAULT_SIDE

    def _pixels(self, image: Image.Image) -> np.ndarray:
        """White-padded square, resized, BGR float32 NHWC in 0..255."""
        rgb = image.convert("RGB")
        side = max(rgb.size)
        square = Image.new("RGB", (side, side), (255, 255, 255))
        square.paste(rgb, ((side - rgb.width) // 2, (side - rgb.height) // 2))
        square = square.resize((self.side, self.side), Image.Resampling.BICUBIC)
        return np.asarray(square, dtype=np.float32)[:, :, ::-1][None].copy()

    def scores(self, image: Image.Image) -> np.ndarray:
        """One score per tag."""
        out = self.session.run(None, {self.input.name: self._pixels(image)})[0]
        scores = np.asarray(out, dtype=np.float32).reshape(-1)
        if scores.size != len(self.tags):
            raise UserError(f"wd14: the model gives {scores.size} scores but {TAGS_FILE} lists {len(self.tags)} tags")
        return scores

    def caption(self, image: Image.Image) -> str:
        """Tags above their threshold, best first, joined with ", "."""
        scores = self.scores(image)
        picked = [
            (float(s), tag)
            for s, tag in zip(scores, self.tags)
            if tag.category in self.thresholds and s >= self.thresholds[tag.category]
        ]
        picked.sort(key=lambda p: -p[0])
        return ", ".join(_tag_text(tag.name) for _, tag in picked)
