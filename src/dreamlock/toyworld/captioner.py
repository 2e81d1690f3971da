"""The ``toy`` captioner: captions toy-world images from the oracle's predictions."""

from __future__ import annotations

from PIL import Image

from dreamlock.toyworld.oracle import load_oracle
from dreamlock.toyworld.vocab import caption_for


class ToyCaptioner:
    """Caption an image as ``a photo of a red star`` / ``a photo of a red star on the beach``.

    ``model`` is a folder holding ``oracle.safetensors`` + ``oracle.json`` (or the
    ``.safetensors`` file itself); None uses the oracle shipped with dreamlock.
    """

    def __init__(self, model: str | None = None):
        self.oracle = load_oracle(model)

    def caption(self, image: Image.Image) -> str:
        """One caption in the pretraining template, from the oracle's class, colour and scene."""
        return self.captions([image])[0]

    def captions(self, images: list[Image.Image]) -> list[str]:
        """Captions for many images in one batch."""
        return [caption_for(p["class"], p["colour"], p["scene"]) for p in self.oracle.predict(images)]
