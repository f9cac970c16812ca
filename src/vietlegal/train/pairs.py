"""Preference pairs as token ids, through the one chat template and the training labels.

    prompt_ids     chat.encode_prompt: what generation and serving start from (one <|begin_of_text|>)
    chosen_ids     the tokens `chat.encode_example` supervises after that prompt: the answer and its <|eot_id|>
    rejected_ids   the same for the rejected answer

TRL's collator concatenates prompt_ids + chosen_ids and scores only the second part, so the ids here are exactly
what the SFT stage trained on and what the server sends: the prompt never sits inside a completion (trl#1541),
the prompt's BOS is the only one (axolotl#1616), and each completion ends on the supervised <|eot_id|>. A pair
whose prompt and longer answer exceed base.max_seq_length would be compared on a cut answer: it is left out and
named, never silently truncated.
"""
from __future__ import annotations

from dataclasses import dataclass

from vietlegal.errors import ChatError
from vietlegal.model.chat import IGNORE_INDEX, encode_example, encode_prompt
from vietlegal.train.preferences import Pair


@dataclass(frozen=True)
class EncodedPair:
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]

    def row(self) -> dict:
        return {"prompt_ids": self.prompt_ids, "chosen_ids": self.chosen_ids, "rejected_ids": self.rejected_ids}


def completion_ids(tokenizer, prompt: list[dict], prompt_ids: list[int], answer: str, max_length: int
                   ) -> list[int] | None:
    """The answer's ids after `prompt_ids` (None when the whole would pass max_length)."""
    example = encode_example(tokenizer, prompt + [{"role": "assistant", "content": answer}], max_length)
    if example.truncated:
        return None
    if example.input_ids[:len(prompt_ids)] != prompt_ids:
        raise ChatError("the chat template renders a prompt differently inside a conversation; "
                        "preference pairs need the generation prompt to be a prefix of the whole")
    tail = example.labels[len(prompt_ids):]
    if not tail or IGNORE_INDEX in tail:
        raise ChatError("the chat template puts unsupervised tokens after the generation prompt; "
                        "chat.encode_example's labels must cover the whole answer")
    return example.input_ids[len(prompt_ids):]


def encode_pair(tokenizer, pair: Pair, max_length: int) -> EncodedPair | None:
    prompt_ids = encode_prompt(tokenizer, pair.prompt)
    chosen = completion_ids(tokenizer, pair.prompt, prompt_ids, pair.chosen, max_length)
    rejected = completion_ids(tokenizer, pair.prompt, prompt_ids, pair.rejected, max_length)
    if chosen is None or rejected is None:
        return None
    return EncodedPair(prompt_ids, chosen, rejected)


def encode_pairs(tokenizer, pairs: list[Pair], max_length: int) -> tuple[list[EncodedPair], list[str]]:
    """(the encoded pairs, the sources of those too long for max_length)."""
    encoded, too_long = [], []
    for pair in pairs:
        done = encode_pair(tokenizer, pair, max_length)
        if done is None:
            too_long.append(pair.source)
        else:
            encoded.append(done)
    return encoded, too_long


def to_dataset(pairs: list[EncodedPair]):
    """A pre-tokenised `datasets.Dataset` in the columns TRL's DataCollatorForPreference reads."""
    from datasets import Dataset

    return Dataset.from_list([p.row() for p in pairs])
