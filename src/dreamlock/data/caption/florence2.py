"""Florence-2 captioning with the native ``transformers`` Florence2ForConditionalGeneration.

Needs a checkpoint in the native transformers format (e.g. the ``florence-community/Florence-2-*``
conversions, or a folder saved with ``save_pretrained``). The original ``microsoft/Florence-2-*``
repositories need ``trust_remote_code``, which dreamlock does not use.
"""

from __future__ import annotations

from PIL import Image

from dreamlock.data.caption.registry import load_pretrained, require_model, require_package, torch_device
from dreamlock.errors import UserError

TASKS = ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>")


class Florence2Captioner:
    """Captions with a Florence-2 checkpoint; ``task`` picks the caption length."""

    def __init__(self, model: str | None = None, task: str = "<CAPTION>", max_new_tokens: int = 64, num_beams: int = 3):
        if task not in TASKS:
            raise UserError(f"florence2: unknown task {task!r}; use one of {', '.join(TASKS)}")
        ref = require_model("florence2", model)
        transformers = require_package("florence2", "transformers", "pip install 'transformers>=4.56'")
        if not hasattr(transformers, "Florence2ForConditionalGeneration"):
            raise UserError(
                "florence2: this transformers has no native Florence-2; upgrade it: pip install -U transformers"
            )
        self.processor = load_pretrained("florence2", ref, transformers.AutoProcessor.from_pretrained)
        net = load_pretrained("florence2", ref, transformers.Florence2ForConditionalGeneration.from_pretrained)
        self.device = torch_device()
        self.model = net.to(self.device).eval()
        self.task = task
        self.generate_kwargs = {"max_new_tokens": max_new_tokens, "num_beams": num_beams}

    def caption(self, image: Image.Image) -> str:
        """One caption for ``image``."""
        import torch

        inputs = self.processor(text=self.task, images=image.convert("RGB"), return_tensors="pt").to(self.device)
        with torch.inference_mode():
            ids = self.model.generate(
                input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"], **self.generate_kwargs
            )
        return self.processor.batch_decode(ids, skip_special_tokens=True)[0].strip()
