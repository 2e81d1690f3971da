"""The ``clip-dino`` scorer for real models: DINO for identity, CLIP for prompt fidelity.

As in DreamBench: subject fidelity is the cosine similarity of DINO ViT embeddings (the CLS
token), CLIP-I the cosine similarity of CLIP image embeddings (generated vs reference), CLIP-T and
prompt fidelity are read with CLIP image-text similarity, and diversity uses DINO's patch-token
maps (:meth:`ClipDinoScorer.layout_features`). Weights are local folders only
(``--scorer-model``): either one folder holding ``clip/`` and ``dino/`` subfolders, or two folders
given as ``CLIP_DIR,DINO_DIR``. Each is what ``save_pretrained`` writes (model + image processor;
the CLIP folder also its tokenizer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from dreamlock.errors import UserError
from dreamlock.toyworld.vocab import SCENE_PHRASES

HOW = "give --scorer-model DIR with clip/ and dino/ subfolders, or CLIP_DIR,DINO_DIR"


def resolve_paths(model: str | Path | None) -> tuple[Path, Path]:
    """The CLIP and DINO folders named by ``--scorer-model`` (one-line UserError if missing)."""
    if model is None or str(model).strip() == "":
        raise UserError(f"scorer clip-dino needs local weights: {HOW}")
    text = str(model)
    if "," in text:
        clip, dino = (Path(p.strip()) for p in text.split(",", 1))
    else:
        clip, dino = Path(text) / "clip", Path(text) / "dino"
    for what, path in (("CLIP", clip), ("DINO", dino)):
        if not path.is_dir():
            raise UserError(f"{what} weights not found: {path} does not exist ({HOW})")
    return clip, dino


def _image_processor(path: Path) -> Any:
    """The folder's image processor, PIL backend (no torchvision needed)."""
    import transformers
    from transformers import AutoImageProcessor

    if int(transformers.__version__.split(".")[0]) >= 5:
        return AutoImageProcessor.from_pretrained(path, backend="pil")
    return AutoImageProcessor.from_pretrained(path, use_fast=False)


def _features(out: Any) -> torch.Tensor:
    """A projection output as a tensor (transformers 4 returns one, 5 may wrap it)."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    return pooled if pooled is not None else out[0]


class ClipDinoScorer:
    """DINO identity embedding + CLIP image-text matching, from local weights."""

    name = "clip-dino"
    #: What :meth:`layout_features` feeds the diversity metric, for the report.
    layout_measure = "DINO patch-token distance (2 - 2 cos per patch, averaged)"

    def __init__(self, model: str | Path | None = None):
        from transformers import AutoModel, AutoTokenizer, CLIPModel

        clip_dir, dino_dir = resolve_paths(model)
        try:
            self.clip = CLIPModel.from_pretrained(clip_dir).eval()
            self.clip_processor = _image_processor(clip_dir)
            self.tokenizer = AutoTokenizer.from_pretrained(clip_dir)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot load CLIP from {clip_dir}: {str(e).splitlines()[0]} ({HOW})") from None
        try:
            self.dino = AutoModel.from_pretrained(dino_dir).eval()
            self.dino_processor = _image_processor(dino_dir)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot load DINO from {dino_dir}: {str(e).splitlines()[0]} ({HOW})") from None

    @torch.no_grad()
    def embed(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """DINO CLS embeddings (layer-normed pooler output where the model has one), L2-normalised."""
        pixels = self.dino_processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
        out = self.dino(pixel_values=pixels)
        cls = out.pooler_output if getattr(out, "pooler_output", None) is not None else out.last_hidden_state[:, 0]
        return torch.nn.functional.normalize(cls.float(), dim=1)

    @torch.no_grad()
    def layout_features(self, images: Sequence[Image.Image]) -> list[torch.Tensor]:
        """DINO's last-layer patch tokens as one spatial map [N, C, h, w] (CLS and register tokens
        dropped), for :func:`dreamlock.evaluation.metrics.layout_distance_matrix`: per patch the
        distance is ``2 - 2 cos`` of the two images' tokens, averaged over patches, so it sees
        where things are (pose, position, scene), not only what they are."""
        pixels = self.dino_processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
        tokens = self.dino(pixel_values=pixels).last_hidden_state.float()
        registers = int(getattr(self.dino.config, "num_register_tokens", 0) or 0)
        patches = tokens[:, 1 + registers:]
        patch = int(getattr(self.dino.config, "patch_size", 0) or 0)
        h, w = (pixels.shape[2] // patch, pixels.shape[3] // patch) if patch else (0, 0)
        if h * w != patches.shape[1]:
            h, w = patches.shape[1], 1
        return [patches.transpose(1, 2).reshape(len(images), patches.shape[2], h, w)]

    @torch.no_grad()
    def image_features(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """CLIP image embeddings, L2-normalised (CLIP-I compares these, generated vs reference)."""
        pixels = self.clip_processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
        return torch.nn.functional.normalize(_features(self.clip.get_image_features(pixel_values=pixels)).float(), dim=1)

    @torch.no_grad()
    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        """CLIP text embeddings, L2-normalised."""
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        feats = self.clip.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        return torch.nn.functional.normalize(_features(feats).float(), dim=1)

    def text_similarity(self, images: Sequence[Image.Image], text: str) -> list[float]:
        """CLIP-T: cosine similarity of each image to ``text``."""
        return (self.image_features(images) @ self.text_features([text]).T)[:, 0].tolist()

    def attributes(self, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
        """Zero-shot scene call (``a photo on the beach``...) per image, with CLIP."""
        scenes = list(SCENE_PHRASES)
        texts = [f"a photo {SCENE_PHRASES[s]}".strip() for s in scenes]
        best = (self.image_features(images) @ self.text_features(texts).T).argmax(dim=1).tolist()
        return [{"scene": scenes[i]} for i in best]

    def prompt_match(self, images: Sequence[Image.Image], prompt_attrs: dict[str, Any]) -> list[bool]:
        """True where an image is closer (CLIP) to its prompt's text than to every alternative
        prompt's (``prompt_attrs["alternatives"]``; without any, than to ``a photo``)."""
        text = prompt_attrs["text"]
        others = [t for t in prompt_attrs.get("alternatives", []) if t != text] or ["a photo"]
        sims = self.image_features(images) @ self.text_features([text, *others]).T
        return (sims.argmax(dim=1) == 0).tolist()
