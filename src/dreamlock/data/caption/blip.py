"""BLIP image captioning (``transformers`` BlipForConditionalGeneration + BlipProcessor)."""

from __future__ import annotations

from PIL import Image

from dreamlock.data.caption.registry import load_pretrained, require_model, require_package, torch_device


class BlipCaptioner:
    """Captions with a BLIP checkpoint from a local folder or a Hub id."""

    def __init__(self, model: str | None = None, max_new_tokens: int = 40, num_beams: int = 3):
        ref = require_model("blip", model)
        transformers = require_package("blip", "transformers", "pip install transformers")
        self.processor = load_pretrained("blip", ref, transformers.BlipProcessor.from_pretrained)
        net = load_pretrained("blip", ref, transformers.BlipForConditionalGeneration.from_pretrained)
        self.device = torch_device()
        self.model = net.to(self.device).eval()
        self.generate_kwargs = {"max_new_tokens": max_new_tokens, "num_beams": num_beams}

    def caption(self, image: Image.Image) -> str:
        """One caption for ``image`` (beam search, special tokens removed)."""
        import torch

        inputs = self.processor(images=image.convert("RGB"), return_tensors="pt").to(self.device)
        with torch.inference_mode():
            ids = self.model.generate(pixel_values=inputs["pixel_values"], **self.generate_kwargs)
        return self.processor.decode(ids[0], skip_special_tokens=True).strip()
