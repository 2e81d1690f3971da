"""The offline CLIP tokenizer: every word of the list is one token; other words still tokenize."""

from transformers import CLIPTokenizer

from dreamlock.families.tokenizer import build_clip_tokenizer


def test_every_word_is_one_token(tmp_path):
    words = ["photo", "of", "a", "red", "star", "beach", "snow", "sks", "triangle"]
    tok = CLIPTokenizer.from_pretrained(build_clip_tokenizer(words, tmp_path / "tok"))
    for word in words:
        assert tok.tokenize(word) == [f"{word}</w>"]
    assert len(tok.tokenize("ohwx")) > 1  # an unknown word falls back to pieces, not to <unk>
    assert tok.unk_token_id not in tok("ohwx", add_special_tokens=False).input_ids
