"""The next-token choice as a class: every value a request may carry, at both ends of float range, on logits that
hold the worst a model can produce (huge, -inf, NaN), never raises anything but GenerationError and always picks a
token the model scored (Hypothesis). The 1e-40 temperature that took the worker down is one of the cases."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vietlegal.errors import GenerationError
from vietlegal.model import sampler
from vietlegal.model.sampling import SamplingRequest

VOCAB = 48
F32_MAX = torch.finfo(torch.float32).max
INT64 = 2**63

# Floats a client may send, and the ones near every boundary (tiny positive, subnormal, the top of a range).
TEMPERATURE = st.one_of(st.floats(0, 2), st.sampled_from([0.0, 1e-40, 5e-324, 1e-36, 1e-6, 1e-5, 1e-2, 2.0]))
UNIT = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 5e-324, 1e-30, 1.0 - 1e-16, 1.0]))
PENALTY = st.one_of(st.floats(-2, 2), st.sampled_from([-2.0, 2.0, 0.0, 5e-324]))
REPETITION = st.one_of(st.floats(1e-30, 2**24), st.sampled_from([5e-324, 1e-30, 1.0, 2.0, 2.0**24]))
SCORE = st.one_of(st.floats(-1e4, 1e4), st.sampled_from([F32_MAX, -F32_MAX, math.inf, -math.inf, math.nan, 0.0]))


@st.composite
def requests(draw) -> SamplingRequest:
    return SamplingRequest(
        [1, 2, 3], 8, temperature=draw(TEMPERATURE), top_p=draw(UNIT), top_k=draw(st.integers(-1, VOCAB + 5)),
        min_p=draw(UNIT), presence_penalty=draw(PENALTY), frequency_penalty=draw(PENALTY),
        repetition_penalty=draw(REPETITION), seed=draw(st.integers(-INT64, INT64 - 1)))


@settings(max_examples=600, deadline=None, derandomize=True, database=None)
@given(requests(), st.lists(SCORE, min_size=VOCAB, max_size=VOCAB), st.lists(st.integers(0, VOCAB - 1), max_size=12))
def test_any_request_on_any_logits_picks_a_scored_token_or_fails_alone(request, scores, output):
    logits = torch.tensor(scores, dtype=torch.float32)
    generator = None if sampler.is_greedy(request) else torch.Generator().manual_seed(request.seed)
    try:
        cleaned = sampler.penalised(sampler.finite(logits), request, request.prompt_ids, output)
        token = sampler.choose(cleaned, request, generator)
    except GenerationError:
        assert not any(math.isfinite(s) or s == math.inf for s in scores), "refused though a token had a score"
        return
    assert 0 <= token < VOCAB
    assert not (math.isnan(scores[token]) or scores[token] == -math.inf), f"picked unscored token {token}"
    value, top = sampler.logprob_record(sampler.finite(logits), token, 3)
    assert math.isfinite(value) and value <= 0 and all(math.isfinite(v) for _, v in top)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(requests(), st.lists(st.floats(-30, 30), min_size=VOCAB, max_size=VOCAB))
def test_the_distribution_is_finite_and_sums_to_one(request, scores):
    probs = sampler.distribution(torch.tensor(scores, dtype=torch.float32), request)
    assert torch.isfinite(probs).all() and (probs >= 0).all()
    assert abs(float(probs.sum()) - 1) < 1e-4 or request.top_p < 1  # top-p zeroes the tail without renormalising
    assert float(probs.max()) > 0


def test_below_the_greedy_threshold_is_the_argmax_whatever_the_seed():
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    for temperature in (0.0, 1e-40, 5e-324, 9e-6):
        request = SamplingRequest([1], 4, temperature=temperature, seed=7)
        assert sampler.is_greedy(request) and sampler.choose(logits, request, torch.Generator()) == 1
    assert sampler.is_greedy(SamplingRequest([1], temperature=1.0, top_p=0.0))  # only the most likely token is left


def test_the_temperature_that_killed_the_worker_is_greedy_and_a_small_one_samples_the_best():
    """softmax(logits / 1e-40) overflowed to NaN and torch.multinomial raised; 1e-5 is sampled, safely, at vLLM's
    floor of 0.01 (it raises any smaller temperature to that), so both backends draw from the same distribution."""
    logits = torch.tensor([10.0, 30.0, 29.0])
    assert sampler.choose(logits, SamplingRequest([1], temperature=1e-40), torch.Generator().manual_seed(1)) == 1
    probs = sampler.distribution(logits, SamplingRequest([1], temperature=1e-5))
    assert probs[0] == 0.0 and probs[1] > 0.999999 and 0 < probs[2] < 1e-40  # exp(-100): tiny, not NaN
    for below in (1e-5, 1e-3, 0.0099):
        assert torch.equal(sampler.distribution(logits, SamplingRequest([1], temperature=below)),
                           sampler.distribution(logits, SamplingRequest([1], temperature=0.01)))


def test_filters_keep_what_they_promise():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert (sampler.distribution(logits, SamplingRequest([1], temperature=1.0, top_k=2)) > 0).tolist() == [True, True, False, False]
    # min_p 0.5: tokens below half the best one's probability go
    assert (sampler.distribution(logits, SamplingRequest([1], temperature=1.0, min_p=0.5)) > 0).tolist() == [True, True, False, False]
    assert (sampler.distribution(logits, SamplingRequest([1], temperature=1.0, top_p=0.6)) > 0).tolist() == [True, True, False, False]


def test_penalties_follow_vllm():
    logits = torch.tensor([2.0, -2.0, 1.0, 1.0])
    rep = sampler.penalised(logits.clone(), SamplingRequest([0], repetition_penalty=2.0), [0], [1])
    assert rep.tolist() == [1.0, -4.0, 1.0, 1.0]  # positive divided, negative multiplied; unseen untouched
    pen = sampler.penalised(logits.clone(), SamplingRequest([0], presence_penalty=0.5, frequency_penalty=0.25), [0], [2, 2, 3])
    assert pen.tolist() == [2.0, -2.0, 1.0 - 0.5 - 0.5, 1.0 - 0.5 - 0.25]  # the prompt does not count for these two


def test_a_row_of_nothing_but_nan_is_refused_not_sampled():
    with pytest.raises(GenerationError, match="no finite score"):
        sampler.finite(torch.full((4,), math.nan))
