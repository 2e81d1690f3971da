"""Build a small CLIP tokenizer offline from a word list.

A CLIP tokenizer needs a ``vocab.json`` and a ``merges.txt``. A ``merges.txt`` holding only its
header makes CLIPTokenizer fall back to single characters, so we train a real BPE with the
``tokenizers`` library on the word list until every word is one token. Single characters (with and
without the end-of-word marker) stay in the vocabulary, so any other word still tokenizes.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
EOW = "</w>"


def _train_bpe(words: list[str]) -> tuple[dict[str, int], list[str]]:
    tok = Tokenizer(models.BPE(end_of_word_suffix=EOW))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=100_000,  # upper bound: training stops when every word is one token
        min_frequency=1,
        special_tokens=[],
        end_of_word_suffix=EOW,
        show_progress=False,
    )
    tok.train_from_iterator(words, trainer=trainer)
    state = json.loads(tok.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["merges"]]
    return state["vocab"], merges


def build_clip_tokenizer(words: Iterable[str], out_dir: Path, max_length: int = 16) -> Path:
    """Write a CLIPTokenizer (vocab.json, merges.txt, configs) to ``out_dir`` and return it.

    Every word in ``words`` becomes a single token; characters a-z and 0-9 are always present so
    unseen words split into characters instead of becoming unknown.
    """
    words = sorted({w.lower() for w in words if w.strip()})
    vocab, merges = _train_bpe(words)
    ordered = sorted(vocab, key=vocab.get)
    for ch in string.ascii_lowercase + string.digits + string.punctuation:
        for token in (ch, ch + EOW):
            if token not in vocab:
                ordered.append(token)
                vocab[token] = -1
    ordered += [BOS, EOS]
    final = {token: i for i, token in enumerate(ordered)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(final, ensure_ascii=False))
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "do_lower_case": True,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    return out_dir


T5_SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2, as in T5
SPACE = "\u2581"  # sentencepiece's word-start marker


def build_t5_tokenizer(words: Iterable[str], out_dir: Path, max_length: int = 32) -> Path:
    """Write a T5 tokenizer (``tokenizer.json``, a unigram model) to ``out_dir`` and return it.

    Each word of ``words`` is one piece (``▁word``); single characters and ``▁`` cover any other
    text. Like T5's, it ends every sequence with ``</s>`` and pads with ``<pad>`` (id 0)."""
    from tokenizers import decoders, processors
    from transformers import T5TokenizerFast

    words = sorted({w.lower() for w in words if w.strip()})
    chars = string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation
    pieces = ([(s, 0.0) for s in T5_SPECIALS] + [(SPACE + w, -1.0) for w in words] + [(SPACE, -2.0)]
              + [(c, -3.0) for c in chars])
    tok = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    fast = T5TokenizerFast(tokenizer_file=str(out_dir / "tokenizer.json"), extra_ids=0, model_max_length=max_length,
                           pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(out_dir)
    return out_dir
