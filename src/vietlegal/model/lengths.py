"""Token and character length statistics of conversations, as `chat.encode_example` would count tokens."""
from __future__ import annotations

import numpy as np

from vietlegal.data.conversation import Conversation
from vietlegal.model.chat import END_OF_TURN, render

ENCODE_CHUNK = 20_000
TOKEN_SAMPLE = 200_000  # token statistics above this many records come from an even sample (length_report)


def _stats(values: list[int] | np.ndarray) -> dict:
    if len(values) == 0:
        return {"p50": 0, "p95": 0, "max": 0}
    a = np.asarray(values)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "max": int(a.max())}


def token_lengths(recs: list[Conversation], tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """(prompt tokens, answer tokens) per record.

    Rendering 100k conversations through Jinja is slow, so each distinct message content is
    tokenised once (the system prompt repeats in every record) in one batched call, and the
    template's fixed overhead is measured once per conversation shape."""
    answers = [r.messages[-1]["content"] + END_OF_TURN for r in recs]
    distinct = list(dict.fromkeys([m["content"] for r in recs for m in r.messages[:-1]] + answers))
    # In chunks: an Encoding keeps ids, offsets and token strings, so 1M of them at once would need ~10 GB.
    n_tokens: dict[str, int] = {}
    for i in range(0, len(distinct), ENCODE_CHUNK):
        chunk = distinct[i:i + ENCODE_CHUNK]
        n_tokens.update((text, len(e.ids)) for text, e in
                        zip(chunk, tokenizer.backend_tokenizer.encode_batch(chunk, add_special_tokens=False)))
    overhead: dict[tuple, int] = {}
    prompt_tokens, answer_tokens = [], []
    for r, answer in zip(recs, answers):
        shape = tuple(m["role"] for m in r.messages[:-1])
        if shape not in overhead:
            probe = [{"role": role, "content": ""} for role in shape]
            overhead[shape] = len(tokenizer(render(tokenizer, probe, True), add_special_tokens=False)["input_ids"])
        prompt_tokens.append(overhead[shape] + sum(n_tokens[m["content"]] for m in r.messages[:-1]))
        answer_tokens.append(n_tokens[answer])
    return np.array(prompt_tokens, dtype=int), np.array(answer_tokens, dtype=int)


def token_sample(recs: list[Conversation], limit: int = TOKEN_SAMPLE) -> list[Conversation]:
    """All records up to `limit`, else an even, deterministic sample of `limit` of them (records are in id order,
    a content hash, so every k-th is a uniform sample)."""
    if len(recs) <= limit:
        return recs
    step = len(recs) / limit
    return [recs[int(i * step)] for i in range(limit)]


def length_report(recs: list[Conversation], tokenizer, max_seq_length: int) -> dict:
    """Character statistics of every record; token statistics of every record up to TOKEN_SAMPLE of them, of an
    even sample above (tokenising is most of prepare's time: 1M records would take minutes for p50/p95 that a
    200k sample gives to a fraction of a percent; `train` counts truncation exactly anyway)."""
    sample = token_sample(recs)
    prompt_tokens, answer_tokens = token_lengths(sample, tokenizer)
    total = prompt_tokens + answer_tokens
    sampled = {"token_sample": len(sample)} if len(sample) < len(recs) else {}
    return {
        "answer_chars": _stats([len(r.messages[-1]["content"]) for r in recs]),
        "prompt_chars": _stats([sum(len(m["content"]) for m in r.messages[:-1]) for r in recs]),
        "answer_tokens": _stats(answer_tokens),
        "prompt_tokens": _stats(prompt_tokens),
        "total_tokens": _stats(total),
        "max_seq_length": max_seq_length,
        "share_over_max_seq_length": float((total > max_seq_length).mean()) if len(recs) else 0.0,
        **sampled,
    }
