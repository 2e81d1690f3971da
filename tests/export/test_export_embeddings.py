"""a1111-embedding and diffusers-embedding exports. Tiny random models: plumbing, not quality."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from export_helpers import load_pipe
from dreamlock.errors import UserError
from dreamlock.exporting import export


def _token_rows(pipe, token: str, n: int) -> torch.Tensor:
    names = [token] + [f"{token}_{i}" for i in range(1, n)]
    ids = pipe.tokenizer.convert_tokens_to_ids(names)
    return pipe.text_encoder.get_input_embeddings().weight[ids]


def test_a1111_embedding_loads_with_load_textual_inversion(runs, out_dir):
    path = export(runs.ti, "a1111-embedding", out_dir / "dlk.safetensors")
    state = load_file(str(path))
    original = load_file(str(runs.ti / "final" / "learned_embeds.safetensors"))["<dlk>"]
    assert list(state) == ["emb_params"] and state["emb_params"].shape == (2, 32)
    pipe = load_pipe(runs.base)
    pipe.load_textual_inversion(str(path), token="<dlk>")
    assert torch.equal(_token_rows(pipe, "<dlk>", 2), original)
    ids = pipe.tokenizer("a photo of <dlk> dog").input_ids
    assert pipe.tokenizer.convert_tokens_to_ids("<dlk>") in ids


def test_a1111_embedding_folder_and_fp16(runs, out_dir):
    path = export(runs.pivotal, "a1111-embedding", out_dir / "emb", dtype="fp16")
    assert path == out_dir / "emb"
    files = sorted(p.name for p in path.iterdir())
    assert files == ["pvt.safetensors"]  # named after the token, '<' '>' dropped (A1111 uses the file name)
    assert load_file(str(path / "pvt.safetensors"))["emb_params"].dtype == torch.float16


def test_diffusers_embedding_folder_loads_by_folder(runs, out_dir):
    path = export(runs.ti, "diffusers-embedding", out_dir / "emb")
    assert sorted(p.name for p in path.iterdir()) == ["learned_embeds.safetensors"]
    original = load_file(str(runs.ti / "final" / "learned_embeds.safetensors"))["<dlk>"]
    pipe = load_pipe(runs.base)
    pipe.load_textual_inversion(str(path))  # token name comes from the file
    assert torch.equal(_token_rows(pipe, "<dlk>", 2), original)


def test_several_tokens_need_a_folder(runs, tmp_path):
    import shutil

    run = tmp_path / "ti2"
    shutil.copytree(runs.ti, run)
    g = torch.Generator().manual_seed(0)
    save_file({"<a>": torch.randn(1, 32, generator=g), "<b>": torch.randn(3, 32, generator=g)},
              str(run / "final" / "learned_embeds.safetensors"))
    with pytest.raises(UserError, match="give a folder"):
        export(run, "a1111-embedding", tmp_path / "x.safetensors")
    path = export(run, "diffusers-embedding", tmp_path / "both")
    assert sorted(p.name for p in path.iterdir()) == ["a.safetensors", "b.safetensors"]
    pipe = load_pipe(runs.base)
    for name in ("a", "b"):
        pipe.load_textual_inversion(str(path / f"{name}.safetensors"))
    assert pipe.tokenizer.convert_tokens_to_ids("<b>_2") != pipe.tokenizer.unk_token_id
