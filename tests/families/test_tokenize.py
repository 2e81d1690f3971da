"""Token ids are computed once per prompt and vocabulary (tiny random SD; plumbing): the memo gives
what the tokenizer gives, and a token added later (textual inversion) is seen."""

from __future__ import annotations

import torch

from dreamlock.families import get_family


def test_tokenize_memo_matches_the_tokenizer_and_follows_new_tokens(tiny_bases):
    adapter = get_family("sd").load(str(tiny_bases["sd"]))
    text = adapter.text_encoders()[0]
    prompts = ["a photo of sks dog", "a red star", "a photo of sks dog"]

    def direct(ps):
        return text.tokenizer(ps, padding="max_length", max_length=text.tokenizer.model_max_length,
                              truncation=True, return_tensors="pt").input_ids

    assert torch.equal(adapter.tokenize(text, prompts), direct(prompts))
    assert torch.equal(adapter.tokenize(text, prompts), direct(prompts))  # from the memo
    text.tokenizer.add_tokens(["<zz>"])
    ids = adapter.tokenize(text, ["a <zz> dog"])
    assert torch.equal(ids, direct(["a <zz> dog"])) and text.tokenizer.convert_tokens_to_ids("<zz>") in ids[0]
