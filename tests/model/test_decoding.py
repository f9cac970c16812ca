"""The batched generation core on the real tiny Llama: padding, end ids, budgets, stop strings, seeds, streams."""
from __future__ import annotations

import copy

import pytest
import torch

from vietlegal.model import chat, decoding
from vietlegal.model.sampling import SamplingRequest as Request


@pytest.fixture(scope="module")
def model(tiny_base):
    from transformers import AutoModelForCausalLM

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model decodes faster on one thread of a shared 2-core machine
    yield AutoModelForCausalLM.from_pretrained(tiny_base[0]).eval()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer(tiny_base):
    from vietlegal.model import base as base_model
    from vietlegal.params import TINY_MODEL_ID

    return base_model.load_tokenizer(base_model.resolve(TINY_MODEL_ID))


@pytest.fixture(scope="module")
def prompts(tokenizer, conversations):
    # Different lengths, so the batch really is left-padded.
    return [chat.encode_prompt(tokenizer, c[:2]) for c in conversations[:4]] + [
        chat.encode_prompt(tokenizer, [{"role": "user", "content": "Chào"}])
    ]


def test_batch_matches_one_at_a_time_and_hf_generate(model, tokenizer, prompts):
    assert len({len(p) for p in prompts}) > 1
    batched = decoding.generate(model, tokenizer, [Request(p, max_new_tokens=12) for p in prompts])
    for p, done in zip(prompts, batched):
        alone = decoding.generate(model, tokenizer, [Request(p, max_new_tokens=12)])[0]
        hf = model.generate(torch.tensor([p]), max_new_tokens=12, do_sample=False)[0, len(p):].tolist()
        assert done.token_ids == alone.token_ids
        assert done.token_ids == hf[: len(done.token_ids)]
        assert done.prompt_tokens == len(p)


def test_length_finish_counts_exactly(model, tokenizer, prompts):
    [done] = decoding.generate(model, tokenizer, [Request(prompts[0], max_new_tokens=7)])
    assert done.finish_reason == "length"
    assert done.completion_tokens == 7 == len(done.token_ids)
    assert done.text == tokenizer.decode(done.token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def test_end_token_stops_with_stop_and_is_counted_not_shown(model, tokenizer, prompts):
    [free] = decoding.generate(model, tokenizer, [Request(prompts[0], max_new_tokens=6)])
    # Declare the model's 3rd greedy token an end id: decoding must stop right there.
    ending = copy.copy(model)
    ending.generation_config = copy.deepcopy(model.generation_config)
    ending.generation_config.eos_token_id = [free.token_ids[2]]
    [done] = decoding.generate(ending, tokenizer, [Request(prompts[0], max_new_tokens=6)])
    assert done.finish_reason == "stop"
    assert done.token_ids == free.token_ids[:3]
    assert done.completion_tokens == 3
    assert done.text == tokenizer.decode(free.token_ids[:2], skip_special_tokens=True, clean_up_tokenization_spaces=False)


def test_llama31_end_tokens_are_all_end_ids(model, tokenizer):
    ids = decoding.end_token_ids(model, tokenizer)
    vocab = tokenizer.get_vocab()
    assert {vocab["<|eot_id|>"], vocab["<|eom_id|>"], vocab["<|end_of_text|>"]} <= ids
    assert tokenizer.pad_token_id not in ids


def test_stop_string_cuts_text_and_stream_never_leaks_it(model, tokenizer, prompts):
    [free] = decoding.generate(model, tokenizer, [Request(prompts[1], max_new_tokens=24)])
    stop = free.text[8:11]
    assert len(stop) == 3 and stop.strip()
    expected = free.text[: free.text.find(stop)]
    streamed, final = "", None
    for deltas in decoding.stream(model, tokenizer, [Request(prompts[1], max_new_tokens=24, stop=[stop])]):
        for d in deltas:
            streamed += d.text
            assert stop not in streamed
            final = d.completion or final
    assert final.finish_reason == "stop"
    assert final.text == expected == streamed


def test_stream_deltas_concatenate_to_the_completion(model, tokenizer, prompts):
    texts = [""] * len(prompts)
    finals = {}
    requests = [Request(p, max_new_tokens=5 + 3 * i) for i, p in enumerate(prompts)]
    for deltas in decoding.stream(model, tokenizer, requests):
        for d in deltas:
            texts[d.index] += d.text
            if d.completion:
                finals[d.index] = d.completion
    assert [finals[i].text for i in range(len(prompts))] == texts
    assert [finals[i].completion_tokens for i in range(len(prompts))] == [5 + 3 * i for i in range(len(prompts))]


def test_greedy_is_repeatable_whatever_the_batch(model, tokenizer, prompts):
    alone = decoding.generate(model, tokenizer, [Request(prompts[2], max_new_tokens=10)])[0]
    again = decoding.generate(model, tokenizer, [Request(prompts[2], max_new_tokens=10)])[0]
    crowd = decoding.generate(model, tokenizer, [Request(p, max_new_tokens=10) for p in prompts])[2]
    assert alone.token_ids == again.token_ids == crowd.token_ids


def test_seeded_sampling_is_repeatable_and_seeds_differ(model, tokenizer, prompts):
    def sample(seed, companions=()):
        reqs = [Request(prompts[0], max_new_tokens=16, temperature=1.0, seed=seed)] + list(companions)
        return decoding.generate(model, tokenizer, reqs)[0].token_ids

    first = sample(7)
    assert sample(7, [Request(prompts[1], max_new_tokens=4, temperature=1.0, seed=1)]) == first
    assert sample(8) != first


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    assert decoding.nucleus(probs.clone(), 0.7).tolist() == pytest.approx([0.5, 0.3, 0, 0])
    assert decoding.nucleus(probs.clone(), 0.1).tolist() == pytest.approx([0.5, 0, 0, 0])
    assert decoding.nucleus(probs.clone(), 1.0).tolist() == pytest.approx(probs.tolist())


def test_held_back_is_the_longest_possible_stop_prefix():
    assert decoding.held_back("abc Đi", ["Điều"]) == 2
    assert decoding.held_back("abc", ["Điều"]) == 0
    assert decoding.held_back("x#", ["##", "#!"]) == 1


def test_cancel_drops_one_sequence_and_the_rest_finish(model, tokenizer, prompts):
    stream = decoding.stream(model, tokenizer, [Request(p, max_new_tokens=10) for p in prompts[:3]])
    finals, steps = {}, 0
    for deltas in stream:
        steps += 1
        if steps == 2:
            stream.cancel(1)
        for d in deltas:
            if d.completion:
                finals[d.index] = d.completion
    assert finals[1].finish_reason == "cancelled"
    assert finals[1].completion_tokens == 2
    assert finals[0].finish_reason == finals[2].finish_reason == "length"
    assert finals[0].completion_tokens == 10


def test_budget_is_clipped_to_the_context(model, tokenizer):
    context = decoding.context_length(model)
    long_prompt = [100 + i % 50 for i in range(context - 3)]
    [done] = decoding.generate(model, tokenizer, [Request(long_prompt, max_new_tokens=50)])
    assert (done.finish_reason, done.completion_tokens) == ("length", 3)


@pytest.mark.parametrize(
    "request_, field",
    [
        (Request([], 5), "prompt_ids"),
        (Request([1] * 5000, 5), "prompt"),
        (Request([1, 2], -1), "max_new_tokens"),
        (Request([1, 2], 5, temperature=2.5), "temperature"),
        (Request([1, 2], 5, top_p=1.5), "top_p"),
        (Request([1, 2], 5, min_tokens=6), "min_tokens"),
        (Request([1, 2], 5, repetition_penalty=0.0), "repetition_penalty"),
    ],
)
def test_bad_requests_name_their_field(model, tokenizer, request_, field):
    with pytest.raises(decoding.GenerationError, match=f"^{field}"):
        decoding.generate(model, tokenizer, [request_])


def test_generate_with_batch_size_keeps_request_order(model, tokenizer, prompts):
    requests = [Request(p, max_new_tokens=4 + i) for i, p in enumerate(prompts)]
    seen = []
    done = decoding.generate(model, tokenizer, requests, batch_size=2, on_batch=seen.append)
    assert [c.completion_tokens for c in done] == [4 + i for i in range(len(prompts))]
    assert [c.prompt_tokens for c in done] == [len(p) for p in prompts]
    assert seen == [2, 2, 1]


def test_a_request_joining_a_running_batch_answers_as_it_would_alone(model, tokenizer, prompts):
    """Continuous batching: a request added while others decode starts at the next step, its prompt prefilled and
    its cache merged (left-padded) into the batch's; greedy and seeded answers are the ones it gets alone."""
    greedy = Request(prompts[2], max_new_tokens=10)
    sampled = Request(prompts[3], max_new_tokens=8, temperature=1.0, seed=5)
    alone = [decoding.generate(model, tokenizer, [r])[0] for r in (greedy, sampled)]
    first = [Request(prompts[0], max_new_tokens=12), Request(prompts[1], max_new_tokens=6)]
    first_alone = [decoding.generate(model, tokenizer, [r])[0] for r in first]
    stream = decoding.stream(model, tokenizer, first)
    finals, joined, steps = {}, [], 0
    for deltas in stream:
        steps += 1
        if steps in (2, 4):  # one while both run, one after the shorter may have ended
            joined += stream.add([greedy if steps == 2 else sampled])
        for d in deltas:
            if d.completion is not None:
                finals[d.index] = d.completion
    assert joined == [2, 3] and set(finals) == {0, 1, 2, 3}
    assert [finals[i].token_ids for i in joined] == [c.token_ids for c in alone]
    assert [finals[i].token_ids for i in (0, 1)] == [c.token_ids for c in first_alone]


def test_a_request_joining_after_the_batch_emptied_starts_a_new_one(model, tokenizer, prompts):
    stream = decoding.stream(model, tokenizer, [Request(prompts[0], max_new_tokens=1)])
    deltas = next(stream)
    assert deltas[0].finish_reason is not None
    [index] = stream.add([Request(prompts[1], max_new_tokens=3)])
    done = [d for step in stream for d in step if d.completion is not None]
    assert [d.index for d in done] == [index] and done[0].completion.completion_tokens <= 3


def test_max_new_tokens_zero_gives_the_prompt_logprobs_and_no_token(model, tokenizer, prompts):
    [done] = decoding.generate(model, tokenizer, [Request(prompts[0], 0, prompt_logprobs=2)])
    assert (done.finish_reason, done.completion_tokens, done.text, done.token_ids) == ("length", 0, "", [])
    assert done.prompt_logprobs[0] is None and len(done.prompt_logprobs) == len(prompts[0])
    # each record is the token's own log-probability given what precedes it, and the two best
    with torch.no_grad():
        full = torch.log_softmax(model(torch.tensor([prompts[0]])).logits[0].float(), -1)
    for t in (1, len(prompts[0]) - 1):
        value, top = done.prompt_logprobs[t]
        assert value == pytest.approx(float(full[t - 1, prompts[0][t]]), abs=1e-4) and len(top) == 2
        assert top[0][0] == int(full[t - 1].argmax())


def test_logprobs_are_reported_per_token_and_greedy_tokens_are_the_best(model, tokenizer, prompts):
    [done] = decoding.generate(model, tokenizer, [Request(prompts[1], 5, logprobs=3)])
    assert len(done.logprobs) == done.completion_tokens == 5
    for token, (value, top) in zip(done.token_ids, done.logprobs):
        assert top[0][0] == token and value == top[0][1] and len(top) == 3


def test_min_tokens_and_stop_token_ids(model, tokenizer, prompts):
    free = decoding.generate(model, tokenizer, [Request(prompts[2], 6)])[0]
    second = free.token_ids[1]
    stopped = decoding.generate(model, tokenizer, [Request(prompts[2], 6, stop_token_ids=[second])])[0]
    assert (stopped.finish_reason, stopped.token_ids) == ("stop", free.token_ids[:2])
    held = decoding.generate(model, tokenizer, [Request(prompts[2], 6, stop_token_ids=[second], min_tokens=3)])[0]
    assert second not in held.token_ids[:3] and held.completion_tokens >= 3


def test_an_exception_choosing_one_rows_token_fails_that_row_alone(model, tokenizer, prompts, monkeypatch):
    from vietlegal.model import sampler

    real = sampler.penalised

    def broken(logits, request, prompt, output):
        if request.presence_penalty == 1.5:
            raise RuntimeError("boom")
        return real(logits, request, prompt, output)

    monkeypatch.setattr(sampler, "penalised", broken)
    good, bad = Request(prompts[0], 4), Request(prompts[1], 4, presence_penalty=1.5)
    done = decoding.generate(model, tokenizer, [good, bad, good])
    assert [d.finish_reason for d in done] == ["length", "error", "length"]
    assert "RuntimeError: boom" in done[1].error and done[0].text == done[2].text


def test_a_forward_pass_that_raises_fails_its_rows_and_the_stream_takes_new_requests(model, tokenizer, prompts):
    stream = decoding.stream(model, tokenizer, [Request(prompts[0], 5)])
    next(stream)
    real, calls = stream._forward, []

    def once_broken(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA error: an illegal memory access")
        return real(*args, **kwargs)

    stream._forward = once_broken
    ended = [d for step in [next(stream)] for d in step if d.completion]
    assert [d.completion.finish_reason for d in ended] == ["error"] and "illegal memory" in ended[0].completion.error
    stream.add([Request(prompts[1], 3)])
    finished = [d.completion for step in stream for d in step if d.completion]
    assert [(c.finish_reason, c.completion_tokens) for c in finished] == [("length", 3)]
