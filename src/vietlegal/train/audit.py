"""Label audit: proof, before any GPU hour is spent, that the model will learn to stop.

A model never stops when its end-of-turn token is masked (pad = EOS with a pad-masking collator)
or cut by truncation. The audit counts both and refuses to train when a complete conversation
does not end on a supervised `<|eot_id|>`.
"""
from __future__ import annotations

from vietlegal.model.chat import END_OF_TURN, IGNORE_INDEX, Example
from vietlegal.errors import DataError
from vietlegal.train.dataset import Split


def last_supervised(example: Example) -> int | None:
    for label in reversed(example.labels):
        if label != IGNORE_INDEX:
            return label
    return None


def label_audit(split: Split, tokenizer) -> dict:
    eot = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    if pad is None or pad == eos or pad == eot:
        raise DataError(
            f"tokenizer pad token {tokenizer.pad_token!r} is the end-of-turn/EOS token: padding would be masked "
            "together with the real end of each answer; use vietlegal.model.base.load_tokenizer (it sets <|finetune_right_pad_id|>)"
        )
    broken = [src for ex, src in zip(split.examples, split.sources) if not ex.truncated and last_supervised(ex) != eot]
    if broken:
        raise DataError(
            f"{len(broken)} {split.name} example(s) do not end on a supervised {END_OF_TURN} "
            f"(first: {broken[0]}): the chat template does not close assistant turns the way chat.encode_example expects"
        )
    tokens = sum(len(ex.labels) for ex in split.examples)
    supervised = sum(label != IGNORE_INDEX for ex in split.examples for label in ex.labels)
    ending = sum(last_supervised(ex) == eot for ex in split.examples)
    pad_supervised = sum(label == pad for ex in split.examples for label in ex.labels)
    return {
        "examples": len(split),
        "share_ending_in_eot": ending / len(split) if len(split) else 0.0,
        "share_tokens_masked": 1 - supervised / tokens if tokens else 0.0,
        "supervised_tokens": supervised,
        "truncated": len(split.truncated),
        "dropped": len(split.dropped),
        "pad_token": tokenizer.pad_token,
        "eos_token": tokenizer.eos_token,
        "pad_is_eos": False,
        "pad_tokens_supervised": pad_supervised,
    }
