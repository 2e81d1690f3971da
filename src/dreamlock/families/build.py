"""Build randomly initialised SD / SDXL / SD3 / FLUX.1-architecture pipelines from a small spec, offline.

Used by the tests (tiny pipelines that prove plumbing) and by the toy world (the CPU-sized base
model that dreamlock pretrains itself). The results are real ``StableDiffusionPipeline`` /
``StableDiffusionXLPipeline`` / ``StableDiffusion3Pipeline`` / ``FluxPipeline`` objects: the same
loading, training and export code paths run on them as on the real models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal

import torch
from diffusers import (AutoencoderKL, DDPMScheduler, FlowMatchEulerDiscreteScheduler, FluxPipeline,
                       FluxTransformer2DModel, SD3Transformer2DModel, StableDiffusion3Pipeline, StableDiffusionPipeline,
                       StableDiffusionXLPipeline, UNet2DConditionModel)
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer, T5Config,
                          T5EncoderModel, T5TokenizerFast)

from dreamlock.config import StrictModel
from dreamlock.families.tokenizer import build_clip_tokenizer, build_t5_tokenizer


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


def build_vae(arch: SDArch) -> AutoencoderKL:
    """A random-init SD-style VAE of ``arch``'s sizes (as in the pipelines built here)."""
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
        vae=build_vae(arch),
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
        vae=build_vae(arch),
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


class FlowArch(StrictModel):
    """Sizes of a small SD3 / FLUX.1-architecture model (16-channel latents, as in both)."""

    sample_size: int = 32  # pixels
    vae_channels: list[int] = [8, 16]
    latent_channels: int = 16
    layers: int = 1  # SD3 joint blocks / FLUX double-stream blocks
    single_layers: int = 1  # FLUX single-stream blocks
    heads: int = 2
    head_dim: int = 8
    text_hidden: int = 32  # CLIP ViT-L-like
    text_hidden_2: int = 48  # SD3's CLIP bigG-like
    t5_hidden: int = 96  # wider than both CLIPs joined, as T5-XXL (4096) is wider than SD3's CLIPs (2048)
    text_layers: int = 2
    text_heads: int = 2
    max_length: int = 16
    guidance_embeds: bool = True  # FLUX.1-dev (False: schnell)
    scaling_factor: float = 1.5305  # SD3's VAE (FLUX.1: 0.3611)
    shift_factor: float = 0.0609  # SD3's VAE (FLUX.1: 0.1159)


def _flow_vae(arch: FlowArch) -> AutoencoderKL:
    n = len(arch.vae_channels)
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(arch.vae_channels), latent_channels=arch.latent_channels,
        norm_num_groups=4, sample_size=arch.sample_size, scaling_factor=arch.scaling_factor,
        shift_factor=arch.shift_factor, use_quant_conv=False, use_post_quant_conv=False,
    )


def _clip(arch: FlowArch, tokenizer: CLIPTokenizer, hidden: int, projection: bool) -> CLIPTextModel:
    return _text_encoder(SDArch(text_hidden=hidden, text_hidden_2=hidden, text_layers=arch.text_layers,
                                text_heads=arch.text_heads, max_length=arch.max_length, text_act="gelu"),
                         tokenizer, projection)


def _t5(arch: FlowArch, tokenizer) -> T5EncoderModel:
    config = T5Config(vocab_size=len(tokenizer), d_model=arch.t5_hidden, d_kv=arch.t5_hidden // 4,
                      d_ff=arch.t5_hidden * 2, num_layers=1, num_heads=4, relative_attention_num_buckets=8,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
    return T5EncoderModel(config)


def _flow_tokenizers(arch: FlowArch, words: Iterable[str], tokenizer_dir: Path):
    clip = CLIPTokenizer.from_pretrained(build_clip_tokenizer(words, tokenizer_dir / "clip", arch.max_length))
    t5 = T5TokenizerFast.from_pretrained(build_t5_tokenizer(words, tokenizer_dir / "t5", 512))
    return clip, t5


def build_sd3_pipeline(arch: FlowArch, words: Iterable[str], tokenizer_dir: Path, seed: int = 0) -> StableDiffusion3Pipeline:
    """A randomly initialised ``StableDiffusion3Pipeline``: MMDiT, two CLIPs with projections, T5."""
    torch.manual_seed(seed)
    clip, t5_tokenizer = _flow_tokenizers(arch, words, Path(tokenizer_dir))
    inner = arch.heads * arch.head_dim
    transformer = SD3Transformer2DModel(
        sample_size=arch.sample_size // 2 ** (len(arch.vae_channels) - 1), patch_size=2,
        in_channels=arch.latent_channels, out_channels=arch.latent_channels, num_layers=arch.layers,
        attention_head_dim=arch.head_dim, num_attention_heads=arch.heads, joint_attention_dim=arch.t5_hidden,
        caption_projection_dim=inner, pooled_projection_dim=arch.text_hidden + arch.text_hidden_2,
        pos_embed_max_size=64,
    )
    clip_l = _clip(arch, clip, arch.text_hidden, True)
    with torch.no_grad():  # SD3 pools CLIP-L unprojected: its projection is the identity (diffusers'
        clip_l.text_projection.weight.copy_(torch.eye(arch.text_hidden))  # single-file loader sets it so)
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=_flow_vae(arch),
        text_encoder=clip_l, tokenizer=clip,
        text_encoder_2=_clip(arch, clip, arch.text_hidden_2, True), tokenizer_2=clip,
        text_encoder_3=_t5(arch, t5_tokenizer), tokenizer_3=t5_tokenizer,
    )


def build_flux_pipeline(arch: FlowArch, words: Iterable[str], tokenizer_dir: Path, seed: int = 0) -> FluxPipeline:
    """A randomly initialised ``FluxPipeline``: double- and single-stream blocks, CLIP (pooled), T5."""
    torch.manual_seed(seed)
    clip, t5_tokenizer = _flow_tokenizers(arch, words, Path(tokenizer_dir))
    rope = (arch.head_dim // 4, arch.head_dim // 4, arch.head_dim // 2)  # sums to the head size, as (16, 56, 56)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=arch.latent_channels * 4, num_layers=arch.layers,
        num_single_layers=arch.single_layers, attention_head_dim=arch.head_dim, num_attention_heads=arch.heads,
        joint_attention_dim=arch.t5_hidden, pooled_projection_dim=arch.text_hidden,
        guidance_embeds=arch.guidance_embeds, axes_dims_rope=rope,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)
    return FluxPipeline(
        transformer=transformer, scheduler=scheduler, vae=_flow_vae(arch),
        text_encoder=_clip(arch, clip, arch.text_hidden, False), tokenizer=clip,
        text_encoder_2=_t5(arch, t5_tokenizer), tokenizer_2=t5_tokenizer,
    )


def build_ip2p_pipeline(arch: SDArch, words: Iterable[str], tokenizer_dir: Path, seed: int = 0):
    """A random SD pipeline turned into InstructPix2Pix (8-channel UNet input; ``families/ip2p.py``)."""
    from dreamlock.families.ip2p import from_sd

    return from_sd(build_sd_pipeline(arch, words, tokenizer_dir, seed))


def build_upscale_pipeline(arch: SDArch, words: Iterable[str], tokenizer_dir: Path, seed: int = 0):
    """A random SD pipeline turned into an upscaler (``families/upscale.py``), with random weights for
    the new image channels and noise-level embedding too (a zero start would hide them from tests)."""
    from dreamlock.families.upscale import from_sd

    pipe = from_sd(build_sd_pipeline(arch, words, tokenizer_dir, seed))
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        pipe.unet.conv_in.weight[:, arch.latent_channels:].normal_(0, 0.1)
        pipe.unet.class_embedding.weight.normal_(0, 0.1)
    return pipe


def build_if_sr_pipeline(arch: FlowArch, words: Iterable[str], tokenizer_dir: Path, seed: int = 0):
    """A randomly initialised DeepFloyd IF stage II (``IFSuperResolutionPipeline``): a pixel-space
    UNet with IF-II's block kinds (simple cross-attention with added K/V, scale-shift ResNets, a
    noise-level class embedding, text added to the time embedding; attention only at the lowest
    resolution, as in IF-II), 6 channels in (noisy + enlarged
    low-resolution image) and 6 out (noise + variance), and T5. Upscale factor 4 (8 -> 32 px)."""
    from diffusers import IFSuperResolutionPipeline
    from diffusers.models.attention_processor import AttnAddedKVProcessor

    torch.manual_seed(seed)
    t5_tokenizer = T5TokenizerFast.from_pretrained(build_t5_tokenizer(words, Path(tokenizer_dir) / "t5", 512))
    width = arch.heads * arch.head_dim * 2
    unet = UNet2DConditionModel(
        sample_size=arch.sample_size, layers_per_block=1, block_out_channels=(width, width, 2 * width),
        down_block_types=("ResnetDownsampleBlock2D", "ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D", "ResnetUpsampleBlock2D"),
        in_channels=6, out_channels=6, cross_attention_dim=width, encoder_hid_dim=arch.t5_hidden,
        attention_head_dim=arch.head_dim, addition_embed_type="text", addition_embed_type_num_heads=2,
        cross_attention_norm="group_norm", resnet_time_scale_shift="scale_shift", act_fn="gelu",
        class_embed_type="timestep", norm_num_groups=4, time_embedding_act_fn="gelu",
    )
    unet.set_attn_processor(AttnAddedKVProcessor())
    schedule = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", beta_start=0.0001, beta_end=0.02)
    scheduler = DDPMScheduler(**schedule, thresholding=True, dynamic_thresholding_ratio=0.95, sample_max_value=1.0,
                              prediction_type="epsilon", variance_type="learned_range")
    return IFSuperResolutionPipeline(
        tokenizer=t5_tokenizer, text_encoder=_t5(arch, t5_tokenizer), unet=unet, scheduler=scheduler,
        image_noising_scheduler=DDPMScheduler(**schedule), safety_checker=None, feature_extractor=None,
        watermarker=None, requires_safety_checker=False,
    )


BUILDERS = {"sd": build_sd_pipeline, "sdxl": build_sdxl_pipeline, "sd3": build_sd3_pipeline, "flux": build_flux_pipeline,
            "ip2p": build_ip2p_pipeline, "sd-upscale": build_upscale_pipeline, "if-sr": build_if_sr_pipeline}
ARCHS = {"sd": SDArch, "sdxl": SDArch, "sd3": FlowArch, "flux": FlowArch, "ip2p": SDArch, "sd-upscale": SDArch,
         "if-sr": FlowArch}

TINY_WORDS = (
    "a photo of the on in with and dog cat star heart red green blue yellow beach snow forest "
    "night studio sks zwx toy style"
).split()


def save_tiny_pipeline(out_dir: Path, arch: SDArch | FlowArch | None = None, seed: int = 0, family: str = "sd") -> Path:
    """Build the tiny random test pipeline of ``family`` and save it as a diffusers folder (safetensors)."""
    out_dir = Path(out_dir)
    pipe = BUILDERS[family](arch or ARCHS[family](), TINY_WORDS, out_dir.parent / f".{out_dir.name}-tokenizer", seed)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    return out_dir
