"""Build randomly initialised SD / SDXL-architecture pipelines from a small spec, offline.

Used by the tests (tiny pipelines that prove plumbing) and by the toy world (the CPU-sized base
model that dreamlock pretrains itself). The results are real ``StableDiffusionPipeline`` /
``StableDiffusionXLPipeline`` objects: the same loading, training and export code paths run on
them as on Stable Diffusion 1.x/2.x and SDXL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal

import torch
from diffusers import (AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline,
                       UNet2DConditionModel)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from dreamlock.config import StrictModel
from dreamlock.families.tokenizer import build_clip_tokenizer


class SDArch(StrictModel):
    """Sizes of a small SD-architecture model. Defaults give the tiny test model."""

    sample_size: int = 32
    vae_channels: list[int] = [8, 16]
    latent_channels: int = 4
    unet_channels: list[int] = [16, 32]
    cross_attention: list[bool] = [False, True]  # per UNet resolution level, highest first
    layers_per_block: int = 1
    attention_head_dim: int = 8
    norm_num_groups: int = 4
    text_hidden: int = 32
    text_hidden_2: int = 48  # SDXL's second (OpenCLIP bigG-like) encoder: wider than the first, as in SDXL
    text_layers: int = 2
    text_heads: int = 2
    text_act: Literal["quick_gelu", "gelu"] = "quick_gelu"  # OpenAI CLIP (SD1) / OpenCLIP (SD2)
    linear_projection: bool = False  # SD2's transformer blocks use linear proj_in / proj_out
    max_length: int = 16
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"
    beta_schedule: str = "scaled_linear"
    scaling_factor: float = 0.18215


#: SDXL's size/crop conditioning: six ids, each embedded in this many features (256 in SDXL)
SDXL_TIME_EMBED = 8


def _unet(arch: SDArch, xl: bool = False) -> UNet2DConditionModel:
    down = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in arch.cross_attention]
    up = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(arch.cross_attention)]
    latent_size = arch.sample_size // 2 ** (len(arch.vae_channels) - 1)
    xl_kwargs = dict(
        addition_embed_type="text_time", addition_time_embed_dim=SDXL_TIME_EMBED, use_linear_projection=True,
        projection_class_embeddings_input_dim=6 * SDXL_TIME_EMBED + arch.text_hidden_2,
    ) if xl else {}
    if not xl:
        xl_kwargs["use_linear_projection"] = arch.linear_projection
    return UNet2DConditionModel(
        **xl_kwargs,
        sample_size=latent_size,
        in_channels=arch.latent_channels,
        out_channels=arch.latent_channels,
        block_out_channels=tuple(arch.unet_channels),
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        layers_per_block=arch.layers_per_block,
        cross_attention_dim=arch.text_hidden + (arch.text_hidden_2 if xl else 0),  # SDXL joins both encoders' states
        attention_head_dim=arch.attention_head_dim,
        norm_num_groups=arch.norm_num_groups,
    )


def _vae(arch: SDArch) -> AutoencoderKL:
    n = len(arch.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(arch.vae_channels),
        latent_channels=arch.latent_channels,
        layers_per_block=1,
        norm_num_groups=arch.norm_num_groups,
        sample_size=arch.sample_size,
        scaling_factor=arch.scaling_factor,
    )


def _text_encoder(arch: SDArch, tokenizer: CLIPTokenizer, projection: bool = False) -> CLIPTextModel:
    hidden = arch.text_hidden_2 if projection else arch.text_hidden
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=arch.text_layers,
        num_attention_heads=arch.text_heads,
        max_position_embeddings=arch.max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=hidden,
        hidden_act=arch.text_act,
    )
    return CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)


def _scheduler(arch: SDArch) -> DDPMScheduler:
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule=arch.beta_schedule,
        prediction_type=arch.prediction_type,
        clip_sample=False,
        steps_offset=1,
        timestep_spacing="leading",
    )


def build_sd_pipeline(arch: SDArch, words: Iterable[str], tokenizer_dir: Path, seed: int = 0) -> StableDiffusionPipeline:
    """A randomly initialised ``StableDiffusionPipeline`` with a tokenizer trained on ``words``.

    ``tokenizer_dir`` is a scratch folder for the tokenizer files (the pipeline copies them when saved).
    """
    torch.manual_seed(seed)
    tokenizer = CLIPTokenizer.from_pretrained(build_clip_tokenizer(words, tokenizer_dir, arch.max_length))
    return StableDiffusionPipeline(
        vae=_vae(arch),
        text_encoder=_text_encoder(arch, tokenizer),
        tokenizer=tokenizer,
        unet=_unet(arch),
        scheduler=_scheduler(arch),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_sdxl_pipeline(arch: SDArch, words: Iterable[str], tokenizer_dir: Path, seed: int = 0) -> StableDiffusionXLPipeline:
    """A randomly initialised ``StableDiffusionXLPipeline``: two CLIP encoders (the second with a
    projection, giving the pooled embedding) of ``arch.text_hidden`` and ``arch.text_hidden_2``
    features (different widths, as in SDXL, so single-file loaders can tell them apart), sharing a
    tokenizer trained on ``words``."""
    torch.manual_seed(seed)
    tokenizer = CLIPTokenizer.from_pretrained(build_clip_tokenizer(words, tokenizer_dir, arch.max_length))
    tokenizer_2 = CLIPTokenizer.from_pretrained(build_clip_tokenizer(words, tokenizer_dir, arch.max_length))
    return StableDiffusionXLPipeline(
        vae=_vae(arch),
        text_encoder=_text_encoder(arch, tokenizer),
        text_encoder_2=_text_encoder(arch, tokenizer_2, projection=True),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=_unet(arch, xl=True),
        scheduler=_scheduler(arch),
        add_watermarker=False,
    )


def load_vae(folder: Path) -> AutoencoderKL:
    """A VAE folder (``save_pretrained`` layout) on its own, for the toy codec's refinement."""
    return AutoencoderKL.from_pretrained(folder)


BUILDERS = {"sd": build_sd_pipeline, "sdxl": build_sdxl_pipeline}

TINY_WORDS = (
    "a photo of the on in with and dog cat star heart red green blue yellow beach snow forest "
    "night studio sks zwx toy style"
).split()


def save_tiny_pipeline(out_dir: Path, arch: SDArch | None = None, seed: int = 0, family: str = "sd") -> Path:
    """Build the tiny random test pipeline of ``family`` and save it as a diffusers folder (safetensors)."""
    out_dir = Path(out_dir)
    pipe = BUILDERS[family](arch or SDArch(), TINY_WORDS, out_dir.parent / f".{out_dir.name}-tokenizer", seed)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    return out_dir
