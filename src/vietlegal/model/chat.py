"""One chat template for training, evaluation and serving: the tokenizer's own.

Every prompt in the project is rendered by `tokenizer.apply_chat_template` through this module,
so the ids a model is trained on and the ids it is served with cannot drift apart (the field's
most reported fine-tuning failure). Rendered text already holds `<|begin_of_text|>`, so it is
always encoded with `add_special_tokens=False` (a second BOS is the classic silent mismatch).
"""
from __future__ import annotations

from dataclasses import dataclass

from vietlegal.data.conversation import check_messages, with_system  # noqa: F401  (callers say chat.check_messages)
from vietlegal.errors import ChatError

IGNORE_INDEX = -100
END_OF_TURN = "<|eot_id|>"


def render(tokenizer, messages: list[dict], add_generation_prompt: bool) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise ChatError(
            "the tokenizer has no chat template; use an instruct model (e.g. meta-llama/Llama-3.1-8B-Instruct) "
            "whose tokenizer_config.json defines chat_template"
        )
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def encode_prompt(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of a conversation followed by the assistant header: what generation starts from."""
    return tokenizer(render(tokenizer, messages, True), add_special_tokens=False)["input_ids"]


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    truncated: bool


def encode_example(tokenizer, messages: list[dict], max_length: int) -> Example:
    """Ids and labels of a whole conversation; only assistant turns (and their <|eot_id|>) are supervised.

    Assistant spans are found on the rendered text (each prefix rendering with the generation prompt
    is a prefix of the next), then mapped to tokens by character offsets, so BPE merges across a
    boundary cannot shift a label.
    """
    full = render(tokenizer, messages, False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(render(tokenizer, messages[:i], True))
        end = len(render(tokenizer, messages[: i + 1], False))
        if not full.startswith(render(tokenizer, messages[: i + 1], False)):
            raise ChatError("chat template is not prefix-stable; cannot locate assistant turns")
        spans.append((start, end))
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [IGNORE_INDEX] * len(ids)
    for k, (a, _b) in enumerate(offsets):
        if any(s <= a < e for s, e in spans):
            labels[k] = ids[k]
    truncated = len(ids) > max_length
    return Example(ids[:max_length], labels[:max_length], truncated)
