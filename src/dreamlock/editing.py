"""`dreamlock edit`: change an image by instruction with an InstructPix2Pix model (the edit route).

Works with any ``StableDiffusionInstructPix2PixPipeline`` (a folder, a hub id, a run of
``dreamlock train --method ip2p``). Two guidance scales, as in the InstructPix2Pix paper: ``guidance``
pulls toward the instruction, ``image_guidance`` toward the image being edited.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image

from dreamlock.errors import UserError
from dreamlock.families import family_of_pipeline
from dreamlock.generation import _slug, load_conditioned
from dreamlock.grid import make_grid
from dreamlock.model_defaults import model_guidance
from dreamlock.progress import progress


class Editor:
    """A loaded image-editing pipeline (dreamlock's fast sampler) and its default guidance scales."""

    def __init__(self, generator):
        self.pipe = generator.pipe
        family = family_of_pipeline(self.pipe)
        self.guidance = generator.default_guidance
        recommended = model_guidance(generator.info.base if generator.info else generator.source, "image_guidance")
        self.image_guidance = recommended if recommended is not None else family.default_image_guidance
        adapter = family(self.pipe)
        self.resolution, self.multiple = adapter.native_resolution, adapter.size_multiple

    def edits(self, image: Image.Image, instruction: str, seeds: list[int], steps: int = 30,
              guidance: float | None = None, image_guidance: float | None = None,
              negative_prompt: str | None = None) -> list[Image.Image]:
        """One edit of ``image`` per seed, in seed order."""
        n = len(seeds)
        return self.edit_many([image] * n, [instruction] * n, seeds, steps, guidance, image_guidance, negative_prompt)

    @torch.no_grad()
    def edit_many(self, images: list[Image.Image], instructions: list[str], seeds: list[int], steps: int = 30,
                  guidance: float | None = None, image_guidance: float | None = None,
                  negative_prompt: str | None = None, batch_size: int = 16) -> list[Image.Image]:
        """Edit ``images[i]`` by ``instructions[i]`` with seed ``seeds[i]`` (same-size images), in batches."""
        out: list[Image.Image] = []
        for start in range(0, len(images), batch_size):
            part = slice(start, start + batch_size)
            n = len(images[part])
            out += self.pipe(instructions[part], image=images[part], num_inference_steps=steps,
                             guidance_scale=self.guidance if guidance is None else guidance,
                             image_guidance_scale=self.image_guidance if image_guidance is None else image_guidance,
                             negative_prompt=[negative_prompt] * n if negative_prompt else None,
                             generator=[torch.Generator().manual_seed(s) for s in seeds[part]]).images
        return out


def load_editor(run_or_model: str | Path) -> Editor:
    """An image editor from a run or a model, or a one-line error for a text-to-image model."""
    return Editor(load_conditioned(run_or_model, "image", "an image editor; give an InstructPix2Pix model, or "
                                   "train one with `dreamlock train --method ip2p`"))


def read_input(path: str | Path, resolution: int, multiple: int) -> Image.Image:
    """The image to edit: safely read, upright RGB, scaled to about ``resolution``² pixels with sides
    that are multiples of ``multiple``."""
    from dreamlock.data.imageio import ImageLoadError, read_image

    try:
        image = read_image(Path(path)).image
    except (ImageLoadError, OSError) as e:
        raise UserError(f"{path}: cannot read the image to edit ({e})") from None
    scale = math.sqrt(resolution * resolution / (image.width * image.height))
    size = [max(multiple, round(side * scale / multiple) * multiple) for side in image.size]
    return image.resize(tuple(size), Image.Resampling.LANCZOS) if tuple(size) != image.size else image


def edit(run_or_model: str | Path, image: str | Path, instructions: list[str] | str, n: int = 4, seed: int = 0,
         steps: int = 30, guidance: float | None = None, image_guidance: float | None = None,
         out: str | Path = "edited", grid: bool = False, negative_prompt: str | None = None) -> list[Path]:
    """``n`` edits of ``image`` per instruction (seeds ``seed``..``seed+n-1``); returns the files written
    (with ``grid``: one grid per instruction, the input image first)."""
    instructions = [instructions] if isinstance(instructions, str) else list(instructions)
    if not instructions or not all(i.strip() for i in instructions):
        raise UserError("--instruction is empty; say what to change, e.g. --instruction 'put it on the beach'")
    if n < 1 or steps < 1:
        raise UserError("-n and --steps must be at least 1")
    editor = load_editor(run_or_model)
    source = read_input(image, editor.resolution, editor.multiple)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with progress("editing", len(instructions) * n) as bar:
        for i, instruction in enumerate(instructions):
            seeds = list(range(seed, seed + n))
            edits = editor.edits(source, instruction, seeds, steps, guidance, image_guidance, negative_prompt)
            for s, picture in zip(seeds, edits):
                written.append(out / f"{i:02d}-{_slug(instruction)}-seed{s}.png")
                picture.save(written[-1])
            if grid:
                written.append(out / f"{i:02d}-{_slug(instruction)}-grid.png")
                make_grid([source] + edits, cols=n + 1).save(written[-1])
            bar.advance(n)
    return written
