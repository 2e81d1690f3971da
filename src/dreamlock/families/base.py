"""What every model family provides: the seam between dreamlock and a diffusers model.

An adapter wraps a loaded pipeline and owns everything family-specific: its components (one
denoiser, N text encoders, a VAE), prompt encoding into a :class:`Conditioning`, image encoding,
the denoiser call, the training objective, which modules LoRA may target, and how pipelines, LoRA
files and learned embeddings are saved and loaded. The loop, the methods, `generate`, `evaluate`
and `export` use only this interface and never name a component class.

A family is a subclass that sets the class attributes and implements :meth:`encode_text` and
:meth:`predict`; it is registered by one line in ``families/__init__.py``.
"""

from __future__ import annotations

from contextlib import contextmanager

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from diffusers import DPMSolverMultistepScheduler
from safetensors.torch import load_file

from dreamlock.errors import UserError
from dreamlock.families.conditioning import Conditioning
from dreamlock.families.objectives import DDPMObjective
from dreamlock.loading import load_base_pipeline
from dreamlock.runs import LORA_FILE


@dataclass(frozen=True)
class TextEncoderSlot:
    """Where one text encoder lives in the pipeline and how outside tools name it."""

    name: str  # pipeline component: "text_encoder", "text_encoder_2"
    tokenizer: str  # its tokenizer's component name
    kohya_prefix: str  # LoRA key prefix in kohya / A1111 files: "lora_te", "lora_te1", "lora_te2"
    embedding_key: str  # key of its vectors in A1111 multi-encoder embeddings ("clip_l", "clip_g")
    #: False for encoders that never train and learn no tokens (T5 in SD3 / FLUX.1: frozen, cacheable)
    tunable: bool = True
    #: the pipeline works without it (SD3's T5): not required when loading
    optional: bool = False


@dataclass
class TextEncoder:
    """A live text encoder with its tokenizer (what methods train and extend)."""

    slot: TextEncoderSlot
    tokenizer: object
    encoder: torch.nn.Module

    @property
    def name(self) -> str:
        return self.slot.name


class ModelFamily:
    """Base adapter: a UNet/CLIP/VAE latent-diffusion pipeline with a DDPM objective."""

    name: ClassVar[str]
    pipeline_class: ClassVar[type]
    denoiser_name: ClassVar[str] = "unet"
    kohya_denoiser_prefix: ClassVar[str] = "lora_unet"
    #: kohya's ``ss_base_model_version``; None: told apart by the LoRA's cross-attention width (SD1 / SD2)
    kohya_base_model_version: ClassVar[str | None] = None
    #: kohya names of denoiser layers that are not their diffusers paths (FLUX.1: BFL names, some
    #: layers fused): path -> (name, part, parts' relative sizes) or None; None here: the diffusers path
    kohya_denoiser_name: ClassVar = None
    #: whether diffusers' ``load_lora_weights`` reads the family's kohya layout (SD3: no; dreamlock converts it)
    diffusers_reads_kohya: ClassVar[bool] = True
    text_encoder_slots: ClassVar[tuple[TextEncoderSlot, ...]]
    #: default LoRA target modules: of the denoiser, and of each text encoder
    denoiser_lora_targets: ClassVar[tuple[str, ...]] = ("to_q", "to_k", "to_v", "to_out.0")
    text_lora_targets: ClassVar[tuple[str, ...]] = ("q_proj", "k_proj", "v_proj", "out_proj")
    #: "ddpm" (epsilon / v) or "flow" (rectified flow): which training options apply
    objective_kind: ClassVar[str] = "ddpm"
    #: whether a guidance value is a training input (guidance-distilled FLUX.1-dev: ``guidance_scale``)
    trains_with_guidance: ClassVar[bool] = False
    #: the classifier-free (FLUX.1-dev: distilled) guidance a model of the family samples well with
    default_guidance: ClassVar[float] = 7.5
    #: what the denoiser sees besides text: None, or "image" (an image to edit: InstructPix2Pix),
    #: encoded by ``encode_condition`` and passed in the Conditioning's ``extras["image"]``
    condition_kind: ClassVar[str | None] = None
    #: for families with a condition: what a model of the family is and which command uses it
    usage: ClassVar[str] = ""
    #: the denoiser works on pixels, there is no VAE (DeepFloyd IF): "latents" are the pixels in [-1, 1]
    pixel_space: ClassVar[bool] = False
    #: families whose models ``load_pipeline`` turns into one of this family with ``convert``
    converts_from: ClassVar[tuple[str, ...]] = ()
    #: extra keyword arguments the pipeline class needs when built from components
    pipeline_kwargs: ClassVar[dict] = {}
    #: extra keyword arguments of ``from_pretrained`` / ``from_single_file``
    load_kwargs: ClassVar[dict] = {}

    def __init__(self, pipe):
        self.pipe = pipe
        vae = getattr(pipe, "vae", None)
        self.vae_config = vae.config if vae is not None else None  # kept: the VAE may be released after caching
        self._token_ids: dict[tuple[str, int, int], dict[str, torch.Tensor]] = {}
        self.objective = self.make_objective(pipe.scheduler.config)

    @classmethod
    def make_objective(cls, scheduler_config: dict):
        """The training objective for a noise schedule (DDPM: epsilon or v, from the config)."""
        return DDPMObjective(scheduler_config)

    def configure(self, config) -> None:
        """Apply the family's training options of a ``TrainConfig`` (flow families: timestep
        sampling, loss weighting, distilled guidance). Nothing for DDPM families."""

    @classmethod
    def load(cls, base: str, base_config: str | None = None, allow_pickle: bool = False,
             dtype: torch.dtype = torch.float32, without: tuple[str, ...] = (), quantize: str | None = None) -> "ModelFamily":
        return cls(cls.load_pipeline(base, base_config, allow_pickle, dtype, without, quantize))

    @classmethod
    def optional_text_components(cls) -> tuple[str, ...]:
        """The encoders (and their tokenizers) a model of the family works without (SD3's T5)."""
        return tuple(n for s in cls.text_encoder_slots if s.optional for n in (s.name, s.tokenizer))

    @classmethod
    def load_pipeline(cls, base: str | Path, base_config: str | None = None, allow_pickle: bool = False,
                      dtype: torch.dtype = torch.float32, without: tuple[str, ...] = (), quantize: str | None = None):
        """The family's pipeline from a folder, a single file or a hub id; ``without``: optional
        components left out (``optional_text_components``); ``quantize``: see ``load_base_pipeline``.
        A model of a family in ``converts_from`` is loaded as that family, then ``convert``-ed."""
        from dreamlock.families import detect_family, get_family

        source = detect_family(base, base_config) if cls.converts_from else None
        if source in cls.converts_from:
            return cls.convert(get_family(source).load_pipeline(base, base_config, allow_pickle, dtype))
        pipe = load_base_pipeline(base, dtype, base_config, allow_pickle, family=cls, without=tuple(without),
                                  quantize=quantize)
        needed = [cls.denoiser_name] + ([] if cls.pixel_space else ["vae"]) + [n for s in cls.text_encoder_slots if not s.optional
                                               for n in (s.name, s.tokenizer)]
        missing = [name for name in needed if getattr(pipe, name, None) is None]
        if missing:
            raise UserError(f"{base}: has no {', '.join(missing)}, so it is not a {cls.name} model; "
                            "leave --family out to use the model's own family, or give the missing parts")
        return pipe

    @staticmethod
    def convert(pipe):
        """A pipeline of a ``converts_from`` family as one of this family (image-conditioned families:
        an SD model with a widened UNet input)."""
        raise NotImplementedError

    @staticmethod
    def reschedule(pipe, **overrides) -> None:
        """Change a pipeline's noise schedule (e.g. ``ZERO_TERMINAL_SNR``), keeping its scheduler class."""
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, **overrides)

    def set_scheduler(self, **overrides) -> None:
        """Change the noise schedule for training, samples and saving."""
        self.reschedule(self.pipe, **overrides)
        self.objective = self.make_objective(self.pipe.scheduler.config)

    # ---- components ----------------------------------------------------------------------
    @property
    def denoiser(self) -> torch.nn.Module:
        return getattr(self.pipe, self.denoiser_name)

    @property
    def vae(self) -> torch.nn.Module | None:
        return getattr(self.pipe, "vae", None)

    @classmethod
    def tunable_slots(cls) -> tuple[TextEncoderSlot, ...]:
        return tuple(s for s in cls.text_encoder_slots if s.tunable)

    def text_encoders(self) -> list[TextEncoder]:
        """The encoders methods may train or extend with new tokens (CLIP; never T5)."""
        return [TextEncoder(s, getattr(self.pipe, s.tokenizer), getattr(self.pipe, s.name))
                for s in self.tunable_slots()]

    def frozen_text_encoders(self) -> list[TextEncoder]:
        """Encoders that only ever encode (T5), those present (SD3's may be dropped)."""
        return [TextEncoder(s, getattr(self.pipe, s.tokenizer), m) for s in self.text_encoder_slots
                if not s.tunable and (m := getattr(self.pipe, s.name, None)) is not None]

    @classmethod
    def learns_tokens(cls) -> bool:
        """Whether learned embeddings (TI, pivotal) can be loaded into this family's pipelines."""
        return hasattr(cls.pipeline_class, "load_textual_inversion")

    def trainable_components(self, with_text_encoders: bool) -> dict[str, torch.nn.Module]:
        """Component name -> module: the denoiser, and the text encoders when asked."""
        parts = {self.denoiser_name: self.denoiser}
        if with_text_encoders:
            parts |= {t.name: t.encoder for t in self.text_encoders()}
        return parts

    def release(self, text_encoders: bool, vae: bool) -> None:
        """Drop the text encoders and / or the VAE from the model once their outputs are cached
        (``training/text_cache.py``); encoding a new prompt or image afterwards is an error."""
        names = [s.name for s in self.text_encoder_slots] if text_encoders else []
        for name in names + (["vae"] if vae and not self.pixel_space else []):
            setattr(self.pipe, name, None)

    def park(self) -> None:
        """Offload (``offload_frozen``): the modules that do not train (the VAE, frozen text encoders)
        go to the CPU until :meth:`unparked` brings them back for sampling."""
        self._parked = [m for m in self.modules()
                        if m is not self.denoiser and not any(p.requires_grad for p in m.parameters())]
        self._park_device = self.denoiser.device
        for module in self._parked:
            module.to("cpu")

    @contextmanager
    def unparked(self):
        """The parked modules on the training device for the duration (sample images, scoring)."""
        parked = getattr(self, "_parked", [])
        for module in parked:
            module.to(self._park_device)
        try:
            yield
        finally:
            for module in parked:
                module.to("cpu")

    def modules(self) -> list[torch.nn.Module]:
        texts = [m for s in self.text_encoder_slots if (m := getattr(self.pipe, s.name, None)) is not None]
        return [m for m in [self.denoiser, self.vae] if m is not None] + texts

    def to(self, device) -> None:
        for module in self.modules():
            module.to(device)

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent (1 for pixel-space families)."""
        return 1 if self.vae_config is None else 2 ** (len(self.vae_config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this: the VAE's and the denoiser's downsampling."""
        return self.vae_scale_factor * 2 ** (len(self.denoiser.config.block_out_channels) - 1)

    @property
    def native_resolution(self) -> int:
        """The pixel size the denoiser was built for (64 for the toy base, 512 for SD1.5, 1024 for SDXL / SD3 / FLUX.1)."""
        return int(self.denoiser.config.sample_size) * self.vae_scale_factor

    # ---- encoding ------------------------------------------------------------------------
    def tokenize(self, text: TextEncoder, prompts: list[str], max_length: int | None = None) -> torch.Tensor:
        """Token ids [B, max_length] (default: the tokenizer's own), each prompt tokenized once per
        vocabulary and length (pretraining and text-encoder training re-encode the same captions
        every step; tokenizing them was a tenth of a toy-pretraining step on a GPU)."""
        length = max_length or text.tokenizer.model_max_length
        memo = self._token_ids.setdefault((text.name, len(text.tokenizer), length), {})
        missing = list(dict.fromkeys(p for p in prompts if p not in memo))
        if missing:
            ids = text.tokenizer(missing, padding="max_length", max_length=length,
                                 truncation=True, return_tensors="pt").input_ids
            memo.update(zip(missing, ids))
        return torch.stack([memo[p] for p in prompts])

    def encode_text(self, prompts: list[str]) -> Conditioning:
        raise NotImplementedError

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [-1, 1] -> shifted and scaled latents (the distribution's mean, for reproducible caches)."""
        vae_dtype = next(self.vae.parameters()).dtype
        dist = self.vae.encode(pixels.to(self.vae.device, vae_dtype)).latent_dist
        shift = getattr(self.vae_config, "shift_factor", None) or 0.0  # SD3 / FLUX VAEs have one
        return (dist.mean.float() - shift) * self.vae_config.scaling_factor

    @torch.no_grad()
    def encode_condition(self, pixels: torch.Tensor) -> torch.Tensor:
        """The per-image condition of families with a ``condition_kind`` (pixels in [-1, 1]). For
        upscalers (``low_res``): the image area-averaged by the family's ``upscale_factor``, the small
        picture the stage learns to redraw; image editors override it."""
        if self.condition_kind == "low_res":
            return F.avg_pool2d(pixels.float(), self.upscale_factor)
        raise NotImplementedError(f"the {self.name} family takes no image condition")

    @classmethod
    def upscale_kwargs(cls, size: tuple[int, int]) -> dict:
        """Upscalers: the pipeline arguments that make an image of ``size`` (width, height) come out
        at the upscale factor (the SD upscaler derives it from the image; IF stage II needs it)."""
        return {}

    def predict(self, noisy: torch.Tensor, t: torch.Tensor, cond: Conditioning,
                meta: torch.Tensor | None = None) -> torch.Tensor:
        """The denoiser's output for noisy latents in the normal [B, C, H, W] layout. ``meta`` [B, 4]:
        each image's original height, width and crop top, left (for families conditioned on them)."""
        raise NotImplementedError

    # ---- pipelines -----------------------------------------------------------------------
    def pipeline(self, scheduler=None):
        """A pipeline over the live modules (LoRA and learned tokens included)."""
        parts = dict(self.pipe.components)
        if scheduler is not None:
            parts["scheduler"] = scheduler
        pipe = self.pipeline_class(**parts, **self.pipeline_kwargs)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    @staticmethod
    def sampling_scheduler(scheduler_config: dict):
        """The fast sampler dreamlock generates with (DPM-Solver++ multistep for DDPM families)."""
        return DPMSolverMultistepScheduler.from_config(scheduler_config)

    def sampling_pipeline(self):
        """The live pipeline with the fast sampler (samples, class images, selection)."""
        return self.pipeline(self.sampling_scheduler(self.pipe.scheduler.config))

    def save_pipeline(self, out_dir: Path) -> None:
        """The whole pipeline as a diffusers folder (safetensors)."""
        self.pipeline().save_pretrained(out_dir, safe_serialization=True)

    @classmethod
    def single_file_text_layout(cls, pipe) -> dict[str, tuple[str, str]]:
        """Text-encoder component -> (key prefix, "clip" | "openclip" | "t5") in the family's single-file
        checkpoint (``exporting/single_file.py`` writes the keys); {}: the file holds no text encoder."""
        raise NotImplementedError(f"no single-file layout for the {cls.name} family")

    #: a transformer family's denoiser in its original single-file layout: (diffusers state dict,
    #: config) -> original keys; None: a UNet, written in the LDM layout by ``exporting/single_file.py``
    single_file_denoiser: ClassVar = None
    #: the single file's prefix of denoiser keys, and whether it holds the VAE too
    single_file_denoiser_prefix: ClassVar[str] = "model.diffusion_model."
    single_file_has_vae: ClassVar[bool] = True

    # ---- LoRA and embeddings files -------------------------------------------------------
    @classmethod
    def save_lora(cls, out_dir: Path, layers: dict[str, dict], metadata: dict[str, dict]) -> None:
        """Save LoRA state dicts per component name in the diffusers format of this family."""
        kwargs = {f"{name}_lora_layers": state for name, state in layers.items()}
        kwargs |= {f"{name}_lora_adapter_metadata": meta for name, meta in metadata.items()}
        cls.pipeline_class.save_lora_weights(out_dir, weight_name=LORA_FILE, safe_serialization=True, **kwargs)

    def embeddings_state(self, token: str, vectors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Learned vectors per text encoder name -> the saved embeddings file's tensors.

        One encoder: ``{token: [n, dim]}`` (diffusers' format). Several: ``{"clip_l": ..., "clip_g": ...}``
        (the A1111 / ComfyUI format; the token is in ``run.json``)."""
        if len(self.tunable_slots()) == 1:
            return {token: next(iter(vectors.values()))}
        return {s.embedding_key: vectors[s.name] for s in self.tunable_slots()}

    @classmethod
    def add_embeddings(cls, pipe, source: Path | dict, tokens: list[str] | None = None) -> list[str]:
        """Load learned embeddings (a file, or its tensors) into ``pipe``'s tokenizers and text encoders."""
        path = source if isinstance(source, (str, Path)) else "embeddings"
        state = load_file(str(source)) if isinstance(source, (str, Path)) else source
        slots = cls.tunable_slots()
        keys = {s.embedding_key for s in slots}
        if len(slots) > 1 and keys <= set(state):
            token = (tokens or [Path(path).stem])[0]
            for s in slots:
                vectors = state[s.embedding_key]
                pipe.load_textual_inversion(vectors if vectors.ndim == 2 else vectors[None], token=token,
                                            text_encoder=getattr(pipe, s.name), tokenizer=getattr(pipe, s.tokenizer))
            return [token]
        if len(slots) > 1:
            raise UserError(f"{path}: embeddings for a {cls.name} model need the keys {sorted(keys)}; give a file trained on this family")
        for token, tensor in state.items():
            pipe.load_textual_inversion({token: tensor if tensor.ndim == 2 else tensor[None]}, token=token)
        return list(state)
