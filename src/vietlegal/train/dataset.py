"""The training splits as training examples: ids and labels through `chat.encode_example`.

The labels come from the one chat-template path the server also uses, so loss falls only on the
assistant's tokens and on its closing `<|eot_id|>`. A conversation longer than
`base.max_seq_length` loses the end of its answer (and its `<|eot_id|>`): it is counted and named,
and `train.drop_truncated` drops it instead of keeping it silently.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from vietlegal.data.conversation import Conversation
from vietlegal.data.splits import read_split
from vietlegal.model.chat import IGNORE_INDEX, Example, encode_example


@dataclass
class Split:
    name: str
    examples: list[Example] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # raw "file:line" of each kept example
    truncated: list[str] = field(default_factory=list)  # sources cut at max_seq_length (kept or dropped)
    dropped: list[str] = field(default_factory=list)  # sources not trained on

    def __len__(self) -> int:
        return len(self.examples)


MISSING = "run the stages before train first: `dvc repro ground` (or `vietlegal prepare` then `vietlegal ground`)"


def read_rows(path: Path) -> list[Conversation]:
    """The conversations of a training split: what training encodes."""
    return read_split(path, missing=MISSING)


def encode_split(name: str, path: Path, tokenizer, max_length: int, drop_truncated: bool) -> Split:
    split = Split(name)
    for conversation in read_rows(path):
        source = conversation.source
        example = encode_example(tokenizer, conversation.messages, max_length)
        if example.truncated:
            split.truncated.append(source)
        supervised = any(label != IGNORE_INDEX for label in example.labels)
        if (example.truncated and drop_truncated) or not supervised:
            split.dropped.append(source)  # a prompt longer than max_length leaves nothing to learn from
            continue
        split.examples.append(example)
        split.sources.append(source)
    if split.truncated:
        action = "dropped" if drop_truncated else "kept without their end (no <|eot_id|> to learn from)"
        print(
            f"train: warning: {len(split.truncated)} {name} example(s) exceed base.max_seq_length={max_length} and were "
            f"{action}: {', '.join(split.truncated[:5])}{' ...' if len(split.truncated) > 5 else ''}. "
            "Raise base.max_seq_length, or set train.drop_truncated: true.",
            file=sys.stderr,
        )
    return split


def to_dataset(split: Split):
    """A pre-tokenised `datasets.Dataset`: SFTTrainer keeps its `labels` as they are."""
    from datasets import Dataset

    return Dataset.from_dict(
        {"input_ids": [e.input_ids for e in split.examples], "labels": [e.labels for e in split.examples]}
    )
