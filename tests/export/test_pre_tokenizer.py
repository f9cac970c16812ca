"""The converter is told "llama-bpe" only for a tokenizer that pre-tokenizes exactly as Llama-3's does.

llama.cpp recognises a BPE pre-tokenizer by hashing the ids a test string encodes to, which depend on the
vocabulary: the tiny model's 3,000-token vocabulary is unknown to it although it splits text with Llama-3's regex
and byte-level step, which llama.cpp implements as "llama-bpe". Any other pre-tokenizer is left to the converter
(which then refuses it). That the two tokenizers then give the same ids is checked against llama.cpp itself in
test_llama_cpp_live.py.
"""
from __future__ import annotations

import copy
import json
import shutil

import pytest

from vietlegal.export.gguf_files import llama3_pre_tokenizer


@pytest.fixture
def tokenizer_dir(tmp_path, tiny_base):
    shutil.copy(tiny_base[0] / "tokenizer.json", tmp_path / "tokenizer.json")
    return tmp_path


def rewrite(path, change) -> None:
    spec = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
    change(spec)
    (path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")


def test_the_tiny_tokenizer_splits_as_llama3(tokenizer_dir):
    assert llama3_pre_tokenizer(tokenizer_dir)


def test_trim_offsets_changes_offsets_only_so_it_does_not_matter(tokenizer_dir):
    rewrite(tokenizer_dir, lambda s: s["pre_tokenizer"]["pretokenizers"][1].update(trim_offsets=False))
    assert llama3_pre_tokenizer(tokenizer_dir)


CHANGES = {
    "another regex (GPT-2's)": lambda s: s["pre_tokenizer"]["pretokenizers"][0]["pattern"].update(
        Regex=r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"),
    "digits split one by one": lambda s: s["pre_tokenizer"]["pretokenizers"][0]["pattern"].update(
        Regex=s["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"].replace(r"\p{N}{1,3}", r"\p{N}")),
    "a prefix space": lambda s: s["pre_tokenizer"]["pretokenizers"][1].update(add_prefix_space=True),
    "byte-level with its own regex": lambda s: s["pre_tokenizer"]["pretokenizers"][1].update(use_regex=True),
    "merges not ignored": lambda s: s["model"].update(ignore_merges=False),
    "the split inverted": lambda s: s["pre_tokenizer"]["pretokenizers"][0].update(invert=True),
    "byte-level alone": lambda s: s.update(pre_tokenizer=copy.deepcopy(s["pre_tokenizer"]["pretokenizers"][1])),
    "a third step": lambda s: s["pre_tokenizer"]["pretokenizers"].append({"type": "Digits", "individual_digits": True}),
    "no pre-tokenizer": lambda s: s.update(pre_tokenizer=None),
    "a WordPiece model": lambda s: s["model"].update(type="WordPiece"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_any_other_pre_tokenizer_is_not_called_llama3(tokenizer_dir, change):
    rewrite(tokenizer_dir, CHANGES[change])
    assert not llama3_pre_tokenizer(tokenizer_dir)
