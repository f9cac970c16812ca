"""The next token of one sequence, chosen from one row of logits: numerically safe for every value a request may
carry (the HF loop's half of `SamplingRequest`; vLLM applies the same fields itself).

    logits = finite(row)                                   # float32; NaN -> -inf, +inf -> the largest float
    logits = penalised(logits, request, prompt, output)    # repetition over prompt+output, presence/frequency over output
    token = choose(logits, request, generator)             # greedy below GREEDY_BELOW, else top-k, min-p, top-p, sample
    record = logprob_record(raw, token, n)                 # (logprob, [(id, logprob), ...]) of the raw distribution

Why it cannot fail on a value: the logits are float32 with their maximum subtracted before the temperature divides
them, so every exponent is <= 0 and the largest is exactly 1: the distribution always sums to >= 1 and holds no
NaN, at temperature 1e-40 as at 2 (softmax of logits/1e-40 overflowed before; torch.multinomial then raised and
took the worker down). A temperature below GREEDY_BELOW is greedy, and one below MIN_TEMPERATURE is raised to it,
as vLLM does (model.sampling says where both come from), so the two backends decode a request alike. A row with no
finite logit at all (a model that produced NaN everywhere, or a grammar that allows nothing) raises
GenerationError: that request fails alone.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from vietlegal.errors import GenerationError
from vietlegal.model.sampling import GREEDY_BELOW, MIN_TEMPERATURE
LOGPROB_FLOOR = -9999.0  # what OpenAI and vLLM report for an impossible token (-inf is not JSON)


def is_greedy(request) -> bool:
    """top_p 0 keeps only the most likely token, top_k 1 likewise: greedy, whatever the temperature."""
    return request.temperature < GREEDY_BELOW or request.top_p <= 0 or request.top_k == 1


def plain(request) -> bool:
    """Nothing beyond greedy or plain sampling: the batch's fast path may choose this row's token."""
    return (request.presence_penalty == 0 and request.frequency_penalty == 0 and request.repetition_penalty == 1
            and request.top_k in (0, -1) and request.min_p == 0 and request.logprobs is None)


def finite(logits: torch.Tensor) -> torch.Tensor:
    """float32, NaN as -inf and +inf as the largest float; GenerationError when nothing finite is left."""
    out = torch.nan_to_num(logits.float(), nan=float("-inf"), posinf=torch.finfo(torch.float32).max)
    if not torch.isfinite(out).any():
        raise GenerationError("the model produced no finite score for any token at this step (NaN or -inf everywhere)")
    return out


def penalised(logits: torch.Tensor, request, prompt: Sequence[int], output: Sequence[int]) -> torch.Tensor:
    """vLLM's penalties: repetition divides a positive (multiplies a negative) score of every token seen in the prompt
    or the output; frequency subtracts per occurrence in the output, presence once per token in the output."""
    if request.repetition_penalty != 1 and (prompt or output):
        seen = torch.tensor(sorted(set(prompt) | set(output)), device=logits.device)
        seen = seen[seen < logits.shape[-1]]
        scores = logits[seen]
        logits[seen] = torch.where(scores > 0, scores / request.repetition_penalty, scores * request.repetition_penalty)
    if output and (request.frequency_penalty or request.presence_penalty):
        ids = torch.tensor(output, device=logits.device)
        ids = ids[ids < logits.shape[-1]]
        counts = torch.bincount(ids, minlength=logits.shape[-1]).to(logits.dtype)
        logits -= request.frequency_penalty * counts + request.presence_penalty * (counts > 0).to(logits.dtype)
    return logits


def choose(logits: torch.Tensor, request, generator: torch.Generator | None) -> int:
    """The next token: greedy, or sampled from the temperature-scaled distribution after top-k, min-p and top-p."""
    logits = finite(logits)  # again: a penalty can push the largest float to inf
    if is_greedy(request) or generator is None:
        return int(logits.argmax())
    probs = distribution(logits, request)
    return int(torch.multinomial(probs, 1, generator=generator))


def distribution(logits: torch.Tensor, request) -> torch.Tensor:
    """Probabilities (float32, non-negative, largest exactly 1 before normalisation) after the filters."""
    logits = finite(logits)
    scaled = (logits - logits.max()) / max(request.temperature, MIN_TEMPERATURE)
    if request.top_k > 0 and request.top_k < scaled.shape[-1]:
        kth = scaled.topk(request.top_k).values[-1]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.exp(scaled)  # every exponent <= 0: no overflow; the maximum's is exactly 1
    if request.min_p > 0:
        probs = probs.masked_fill(probs < request.min_p, 0.0)  # relative to the largest, which is 1
    probs = probs / probs.sum()
    return nucleus(probs, request.top_p)


def nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose mass reaches top_p (at least one)."""
    if top_p >= 1:
        return probs
    sorted_probs, order = probs.sort(descending=True)
    drop = sorted_probs.cumsum(-1) - sorted_probs >= top_p
    drop[..., 0] = False
    sorted_probs[drop] = 0
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)


def logprob_record(raw: torch.Tensor, token: int, top: int) -> tuple[float, list[tuple[int, float]]]:
    """(the token's log-probability, the `top` most likely (id, log-probability)) under the model's own
    distribution (vLLM's default `raw_logprobs`: before penalties, temperature and filters)."""
    logprobs = torch.log_softmax(raw, dim=-1)
    best = logprobs.topk(min(top, logprobs.shape[-1])) if top > 0 else None
    pairs = [] if best is None else [(int(i), _floor(float(v))) for v, i in zip(best.values, best.indices)]
    return _floor(float(logprobs[token])), pairs


def _floor(value: float) -> float:
    return max(value, LOGPROB_FLOOR) if value == value else LOGPROB_FLOOR
