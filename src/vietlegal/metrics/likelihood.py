"""Perplexity of the reference answers: exp(total answer-token NLL / number of answer tokens).

One pass over the whole set, token-weighted. Not a mean of per-example perplexities (HF evaluate's
`mean_perplexity`, dominated by short answers) and not exp(Trainer eval_loss) (which depends on the
batch size, transformers#39241). Prompt tokens are masked by the same `chat.encode_example` labels
that training uses, so "answer tokens" means exactly what the model was trained on, <|eot_id|> included.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vietlegal.errors import DataError
from vietlegal.model.chat import IGNORE_INDEX, encode_example


@dataclass
class Perplexity:
    perplexity: float
    nll_sum: float
    answer_tokens: int
    examples: int
    truncated: int  # conversations cut at max_length (their remaining answer tokens still count)
    per_example: list[dict]  # {"nll_sum", "answer_tokens"} in input order

    def summary(self) -> dict:
        return {
            "perplexity": self.perplexity,
            "nll_per_token": self.nll_sum / self.answer_tokens,
            "answer_tokens": self.answer_tokens,
            "examples": self.examples,
            "truncated": self.truncated,
        }


def _batch(examples: list, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, attention mask and labels (-100 on padding)."""
    width = max(len(e.input_ids) for e in examples)
    ids = [e.input_ids + [pad_id] * (width - len(e.input_ids)) for e in examples]
    mask = [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in examples]
    labels = [e.labels + [IGNORE_INDEX] * (width - len(e.labels)) for e in examples]
    return tuple(torch.tensor(rows, dtype=torch.long, device=device) for rows in (ids, mask, labels))


@torch.inference_mode()
def answer_nll(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row (sum of NLL over labelled tokens, number of labelled tokens)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    target = labels[:, 1:]
    # Row by row in float32: a whole 8B batch of 128k-vocab logits in float32 would be gigabytes more.
    nll = torch.stack([
        torch.nn.functional.cross_entropy(logits[i, :-1].float(), target[i], ignore_index=IGNORE_INDEX, reduction="sum")
        for i in range(logits.size(0))
    ])
    return nll, (target != IGNORE_INDEX).sum(dim=1)


def perplexity(
    model, tokenizer, conversations: list[list[dict]], max_length: int, batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> Perplexity:
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")  # evaluate.ppl_batch_size is checked at load
    examples = [encode_example(tokenizer, messages, max_length) for messages in conversations]
    device = next(model.parameters()).device
    # Similar lengths together: less padding. Results go back to input order.
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    per_example: list[dict] = [{}] * len(examples)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        nll, count = answer_nll(model, *_batch([examples[i] for i in chunk], tokenizer.pad_token_id, device))
        for i, n, c in zip(chunk, nll.tolist(), count.tolist()):
            per_example[i] = {"nll_sum": n, "answer_tokens": int(c)}
        if on_batch:
            on_batch(len(chunk))
    total_nll = sum(e["nll_sum"] for e in per_example)
    total_tokens = sum(e["answer_tokens"] for e in per_example)
    if total_tokens == 0:
        raise DataError(
            f"no answer tokens to score in {len(examples)} conversation(s): every answer was cut by "
            f"base.max_seq_length={max_length}; raise it"
        )
    return Perplexity(
        perplexity=math.exp(total_nll / total_tokens),
        nll_sum=total_nll,
        answer_tokens=total_tokens,
        examples=len(examples),
        truncated=sum(e.truncated for e in examples),
        per_example=per_example,
    )
