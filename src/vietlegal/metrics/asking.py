"""Asking an OpenAI-compatible server (`vietlegal serve`, llama.cpp's server, vLLM): each test question's answer,
and the perplexity of each reference answer, so a served model is scored with the pipeline's own metrics.

Answers: `/v1/chat/completions`, greedy, the server rendering the prompt with its own chat template.

Perplexity: the definition of `metrics.likelihood` (answer tokens only, prompt masked by `chat.encode_example`,
token-weighted), taken through `/v1/completions` by teacher forcing: for every answer token, the prompt is the
conversation's token ids up to it, `max_tokens` 1, `logprobs` 1 and a `logit_bias` of +100 on that token, so the
token generated is the reference one and its log-probability (the model's, before the bias: what llama.cpp and
vLLM report) is the one perplexity needs. One request per answer token, each a single new token on the server's
cached prefix. Servers that echo prompt log-probabilities would need one request per answer; llama.cpp's does not
("Only no echo is supported"). llama.cpp leaves out the probabilities of a token that ends inside a UTF-8
character; for those the end of turn is forced instead and the token's log-probability read among every token's.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING

from vietlegal.data.conversation import Conversation
from vietlegal.errors import ConfigError, DataError
from vietlegal.model.chat import IGNORE_INDEX, encode_example

if TYPE_CHECKING:
    from vietlegal.metrics.likelihood import Perplexity

FORCE = 100.0  # logit bias that makes the reference token the greedy choice (OpenAI's maximum)


def ask(client, model: str, cases: list[Conversation], max_tokens: int) -> tuple[list[dict], dict[str, int]]:
    """Each case's prompt answered by the server (greedy): rows in the predictions layout, answers per version."""
    import openai

    rows, versions = [], Counter()
    for case in cases:
        try:
            r = client.chat.completions.create(model=model, messages=case.prompt, temperature=0, max_tokens=max_tokens)
        except openai.APIError as exc:
            raise ConfigError(f"{client.base_url}: could not answer test question {case.id}: {exc}") from None
        versions[r.model] += 1
        rows.append({"id": case.id, "question": case.question, "prediction": r.choices[0].message.content or "",
                     "reference": case.reference, "finish_reason": r.choices[0].finish_reason,
                     "completion_tokens": r.usage.completion_tokens if r.usage else None,
                     "model": r.model, "system_fingerprint": r.system_fingerprint})
    return rows, dict(versions)


def token_logprob(client, model: str, prefix: list[int], token: int, tokenizer) -> float:
    """log p(token | prefix) as the server's model computes it."""
    logprobs = _one_token(client, model, prefix, token, 1).get("logprobs") or {}
    if logprobs.get("content"):  # llama.cpp: [{"id", "token", "logprob", "top_logprobs"}] per generated token
        got, value = logprobs["content"][0].get("id"), logprobs["content"][0].get("logprob")
    elif logprobs.get("token_logprobs"):  # OpenAI / vLLM: parallel lists of tokens and log-probabilities
        got, value = _token_id(logprobs["tokens"][0], token, tokenizer), logprobs["token_logprobs"][0]
    else:
        # llama.cpp records a generated token's probabilities only once its text is whole UTF-8, so a token that
        # ends inside a character (a byte-level piece such as the first two bytes of "ạ") comes back without them.
        # Its log-probability is then read among every token's at that position, with the end of turn forced.
        return _among_all(client, model, prefix, token, tokenizer)
    if got != token or value is None:
        raise ConfigError(f"{client.base_url}: asked to score token {token}, the server generated {got}: it ignores "
                          "logit_bias, so its log-probabilities are not the reference answer's")
    return float(value)


def _token_id(reported: str, expected: int, tokenizer) -> int | None:
    """vLLM writes "token_id:N" when asked (return_tokens_as_token_ids), other servers the token's text."""
    if reported.startswith("token_id:"):
        return int(reported.removeprefix("token_id:"))
    return expected if reported == tokenizer.decode([expected]) else None


def _one_token(client, model: str, prefix: list[int], forced: int, logprobs: int) -> dict:
    import openai

    try:
        r = client.completions.create(model=model, prompt=prefix, max_tokens=1, temperature=0, logprobs=logprobs,
                                      logit_bias={str(forced): FORCE},
                                      extra_body={"return_tokens_as_token_ids": True})  # vLLM's; others ignore it
    except openai.APIError as exc:
        raise ConfigError(f"{client.base_url}: /v1/completions with token ids, logprobs and logit_bias: {exc}") from None
    return r.choices[0].model_dump() if r.choices else {}


def _among_all(client, model: str, prefix: list[int], token: int, tokenizer) -> float:
    content = (_one_token(client, model, prefix, tokenizer.eos_token_id, len(tokenizer)).get("logprobs") or {}).get(
        "content") or [{}]
    found = [e["logprob"] for e in content[0].get("top_logprobs") or [] if e.get("id") == token]
    if not found:
        raise ConfigError(f"{client.base_url}: /v1/completions returned no log-probability for token {token}; this "
                          "server cannot score perplexity (llama.cpp's server and vLLM can)")
    return float(found[0])


def served_perplexity(client, model: str, tokenizer, cases: list[Conversation], max_length: int) -> Perplexity:
    """Perplexity of the reference answers under the served model (see the module's docstring)."""
    from vietlegal.metrics.likelihood import Perplexity  # imports torch: not for `vietlegal score` without it

    per_example, truncated = [], 0
    for case in cases:
        example = encode_example(tokenizer, case.messages, max_length)
        truncated += example.truncated
        ids = example.input_ids
        nll = [-token_logprob(client, model, ids[:i], ids[i], tokenizer)
               for i in range(1, len(ids)) if example.labels[i] != IGNORE_INDEX]
        per_example.append({"nll_sum": sum(nll), "answer_tokens": len(nll)})
    total_nll, total_tokens = sum(e["nll_sum"] for e in per_example), sum(e["answer_tokens"] for e in per_example)
    if total_tokens == 0:
        raise DataError(f"no answer tokens to score in {len(cases)} conversation(s): every answer was cut at "
                        f"{max_length} tokens; raise base.max_seq_length")
    return Perplexity(perplexity=math.exp(total_nll / total_tokens), nll_sum=total_nll, answer_tokens=total_tokens,
                      examples=len(cases), truncated=truncated, per_example=per_example)
