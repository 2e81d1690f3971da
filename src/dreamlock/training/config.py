"""The training config. Keys reuse the names of diffusers' DreamBooth example scripts wherever one
exists (``resolution``, ``train_batch_size``, ``learning_rate``, ``max_train_steps``...), so users can
carry their settings over; new concepts get plain new names."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dreamlock.config import CONFIG_VERSION, StrictModel

Precision = Literal["auto", "no", "fp16", "bf16"]

#: Memory keys per card size, for LoRA-style runs (the frozen base in bf16, or 4-bit NF4 below 24 GB).
#: Sourced anchor (diffusers' "(LoRA) Fine-Tuning FLUX.1-dev on Consumer Hardware", 2025-06-19,
#: RTX 4090, 512x768): NF4 base + 8-bit Adam + gradient checkpointing + cached latents
#: peaked at ~9 GB; the same LoRA on a bf16 base at ~26 GB. Not measured by dreamlock yet.
MEMORY_PRESETS: dict[str, dict] = {
    "12gb": {"quantize_base": "nf4", "use_8bit_adam": True, "gradient_checkpointing": True, "train_batch_size": 1,
             "offload_frozen": True},
    "16gb": {"quantize_base": "nf4", "use_8bit_adam": True, "gradient_checkpointing": True, "offload_frozen": True},
    "24gb": {"base_dtype": "bf16", "use_8bit_adam": True, "gradient_checkpointing": True},
}


class TrainConfig(StrictModel):
    """Everything `dreamlock train` needs. Validated before anything heavy is loaded."""

    config_version: int = CONFIG_VERSION
    # what and where
    base: str = Field(description="base model: diffusers folder, .safetensors file, hub id, or toy (the built-in toy base)")
    base_config: str | None = Field(None, description="diffusers folder giving the config of a single-file base")
    allow_pickle: bool = False
    data: Path = Field(description="folder of instance images (+ optional .txt captions); method ip2p: edited images "
                                   "with instruction captions, and the images before the edit in input/")
    output: Path = Field(description="run folder to write")
    family: str | None = None  # default: detected from the base model (model_index.json)
    method: str = "lora"  # a name in methods.METHODS: full | lora | ti | pivotal | ip2p
    trigger: str | None = "sks"
    class_word: str | None = None
    instance_prompt: str | None = None  # default: "a photo of {trigger} {class_word}" unless captions exist
    class_prompt: str | None = None  # default: "a photo of a {class_word}" ("an" before a vowel)
    use_captions: bool = True
    # prior preservation
    with_prior_preservation: bool = False
    prior_mode: Literal["class_images", "prior_prediction"] = "class_images"
    prior_loss_weight: float = Field(1.0, ge=0)
    num_class_images: int = Field(100, ge=1)
    class_data_dir: Path | None = None
    class_cache_dir: Path | None = None  # default: ~/.cache/dreamlock/class_images
    class_generation_steps: int = Field(25, ge=1)
    class_generation_guidance: float | None = None  # default: the base model's (dreamlock.json), else its family's
    sample_batch_size: int = Field(4, ge=1)
    # optimisation
    resolution: int | None = Field(None, ge=8)  # default: the base model's native size
    aspect_buckets: bool = True  # non-square images train at their aspect ratio (resolution² area)
    train_batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_train_steps: int = Field(400, ge=1)
    max_train_minutes: float | None = Field(None, gt=0)  # stop (and save) after this wall time
    learning_rate: float = Field(1e-4, gt=0)
    text_encoder_lr: float | None = None  # default: learning_rate
    embedding_lr: float = Field(5e-3, gt=0)  # ti / pivotal token embeddings
    # ti / pivotal: after each step, scale a learned token vector back to at most this multiple of its
    # initial norm (the class word's); None: no limit
    embedding_norm_cap: float | None = Field(None, gt=0)
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = Field(0, ge=0)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    use_8bit_adam: bool = False
    mixed_precision: Precision = "auto"
    # the frozen base's weights: auto = bf16 (fp16 without bf16) on CUDA unless the method trains the whole
    # denoiser, fp32 on the CPU; trained parameters stay fp32 either way
    base_dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    #: the frozen denoiser quantized for LoRA: "nf4" (4-bit, bitsandbytes, CUDA: QLoRA) or "fp8" (8-bit float
    #: weights, optimum-quanto, any device)
    quantize_base: Literal["nf4", "fp8"] | None = None
    #: the modules that do not train (VAE, frozen text encoders) wait on the CPU when they cannot be
    #: released (sample images, select_best need them) and come to the GPU only to sample
    offload_frozen: bool = False
    memory_preset: Literal["12gb", "16gb", "24gb"] | None = None  # fills the memory keys you left unset (MEMORY_PRESETS)
    gradient_checkpointing: bool = False
    # torch.compile the denoiser: ~10% faster steady steps on the toy model, but minutes of compiling
    # first (benchmarks/RESULTS.md); for long runs
    compile_denoiser: bool = False
    snr_gamma: float | None = None  # min-SNR weighting (5.0 is the paper's value); DDPM families
    # flow-matching families (SD3, FLUX.1), as in diffusers' scripts: timestep density / loss weighting
    weighting_scheme: Literal["none", "logit_normal", "mode", "sigma_sqrt", "cosmap"] | None = None  # default: the family's
    logit_mean: float = 0.0
    logit_std: float = Field(1.0, gt=0)
    mode_scale: float = 1.29
    guidance_scale: float | None = Field(None, gt=0)  # FLUX.1-dev: the distilled guidance input while training (3.5)
    drop_t5: bool = False  # SD3: train and sample without T5 (less memory; zeros take its place in prompts)
    zero_terminal_snr: bool = False  # rescale the noise schedule to zero terminal SNR (v-prediction models)
    noise_offset: float = Field(0.0, ge=0)
    random_flip: bool = False
    caption_dropout: float = Field(0.0, ge=0, le=1)
    # masked training (data/masks.py): instance images' loss weighted by masks in DATA/masks/ (white = subject);
    # outside the mask the loss counts masked_loss_background times (0: the background is not learned)
    masked_loss: bool = False
    masked_loss_background: float = Field(0.1, ge=0, le=1)
    # image-conditioned models (method ip2p): share of examples trained without the image to edit
    # (learns the image-unconditional branch that image guidance needs; the InstructPix2Pix paper: 0.05)
    condition_dropout: float = Field(0.0, ge=0, le=1)
    use_ema: bool = False
    ema_decay: float = 0.999
    seed: int = 0
    # method specifics
    train_text_encoder: bool = False
    rank: int = Field(4, ge=1)
    lora_alpha: float | None = None  # default: rank
    lora_dropout: float = 0.0
    use_dora: bool = False
    lora_target_modules: list[str] | None = None  # default: the family's (SD/SDXL: to_q, to_k, to_v, to_out.0)
    text_encoder_target_modules: list[str] | None = None  # default: the family's (q_proj, k_proj, v_proj, out_proj)
    num_vectors: int = Field(1, ge=1)  # ti / pivotal: vectors per placeholder token
    # checkpoints, samples, logs
    checkpointing_steps: int | None = Field(None, ge=1)
    # choosing the checkpoint (training/selection.py): score every checkpoint, keep the best in final/
    select_best: bool = False
    early_stop_patience: int | None = Field(None, ge=1)  # stop when the chosen checkpoint is N evaluations old
    selection_scorer: Literal["toy", "clip-dino", "loss"] | None = None  # default: follows the base model
    scorer_model: str | None = None  # clip-dino weights (DIR with clip/ and dino/, or CLIP_DIR,DINO_DIR)
    selection_seeds: int = Field(4, ge=1)
    selection_prompt_margin: float = Field(0.1, ge=0)
    selection_drift_margin: float = Field(0.5, ge=0, le=1)  # share of the way from base drift to the subject
    checkpoints_total_limit: int | None = Field(None, ge=1)
    resume: str | None = None  # "latest" or a checkpoint folder
    validation_prompt: list[str] = []
    validation_steps: int | None = Field(None, ge=1)
    num_validation_images: int = Field(4, ge=1)
    validation_inference_steps: int = Field(20, ge=1)
    validation_guidance: float | None = None  # default: the base model's (dreamlock.json), else its family's
    logging_steps: int = Field(10, ge=1)
    num_threads: int | None = None  # CPU threads; default: torch's choice

    @field_validator("base", mode="before")
    @classmethod
    def _toy_base(cls, value):
        """``base = "toy"``: the toy base shipped with dreamlock."""
        from dreamlock.toyworld.paths import resolve_model

        return resolve_model(value) if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _apply_memory_preset(cls, values):
        """A ``memory_preset`` sets the memory keys the user did not set (explicit keys win)."""
        if isinstance(values, dict) and values.get("memory_preset") in MEMORY_PRESETS:
            return MEMORY_PRESETS[values["memory_preset"]] | values
        return values

    @model_validator(mode="after")
    def _check_combinations(self) -> "TrainConfig":
        """Rules across keys; each message names the keys and the fix (shown as one line)."""
        if self.with_prior_preservation and not self.class_word and not self.class_prompt:
            raise ValueError("with_prior_preservation needs class_word (or class_prompt); set --class-word, e.g. dog")
        if (self.select_best or self.early_stop_patience) and not self.checkpointing_steps:
            raise ValueError("select_best / early_stop_patience score each checkpoint; set checkpointing_steps, e.g. 100")
        if self.select_best and self.selection_scorer != "loss" and not (self.trigger and self.class_word):
            raise ValueError("select_best generates the subject and its class; set --trigger and --class-word "
                             "(or selection_scorer='loss')")
        return self

    @property
    def effective_class_prompt(self) -> str | None:
        if self.class_prompt:
            return self.class_prompt
        if not self.class_word:
            return None
        article = "an" if self.class_word[:1].lower() in "aeiou" else "a"
        return f"a photo of {article} {self.class_word}"  # as base models saw it in their captions
