"""The ``toy`` scorer: the toy world's oracle judges class, colour, scene and identity."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from dreamlock.toyworld.oracle import images_to_tensor, load_oracle, single_thread
from dreamlock.toyworld.render import Look, render_look
from dreamlock.toyworld.subjects import make_subject
from dreamlock.toyworld.vocab import CLASSES, COLOURS

#: The attributes a toy prompt can ask for and the oracle can check.
CHECKED = ("class", "colour", "scene")


class ToyScorer:
    """Oracle-backed scorer. ``model``: an oracle folder; None uses the shipped oracle."""

    name = "toy"
    #: What :meth:`layout_features` feeds the diversity metric, for the report.
    layout_measure = "LPIPS-style distance on the oracle's conv features (unweighted)"

    def __init__(self, model: str | None = None):
        self.oracle = load_oracle(model)
        #: The oracle's verdict threshold (cosine to the reference centroid), calibrated on hard
        #: negatives when it was trained; None for an oracle that has none (impostors calibrate then).
        self.subject_threshold = self.oracle.subject_threshold

    def embed(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Oracle identity embeddings [N, 64], L2-normalised."""
        return self.oracle.embed(list(images))

    @torch.no_grad()
    def layout_features(self, images: Sequence[Image.Image]) -> list[torch.Tensor]:
        """The oracle's spatial feature maps, one [N, C, H, W] tensor per stage of its conv trunk
        (``oracle.net.trunk``), for the LPIPS-style layout distance of
        :func:`dreamlock.evaluation.metrics.layout_distance_matrix`: LPIPS's recipe (per-layer
        channel-normalised maps, squared differences averaged spatially, layers averaged) on the
        oracle's layers, without LPIPS's learned channel weights. The maps are read with forward
        hooks while the whole net runs, so the input goes through the oracle's own normalisation."""
        trunk = self.oracle.net.trunk
        maps: list[torch.Tensor] = []
        hooks = [stage.register_forward_hook(lambda _m, _i, out: maps.append(out.detach().float().clone()))
                 for stage in trunk]
        try:
            with single_thread():
                self.oracle.net(images_to_tensor(list(images), self.oracle.size))
        finally:
            for hook in hooks:
                hook.remove()
        return maps

    def attributes(self, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
        """``{"class", "colour", "scene", "detail", "detail_colour"}`` per image."""
        return self.oracle.predict(list(images))

    def prompt_match(self, images: Sequence[Image.Image], prompt_attrs: dict[str, Any]) -> list[bool]:
        """True where every prompted class/colour/scene equals the oracle's call."""
        wanted = {k: v for k, v in prompt_attrs.items() if k in CHECKED and v is not None}
        return [all(a[k] == v for k, v in wanted.items()) for a in self.attributes(images)]

    def impostors(
        self, class_word: str, n: int = 30, seed: int = 0, references: Sequence[Image.Image] | None = None
    ) -> list[Image.Image] | None:
        """Plain-scene renders of things of the same class that are *not* the subject: every plain
        colour twice (what a base model draws for the class prompt) and random other subjects.

        With ``references``, random subjects that share the look the oracle reads off the
        references (colour, detail, detail colour) are skipped: they would be the subject itself.
        """
        if class_word not in CLASSES:
            return None
        rng = np.random.default_rng([seed, 4242])
        plain = [render_look(Look(class_word, c), "plain", rng) for c in COLOURS for _ in range(2)]
        subject_look = self._majority_look(references) if references else None
        others: list[Image.Image] = []
        while len(plain) + len(others) < n:
            look = make_subject(rng, cls=class_word).look()
            if (look.colour, look.detail, look.detail_colour) != subject_look:
                others.append(render_look(look, "plain", rng))
        return plain + others

    def _majority_look(self, images: Sequence[Image.Image]) -> tuple[str, str, str]:
        """The most common (colour, detail, detail_colour) the oracle reads off ``images``."""
        calls = [(a["colour"], a["detail"], a["detail_colour"]) for a in self.attributes(images)]
        return max(set(calls), key=calls.count)
