"""kohya-ss / A1111 / Forge / ComfyUI LoRA: one ``.safetensors`` with kohya key names.

Per adapted layer (SD1/SD2/SDXL: kohya trains on the diffusers UNet, so names are diffusers module
paths with ``.`` -> ``_``; FLUX.1: BFL's layer names, some fused — ``families/flux_layout.py``; SD3:
the original MMDiT names, q/k/v fused — ``families/sd3_layout.py``, read back by :func:`kohya_to_diffusers`)::

    lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight  [r, in]
    lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight    [out, r]
    lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.alpha             scalar
    lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight ...

``lora_down``/``lora_up`` are peft's ``lora_A``/``lora_B`` unchanged (same shapes, conv layers too);
the weight delta is ``lora_up @ lora_down * alpha / rank`` — the same formula as peft, so ``alpha``
is the LoraConfig's ``lora_alpha`` (see ``dreamlock.exporting.common`` for where it is read from).
``--lora-scale`` is baked into ``lora_up``. Alpha is stored as a float32 0-d tensor whatever ``--dtype``.

Pivotal runs bundle their embeddings the way A1111 reads them from a LoRA file:
``bundle_emb.<token>.string_to_param.*`` = [n_vectors, dim]. diffusers' ``load_lora_weights``
refuses such a file (it wants every key to be a LoRA key); use :func:`load_kohya_lora` to load one
into a diffusers pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

from dreamlock.errors import UserError, WorkError
from dreamlock.exporting.common import (
    ExportJob,
    LoraModule,
    RunLora,
    base_name,
    cast_state,
    most_common,
    read_run_embeddings,
    read_run_lora,
)

BUNDLE_PREFIX = "bundle_emb."
BUNDLE_SUFFIX = ".string_to_param.*"


def kohya_prefixes(family_name: str) -> dict[str, str]:
    """Component -> kohya key prefix: ``unet`` -> ``lora_unet``; ``text_encoder`` -> ``lora_te``
    (SD) or ``lora_te1`` and ``text_encoder_2`` -> ``lora_te2`` (SDXL)."""
    from dreamlock.families import get_family

    family = get_family(family_name)
    return {family.denoiser_name: family.kohya_denoiser_prefix} | {s.name: s.kohya_prefix for s in family.text_encoder_slots}


def kohya_path(component: str, path: str) -> str:
    """A layer's kohya name without the prefix: its path with ``.`` -> ``_``. CLIP text encoder paths
    always get the ``text_model.`` level the kohya names have, whether the run saved them with it
    (transformers < 5.6) or without it (flattened ``CLIPTextModel``); T5's paths have no such level."""
    t5 = path.startswith(("encoder.block.", "encoder.final_layer_norm", "shared."))
    if component.startswith("text_encoder") and not t5 and not path.startswith("text_model."):
        path = "text_model." + path
    return path.replace(".", "_")


def kohya_name(module: LoraModule, prefixes: dict[str, str]) -> str:
    """``unet`` + ``down_blocks.1....attn1.to_q`` -> ``lora_unet_down_blocks_1_..._attn1_to_q``."""
    return prefixes[module.component] + "_" + kohya_path(module.component, module.path)


def _unet_base_config(job: ExportJob) -> dict:
    path = Path(job.info.base) / "unet" / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _scheduler_config(job: ExportJob) -> dict:
    path = Path(job.info.base) / "scheduler" / "scheduler_config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _cross_attention_dim(job: ExportJob, lora: RunLora) -> int | None:
    from dreamlock.families import get_family

    for m in lora.component(get_family(job.info.family).denoiser_name):
        if m.path.endswith(("attn2.to_k", "attn2.to_v")):
            return int(m.down.shape[1])
    dim = _unet_base_config(job).get("cross_attention_dim")
    return dim if isinstance(dim, int) else None


def kohya_metadata(job: ExportJob, lora: RunLora, stem: str) -> dict[str, str]:
    """kohya's ``ss_*`` training metadata (strings), as far as a dreamlock run knows it."""
    info = job.info
    meta = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(most_common([m.rank for m in lora.modules])),
        "ss_network_alpha": str(float(most_common([m.alpha for m in lora.modules]))),
        "ss_output_name": stem,
        "ss_sd_model_name": base_name(info),
        "ss_resolution": f"({info.resolution}, {info.resolution})",
        "ss_steps": str(info.step),
        "ss_training_comment": f"dreamlock {info.method} run {job.run_name}"
        + (f"; trigger: {info.trigger}" if info.trigger else "")
        + (f"; class: {info.class_word}" if info.class_word else ""),
        "dreamlock_method": info.method,
        "dreamlock_alpha_source": lora.alpha_source,
        "dreamlock_lora_scale": str(job.lora_scale),
    }
    convs = [m for m in lora.modules if m.down.ndim == 4 and m.down.shape[-1] > 1]
    if convs:
        meta["ss_network_args"] = json.dumps(
            {"conv_dim": str(most_common([m.rank for m in convs])), "conv_alpha": str(most_common([m.alpha for m in convs]))}
        )
    if info.tokens:
        meta["dreamlock_tokens"] = json.dumps(info.tokens)
    from dreamlock.families import get_family

    cross = _cross_attention_dim(job, lora)
    version = get_family(info.family).kohya_base_model_version
    if version is not None:
        meta["ss_base_model_version"] = version
    elif cross is not None:
        v2 = cross == 1024  # SD2.x: OpenCLIP ViT-H, 1024-d; SD1.x: CLIP ViT-L, 768-d
        meta["ss_base_model_version"] = "sd_v2" if v2 else "sd_v1"
        meta["ss_v2"] = str(v2)
    prediction = _scheduler_config(job).get("prediction_type")
    if prediction:
        meta["ss_v_parameterization"] = str(prediction == "v_prediction")
    return meta


def _fuse(parts: dict[int, LoraModule], ratios: tuple[int, ...]) -> tuple:
    """LoRAs of the parts of a fused layer (BFL's ``qkv``, ``linear1``) as one LoRA of rank
    ``len(ratios) * r``: downs stacked, ups block-diagonal (zeros for parts without a LoRA), alpha
    times the number of parts so ``alpha / rank`` stays each part's scale. Its delta is exactly the
    parts' deltas stacked."""
    import torch

    first = next(iter(parts.values()))
    if any(m.rank != first.rank or m.alpha != first.alpha for m in parts.values()):
        raise WorkError(f"the parts of one fused kohya layer ({', '.join(m.path for m in parts.values())}) have "
                        "different ranks or alphas; use --format diffusers-lora")
    unit = first.up.shape[0] // ratios[next(iter(parts))]
    r, n = first.rank, len(ratios)
    down = torch.zeros(n * r, first.down.shape[1])
    up = torch.zeros(sum(ratios) * unit, n * r)
    row = 0
    for i, ratio in enumerate(ratios):
        if i in parts:
            down[i * r:(i + 1) * r] = parts[i].down.float()
            up[row:row + ratio * unit, i * r:(i + 1) * r] = parts[i].up.float()
        row += ratio * unit
    return down, up, first.alpha * n


def _kohya_layers(lora: RunLora, family_name: str) -> dict[str, tuple]:
    """kohya name -> (down, up, alpha), fusing the layers the family's kohya layout fuses."""
    from dreamlock.families import get_family

    family = get_family(family_name)
    prefixes = kohya_prefixes(family_name)
    layers: dict[str, tuple] = {}
    fused: dict[str, tuple[dict[int, LoraModule], tuple[int, ...]]] = {}
    for m in lora.modules:
        if m.component != family.denoiser_name or family.kohya_denoiser_name is None:
            name = kohya_name(m, prefixes)
        else:
            mapped = family.kohya_denoiser_name(m.path)
            if mapped is None:
                raise UserError(f"LoRA layer {m.path} has no kohya name in the {family_name} layout; "
                                "use --format diffusers-lora, or train with the default lora_target_modules")
            short, part, ratios = mapped
            name = f"{prefixes[m.component]}_{short}"
            if len(ratios) > 1:
                fused.setdefault(name, ({}, ratios))[0][part] = m
                continue
        if name in layers:
            raise WorkError(f"two LoRA layers map to the same kohya name {name}; cannot write a kohya file")
        layers[name] = (m.down.float(), m.up.float(), m.alpha)
    for name, (parts, ratios) in fused.items():
        layers[name] = _fuse(parts, ratios)
    return layers


def kohya_state_dict(lora: RunLora, scale: float = 1.0, family: str = "sd") -> dict:
    """The kohya-named tensors (float32 here; cast afterwards)."""
    import torch

    if lora.extra_keys:
        what = "DoRA magnitudes" if lora.use_dora else f"non-LoRA tensors such as {lora.extra_keys[0]}"
        raise UserError(
            f"this LoRA has {what}, which the kohya export does not write yet; "
            "use --format diffusers-lora, or --format diffusers / single-file to fuse it"
        )
    state: dict[str, torch.Tensor] = {}
    for name, (down, up, alpha) in _kohya_layers(lora, family).items():
        state[f"{name}.lora_down.weight"] = down
        state[f"{name}.lora_up.weight"] = up * scale
        state[f"{name}.alpha"] = torch.tensor(float(alpha), dtype=torch.float32)
    return state


def export_kohya_lora(job: ExportJob) -> Path:
    from safetensors.torch import save_file

    lora = read_run_lora(job.run_dir, job.info)
    state = kohya_state_dict(lora, job.lora_scale, job.info.family)
    alphas = {k: v for k, v in state.items() if k.endswith(".alpha")}
    state = cast_state({k: v for k, v in state.items() if not k.endswith(".alpha")}, job.dtype)
    state.update(alphas)  # alpha stays float32: it is read with .item(), and fp16 would round odd values
    if job.info.has_embeddings:
        for token, value in read_run_embeddings(job.run_dir, job.info).items():
            if "." in token:
                raise UserError(f"token {token!r} contains '.', which A1111's bundled-embedding keys cannot hold; "
                                "export it with --format a1111-embedding and the LoRA with --format diffusers-lora")
            parts = value if isinstance(value, dict) else {BUNDLE_SUFFIX[1:]: value}  # SDXL: .clip_l / .clip_g
            for suffix, tensor in parts.items():
                state[f"{BUNDLE_PREFIX}{token}.{suffix}"] = tensor.to(job.dtype).contiguous()
    if job.final_out.suffix == ".safetensors":
        path, stem = job.out, job.final_out.stem
    else:
        job.out.mkdir(parents=True, exist_ok=True)
        stem = job.run_name
        path = job.out / f"{stem}.safetensors"
    save_file(state, str(path), metadata=kohya_metadata(job, lora, stem))
    return path


def split_kohya_file(path: str | Path) -> tuple[dict, dict]:
    """A kohya file -> (LoRA tensors, bundled embeddings: {token: [n, dim]}, or for SDXL
    {token: {"clip_l": ..., "clip_g": ...}})."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    embeds: dict = {}
    for k, v in state.items():
        if k.startswith(BUNDLE_PREFIX) and k.endswith(BUNDLE_SUFFIX):
            embeds[k[len(BUNDLE_PREFIX): -len(BUNDLE_SUFFIX)]] = v
        elif k.startswith(BUNDLE_PREFIX) and k.endswith((".clip_l", ".clip_g")):
            token, _, part = k[len(BUNDLE_PREFIX):].rpartition(".")
            embeds.setdefault(token, {})[part] = v
    lora = {k: v for k, v in state.items() if not k.startswith(BUNDLE_PREFIX)}
    return lora, embeds


def _kohya_targets(pipe, family) -> dict[str, list[tuple[str, str, int, tuple[int, ...]]]]:
    """kohya layer name -> the model's linear layers it covers: (component, path, part, ratios)."""
    import torch

    targets: dict[str, list] = {}
    for component, prefix in kohya_prefixes(family.name).items():
        model = getattr(pipe, component, None)
        for path, layer in (model.named_modules() if model is not None else ()):
            if not isinstance(layer, torch.nn.Linear):
                continue
            if component == family.denoiser_name and family.kohya_denoiser_name is not None:
                mapped = family.kohya_denoiser_name(path)
            else:
                mapped = (kohya_path(component, path), 0, (1,))
            if mapped is not None:
                targets.setdefault(f"{prefix}_{mapped[0]}", []).append((component, path, mapped[1], mapped[2]))
    return targets


def kohya_to_diffusers(pipe, family, state: dict) -> dict:
    """kohya keys -> diffusers' LoRA keys (``<component>.<path>.lora_A/B.weight``) for a family whose
    kohya layout diffusers does not read (SD3). A fused layer's ``lora_up`` rows are split among its
    parts, which share its ``lora_down``; ``alpha / rank`` is folded into the ups (diffusers' LoRA
    files carry no alpha). Keys of no layer of this model are kept, so the caller's check that
    nothing matched still speaks."""
    targets = _kohya_targets(pipe, family)
    layers: dict[str, dict] = {}
    for key, value in state.items():
        layers.setdefault(key.split(".")[0], {})[key] = value
    out = {}
    for name, keys in layers.items():
        if name not in targets or f"{name}.lora_down.weight" not in keys:
            out.update(keys)
            continue
        down, up = state[f"{name}.lora_down.weight"], state[f"{name}.lora_up.weight"]
        alpha = state.get(f"{name}.alpha")
        scale = (float(alpha) if alpha is not None else down.shape[0]) / down.shape[0]
        for component, path, part, ratios in targets[name]:
            unit = up.shape[0] // sum(ratios)
            start = sum(ratios[:part]) * unit
            out[f"{component}.{path}.lora_A.weight"] = down
            out[f"{component}.{path}.lora_B.weight"] = up[start:start + ratios[part] * unit] * scale
    return out


def is_kohya(state: dict) -> bool:
    return any(k.startswith("lora_") and k.endswith((".lora_down.weight", ".alpha")) for k in state)


def diffusers_lora_state(pipe, family, state: dict) -> dict:
    """A LoRA state dict diffusers' ``load_lora_weights`` reads for this family."""
    return state if family.diffusers_reads_kohya or not is_kohya(state) else kohya_to_diffusers(pipe, family, state)


def load_kohya_lora(pipe, path: str | Path, adapter_name: str | None = None) -> list[str]:
    """Load a kohya LoRA file, bundled embeddings included, into a diffusers pipeline.

    diffusers converts the kohya keys itself (``load_lora_weights``); the ``bundle_emb.*`` tensors,
    which it does not accept, go through ``load_textual_inversion``. Returns the tokens added."""
    from dreamlock.families import family_of_pipeline

    lora, embeds = split_kohya_file(path)
    family = family_of_pipeline(pipe)
    for token, value in embeds.items():
        family.add_embeddings(pipe, value if isinstance(value, dict) else {token: value}, [token])
    if lora:
        pipe.load_lora_weights(diffusers_lora_state(pipe, family, lora), adapter_name=adapter_name)
    return list(embeds)
