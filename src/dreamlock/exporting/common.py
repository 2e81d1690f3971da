"""What the export formats share: the job, reading a run's LoRA and embeddings, fusing, casting.

LoRA strength (alpha) — where it comes from, in this order:

1. the LoRA file's own metadata: diffusers' ``save_lora_weights(..., unet_lora_adapter_metadata=...)``
   writes the peft ``LoraConfig`` as JSON under the safetensors header key ``lora_adapter_metadata``
   (``unet.lora_alpha``, ``unet.alpha_pattern``, ``unet.use_rslora``...). This is exact.
2. the run's ``config.toml``: ``lora_alpha`` (and ``rank``), top level or in one nested table;
   ``lora_alpha`` missing with ``rank`` present means alpha = rank (the diffusers scripts' default).
3. nothing: alpha = rank (scale 1.0), which is also what diffusers assumes when it loads a LoRA file
   without metadata, so the export matches what ``load_lora_weights`` does with the run's file.

Ranks always come from the tensors' shapes. rsLoRA (scale alpha/sqrt(r)) is folded into an effective
alpha = alpha*sqrt(r), so every consumer can use the classic scale alpha/r.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreamlock.errors import UserError, WorkError
from dreamlock.runs import EMBEDDINGS_FILE, LORA_FILE, PIPELINE_DIR, RunInfo, final_dir

if TYPE_CHECKING:
    import torch

LORA_METADATA_KEY = "lora_adapter_metadata"  # diffusers' header key (diffusers.loaders.lora_base)


def lora_components(info: RunInfo) -> tuple[str, ...]:
    """The components a run's LoRA file may hold: its family's denoiser and text encoders."""
    from dreamlock.families import get_family

    family = get_family(info.family)
    return (family.denoiser_name, *(s.name for s in family.tunable_slots()))
@dataclass
class ExportJob:
    """One export: the run, where to write (a scratch path the caller moves into place), how."""

    run_dir: Path
    info: RunInfo
    out: Path  # scratch path to write to; same suffix as the user's --out
    final_out: Path  # the user's --out (for names in metadata and messages)
    dtype: "torch.dtype"
    dtype_name: str
    lora_scale: float = 1.0

    @property
    def run_name(self) -> str:
        return self.run_dir.resolve().name


# --------------------------------------------------------------------------------------------
# LoRA


@dataclass
class LoraModule:
    """One adapted layer: ``up @ down`` scaled by ``alpha / rank`` is added to its weight."""

    component: str  # a component of the run's family: "unet", "text_encoder", "text_encoder_2"...
    path: str  # module path inside the component, as saved (peft key without .lora_A.weight)
    down: "torch.Tensor"  # lora_A.weight [r, in] (conv: [r, in, kh, kw])
    up: "torch.Tensor"  # lora_B.weight [out, r] (conv: [out, r, 1, 1])
    alpha: float  # effective alpha: scale = alpha / rank

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])


@dataclass
class RunLora:
    modules: list[LoraModule]
    state: dict[str, "torch.Tensor"]  # the file as saved: {"unet.<path>.lora_A.weight": ...}
    metadata: dict[str, dict[str, Any]]  # per component LoraConfig dict, {} when absent
    alpha_source: str
    extra_keys: list[str] = field(default_factory=list)  # DoRA magnitudes, LoRA biases...

    @property
    def use_dora(self) -> bool:
        return any("lora_magnitude_vector" in k for k in self.extra_keys)

    def component(self, name: str) -> list[LoraModule]:
        return [m for m in self.modules if m.component == name]


def _pattern_value(patterns: dict[str, Any], module: str) -> Any:
    """peft's rule for rank_pattern / alpha_pattern: first key whose regex matches the name's tail."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return None


def _find_key(data: dict[str, Any], key: str) -> Any:
    if key in data:
        return data[key]
    for value in data.values():
        if isinstance(value, dict) and key in value:
            return value[key]
    return None


def _config_alpha(run_dir: Path) -> tuple[float | None, str]:
    path = Path(run_dir) / "config.toml"
    if not path.is_file():
        return None, ""
    import tomllib

    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: unreadable ({e}); fix the file or re-run training") from None
    alpha, rank = _find_key(data, "lora_alpha"), _find_key(data, "rank")
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        return float(alpha), "config.toml lora_alpha"
    if isinstance(rank, int) and not isinstance(rank, bool):
        return float(rank), "config.toml rank (no lora_alpha: alpha = rank)"
    return None, ""


def base_name(info: RunInfo) -> str:
    """The base model as written into shared files: a hub id as is, a local path by its last part
    (no user's folder layout in files meant to be passed around)."""
    path = Path(info.base).expanduser()
    return path.name if path.exists() or info.base.startswith((".", "/", "~")) else info.base


def lora_file(run_dir: Path, info: RunInfo) -> Path:
    path = final_dir(run_dir) / LORA_FILE
    if not path.is_file():
        raise UserError(f"run {run_dir}: no {path.relative_to(run_dir)} (has training finished?); "
                        "export a finished run or its checkpoint's weights")
    return path


def read_run_lora(run_dir: Path, info: RunInfo) -> RunLora:
    """Read ``final/pytorch_lora_weights.safetensors`` into per-layer (down, up, alpha)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = lora_file(run_dir, info)
    components = lora_components(info)
    try:
        state = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            header = f.metadata() or {}
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for a broken file
        raise UserError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None

    metadata: dict[str, dict[str, Any]] = {}
    raw = header.get(LORA_METADATA_KEY)
    if raw:
        try:
            flat = json.loads(raw)
        except json.JSONDecodeError:
            flat = {}
        for key, value in flat.items():
            comp, _, name = key.partition(".")
            if comp in components and name:
                metadata.setdefault(comp, {})[name] = value
    cfg_alpha, cfg_source = _config_alpha(run_dir)

    downs: dict[tuple[str, str], Any] = {}
    ups: dict[tuple[str, str], Any] = {}
    extra: list[str] = []
    for key, tensor in state.items():
        comp, _, rest = key.partition(".")
        if comp not in components:
            raise WorkError(f"{path}: unexpected key {key!r} (expected {' or '.join(c + '.*' for c in components)}); "
                            "is this a diffusers LoRA file of this run's model family?")
        if rest.endswith(".lora_A.weight"):
            downs[(comp, rest[: -len(".lora_A.weight")])] = tensor
        elif rest.endswith(".lora_B.weight"):
            ups[(comp, rest[: -len(".lora_B.weight")])] = tensor
        else:
            extra.append(key)
    if not downs:
        raise WorkError(f"{path}: no LoRA weights (no *.lora_A.weight keys)")
    if set(downs) != set(ups):
        odd = sorted(set(downs) ^ set(ups))[0]
        raise WorkError(f"{path}: LoRA layer {odd[0]}.{odd[1]} has lora_A without lora_B or the reverse")

    sources: set[str] = set()
    modules = []
    for (comp, mod_path), down in sorted(downs.items()):
        rank = int(down.shape[0])
        meta = metadata.get(comp)
        if meta is not None:
            alpha = _pattern_value(meta.get("alpha_pattern") or {}, mod_path)
            alpha = float(meta.get("lora_alpha", rank) if alpha is None else alpha)
            if meta.get("use_rslora"):
                alpha = alpha * math.sqrt(rank)
            sources.add("file metadata")
        elif cfg_alpha is not None:
            alpha = cfg_alpha
            sources.add(cfg_source)
        else:
            alpha = float(rank)
            sources.add("none found: alpha = rank")
        modules.append(LoraModule(comp, mod_path, down, ups[(comp, mod_path)], alpha))
    return RunLora(modules, state, metadata, " + ".join(sorted(sources)), extra)


def most_common(values: list[Any]) -> Any:
    return Counter(values).most_common(1)[0][0]


def lora_config(modules: list[LoraModule], use_dora: bool = False):
    """A peft ``LoraConfig`` reproducing these layers exactly (per-layer rank and alpha as patterns)."""
    from peft import LoraConfig

    r = most_common([m.rank for m in modules])
    alpha = most_common([m.alpha for m in modules])
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        target_modules=sorted(m.path for m in modules),
        rank_pattern={re.escape(m.path): m.rank for m in modules if m.rank != r},
        alpha_pattern={re.escape(m.path): m.alpha for m in modules if m.alpha != alpha},
        use_dora=use_dora,
        init_lora_weights=True,
    )


def _resolve_paths(model: "torch.nn.Module", state: dict[str, Any]) -> dict[str, Any]:
    """Match text-encoder keys to the model: transformers >= 5.6 flattened ``CLIPTextModel`` (no
    ``text_model.`` level), older versions and most files in the wild have it."""
    wrapped = hasattr(model, "text_model")
    out = {}
    for key, value in state.items():
        if wrapped and not key.startswith("text_model."):
            key = "text_model." + key
        elif not wrapped and key.startswith("text_model."):
            key = key[len("text_model."):]
        out[key] = value
    return out


def fuse_lora_into(model: "torch.nn.Module", component: str, lora: RunLora, scale: float) -> int:
    """Add ``scale * alpha/r * up @ down`` into ``model``'s weights, through peft (so DoRA and conv
    layers merge the way peft defines them); the model is left without adapter layers."""
    import torch
    from peft import inject_adapter_in_model, set_peft_model_state_dict
    from peft.tuners.tuners_utils import BaseTunerLayer

    modules = lora.component(component)
    if not modules:
        return 0
    prefix = component + "."
    state = {k[len(prefix):]: v.float() for k, v in lora.state.items() if k.startswith(prefix)}
    state = {k: (v * scale if ".lora_B." in k else v) for k, v in state.items()}
    resolved = [LoraModule(m.component, next(iter(_resolve_paths(model, {m.path: 0}))), m.down, m.up, m.alpha) for m in modules]
    state = _resolve_paths(model, state)
    name = "dreamlock_export"
    with torch.no_grad():
        inject_adapter_in_model(lora_config(resolved, lora.use_dora), model, adapter_name=name)
        result = set_peft_model_state_dict(model, state, adapter_name=name)
        unexpected = [k for k in getattr(result, "unexpected_keys", []) if "lora" in k]
        missing = [k for k in getattr(result, "missing_keys", []) if "lora" in k and name in k]
        if unexpected or missing:
            odd = (unexpected or missing)[0]
            raise WorkError(f"LoRA weights do not match the {component} ({odd}); was the run trained on another base?")
        replaced = 0
        for _, parent in list(model.named_modules()):
            for child_name, child in list(parent.named_children()):
                if isinstance(child, BaseTunerLayer):
                    child.merge(safe_merge=True, adapter_names=[name])
                    setattr(parent, child_name, child.get_base_layer())
                    replaced += 1
    if hasattr(model, "peft_config"):
        model.peft_config.pop(name, None)
        if not model.peft_config:
            del model.peft_config
    if hasattr(model, "_hf_peft_config_loaded"):
        model._hf_peft_config_loaded = False
    return replaced


# --------------------------------------------------------------------------------------------
# Embeddings


def embeddings_file(run_dir: Path) -> Path:
    path = final_dir(run_dir) / EMBEDDINGS_FILE
    if not path.is_file():
        raise UserError(f"run {run_dir}: no {path.relative_to(run_dir)} (has training finished?)")
    return path


def read_run_embeddings(run_dir: Path, info: RunInfo) -> dict[str, Any]:
    """``final/learned_embeds.safetensors`` as {token: [n_vectors, dim]} (1-D tensors become [1, dim]);
    for a family with several text encoders {token: {"clip_l": [n, dim_l], "clip_g": [n, dim_g]}}."""
    from safetensors.torch import load_file

    from dreamlock.families import get_family

    path = embeddings_file(run_dir)
    try:
        state = load_file(str(path))
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None
    if not state:
        raise WorkError(f"{path}: holds no embeddings")
    state = {k: (t if t.ndim == 2 else t.reshape(1, -1)) for k, t in state.items()}
    slots = get_family(info.family).tunable_slots()
    if len(slots) == 1:
        return state
    keys = [s.embedding_key for s in slots]
    if set(state) != set(keys) or len(info.tokens) != 1:
        raise WorkError(f"{path}: a {info.family} embedding holds {', '.join(keys)} for one token; found {sorted(state)}")
    return {info.tokens[0]: {k: state[k] for k in keys}}


def safe_token_name(token: str, taken: set[str]) -> str:
    """A file stem for a token: ``<sks-dog>`` -> ``sks-dog``; unique within ``taken``."""
    stem = re.sub(r"[^A-Za-z0-9_\-]+", "_", token).strip("_") or "embedding"
    name, i = stem, 1
    while name.lower() in taken:
        i += 1
        name = f"{stem}_{i}"
    taken.add(name.lower())
    return name


# --------------------------------------------------------------------------------------------
# Pipelines


def run_pipeline(job: ExportJob):
    """The run's result as one plain pipeline at fp32: fine-tuned weights, or the base with the
    LoRA fused in (scaled by ``job.lora_scale``) and the learned tokens added."""
    import torch

    from dreamlock.pipelines import load_run_pipeline

    info, run_dir = job.info, job.run_dir
    if info.has_pipeline and not (final_dir(run_dir) / PIPELINE_DIR / "model_index.json").is_file():
        raise UserError(f"run {run_dir}: no final/{PIPELINE_DIR}/ pipeline (has training finished?)")
    lora = read_run_lora(run_dir, info) if info.has_lora else None
    if info.has_embeddings:
        embeddings_file(run_dir)
    pipe, _ = load_run_pipeline(run_dir, dtype=torch.float32, with_lora=False)  # the one reader of a run
    if lora is not None:
        for component in lora_components(info):
            fuse_lora_into(getattr(pipe, component), component, lora, job.lora_scale)
    return pipe


def cast_state(state: dict[str, "torch.Tensor"], dtype: "torch.dtype") -> dict[str, "torch.Tensor"]:
    """Floating tensors to ``dtype`` (contiguous, as safetensors wants); integer tensors unchanged."""
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
