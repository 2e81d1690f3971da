"""Textual-inversion embeddings: A1111 ``emb_params`` files and diffusers ``learned_embeds`` files.

``--out`` ending in ``.safetensors`` writes that one file (the run must have exactly one token);
any other ``--out`` is a folder with one file per token, because both A1111 (the trigger word is the
file name) and diffusers' ``load_textual_inversion`` (one token per file) want one token per file.
In a folder, a single-token diffusers export is named ``learned_embeds.safetensors`` so that
``pipe.load_textual_inversion(folder)`` finds it; otherwise files are named after their token
(``<sks-dog>`` -> ``sks-dog.safetensors``).

Both are loadable with diffusers: ``pipe.load_textual_inversion(path, token="<sks-dog>")``
(an A1111 file has no token name inside it, so pass ``token=``).
"""

from __future__ import annotations

from pathlib import Path

from dreamlock.errors import UserError
from dreamlock.exporting.common import ExportJob, base_name, cast_state, read_run_embeddings, safe_token_name
from dreamlock.runs import EMBEDDINGS_FILE

A1111_KEY = "emb_params"


def _targets(job: ExportJob, tokens: list[str], diffusers_single_name: bool) -> dict[str, Path]:
    if job.final_out.suffix == ".safetensors":
        if len(tokens) != 1:
            raise UserError(
                f"run {job.run_dir} learned {len(tokens)} tokens ({', '.join(tokens)}); one file holds one token, "
                f"so give a folder for --out (one file per token is written there)"
            )
        return {tokens[0]: job.out}
    job.out.mkdir(parents=True, exist_ok=True)
    if diffusers_single_name and len(tokens) == 1:
        return {tokens[0]: job.out / EMBEDDINGS_FILE}
    taken: set[str] = set()
    return {t: job.out / f"{safe_token_name(t, taken)}.safetensors" for t in tokens}


def _vectors(value) -> int:
    """Number of vectors of one token's embedding (a tensor, or one per text encoder)."""
    return int((next(iter(value.values())) if isinstance(value, dict) else value).shape[0])


def _metadata(job: ExportJob, token: str, vectors: int) -> dict[str, str]:
    return {
        "format": "pt",
        "dreamlock_token": token,
        "dreamlock_vectors": str(vectors),
        "dreamlock_run": job.run_name,
        "dreamlock_base": base_name(job.info),
    }


def write_a1111(path: Path, token: str, value, job: ExportJob) -> None:
    """``{"emb_params": [n, dim]}``; with several text encoders ``{"clip_l": ..., "clip_g": ...}``
    (SDXL embeddings as A1111 and ComfyUI read them)."""
    from safetensors.torch import save_file

    tensors = value if isinstance(value, dict) else {A1111_KEY: value}
    save_file(cast_state(tensors, job.dtype), str(path), metadata=_metadata(job, token, _vectors(value)))


def write_diffusers(path: Path, token: str, value, job: ExportJob) -> None:
    """``{token: [n, dim]}``; with several text encoders the per-encoder file, which diffusers loads
    with one ``load_textual_inversion`` per encoder."""
    from safetensors.torch import save_file

    tensors = value if isinstance(value, dict) else {token: value}
    save_file(cast_state(tensors, job.dtype), str(path), metadata=_metadata(job, token, _vectors(value)))


def write_diffusers_embeddings(job: ExportJob, folder: Path) -> list[Path]:
    """The run's embeddings into ``folder`` in diffusers format (used by the LoRA exports of pivotal runs)."""
    embeds = read_run_embeddings(job.run_dir, job.info)
    taken: set[str] = set()
    single = len(embeds) == 1
    paths = []
    for token, tensor in embeds.items():
        path = folder / (EMBEDDINGS_FILE if single else f"{safe_token_name(token, taken)}.safetensors")
        write_diffusers(path, token, tensor, job)
        paths.append(path)
    return paths


def export_a1111_embedding(job: ExportJob) -> Path:
    embeds = read_run_embeddings(job.run_dir, job.info)
    for token, path in _targets(job, list(embeds), diffusers_single_name=False).items():
        write_a1111(path, token, embeds[token], job)
    return job.out


def export_diffusers_embedding(job: ExportJob) -> Path:
    embeds = read_run_embeddings(job.run_dir, job.info)
    for token, path in _targets(job, list(embeds), diffusers_single_name=True).items():
        write_diffusers(path, token, embeds[token], job)
    return job.out
