"""The embedded tiny Llama and the one chat-template path shared by training, evaluation and serving."""
from __future__ import annotations

import hashlib
import unicodedata

import pytest

from vietlegal.model import chat, tiny

EXPECTED = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
    "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
    "Bạn là luật sư.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
    "Tuổi kết hôn?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
)


def weights_digest(path) -> str:
    from safetensors.torch import load_file

    tensors = load_file(str(path / "model.safetensors"))
    return hashlib.sha256(b"".join(tensors[k].numpy().tobytes() for k in sorted(tensors))).hexdigest()


def test_build_is_deterministic_from_the_seed(tmp_path, tiny_base):
    again = tiny.build(tmp_path / "again")
    assert weights_digest(again) == weights_digest(tiny_base[0])
    assert (again / "tokenizer.json").read_bytes() == (tiny_base[0] / "tokenizer.json").read_bytes()


def test_it_is_a_llama_with_llama31_special_tokens(tiny_base, tiny_tokenizer):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_base[0])
    assert config.model_type == "llama" and config.vocab_size == len(tiny_tokenizer)
    vocab = tiny_tokenizer.get_vocab()
    for token in ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|finetune_right_pad_id|>"):
        assert token in vocab
    assert tiny_tokenizer.eos_token == "<|eot_id|>" and tiny_tokenizer.pad_token_id != tiny_tokenizer.eos_token_id
    assert vocab["<|eot_id|>"] in config.eos_token_id


def test_chat_template_is_llama31_with_its_date_block(tiny_tokenizer):
    messages = [{"role": "system", "content": "Bạn là luật sư."}, {"role": "user", "content": "Tuổi kết hôn?"}]
    assert chat.render(tiny_tokenizer, messages, add_generation_prompt=True) == EXPECTED


def test_vietnamese_round_trips_with_diacritics(tiny_tokenizer):
    text = "Điều 139 Bộ luật Lao động 2019: nghỉ thai sản 06 tháng; đương sự, ủy quyền, hòa giải."
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.decode(ids) == text
    assert tiny_tokenizer.unk_token_id is None or tiny_tokenizer.unk_token_id not in ids


def test_training_ids_start_with_the_serving_prompt_ids(tiny_tokenizer, conversations):
    for messages in conversations:
        prompt = chat.encode_prompt(tiny_tokenizer, messages[:-1])
        example = chat.encode_example(tiny_tokenizer, messages, max_length=4096)
        assert example.input_ids[: len(prompt)] == prompt
        assert all(label == -100 for label in example.labels[: len(prompt)])
        supervised = [t for t, label in zip(example.input_ids, example.labels) if label != -100]
        assert tiny_tokenizer.decode(supervised) == messages[-1]["content"] + "<|eot_id|>"
        assert example.input_ids.count(tiny_tokenizer.bos_token_id) == 1


def test_every_assistant_turn_is_supervised_in_multi_turn(tiny_tokenizer):
    messages = [
        {"role": "user", "content": "Hỏi một"}, {"role": "assistant", "content": "Đáp một"},
        {"role": "user", "content": "Hỏi hai"}, {"role": "assistant", "content": "Đáp hai"},
    ]
    example = chat.encode_example(tiny_tokenizer, messages, max_length=4096)
    supervised = tiny_tokenizer.decode([t for t, label in zip(example.input_ids, example.labels) if label != -100])
    assert supervised == "Đáp một<|eot_id|>Đáp hai<|eot_id|>"


def test_truncation_is_reported_not_silent(tiny_tokenizer, conversations):
    example = chat.encode_example(tiny_tokenizer, conversations[0], max_length=20)
    assert example.truncated and len(example.input_ids) == 20


def test_messages_are_validated_and_nfc_normalised():
    nfd = unicodedata.normalize("NFD", "Thừa kế")
    assert chat.check_messages([{"role": "user", "content": nfd}])[0]["content"] == "Thừa kế"
    with pytest.raises(chat.ChatError, match=r"messages\[0\]\.role"):
        chat.check_messages([{"role": "lawyer", "content": "x"}])
    with pytest.raises(chat.ChatError, match=r"messages\[1\]\.content"):
        chat.check_messages([{"role": "user", "content": "x"}, {"role": "assistant", "content": 3}])
    with pytest.raises(chat.ChatError, match="non-empty list"):
        chat.check_messages([])


def test_a_tokenizer_without_chat_template_is_a_clear_error(tiny_tokenizer):
    import copy

    bare = copy.deepcopy(tiny_tokenizer)
    bare.chat_template = None
    with pytest.raises(chat.ChatError, match="no chat template"):
        chat.render(bare, [{"role": "user", "content": "x"}], True)
