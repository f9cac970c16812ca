"""The one sampling request: what every decoder (the HF loop, vLLM) is asked to do, and its conversions.

    SamplingRequest(prompt_ids, max_new_tokens, temperature, top_p, stop, seed, json_schema, json_object, adapter,
                    top_k, min_p, presence_penalty, frequency_penalty, repetition_penalty, stop_token_ids,
                    ignore_eos, min_tokens, logprobs, prompt_logprobs)
      .as_payload() / from_payload()   the server's queue message (a plain dict of these fields)
      check(request, context)          the limits every backend shares (GenerationError naming the field)
      vllm_sampling_kwargs(...)        vLLM's SamplingParams keyword arguments

Adding a sampling parameter means adding a field here, setting it in the server's protocol conversion
(vietlegal.serve.protocol.errors) and reading it in each backend (model.sampler / model.decoding, vllm_sampling_kwargs);
the evaluation stages, the server and both workers all pass this type.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

from vietlegal.errors import GenerationError

# Temperatures as vLLM 0.33 reads them (sampling_params.py), so both backends decode a request alike: below
# GREEDY_BELOW (its _SAMPLING_EPS) greedy; from there up to MIN_TEMPERATURE (its _MAX_TEMP, "may cause numerical
# errors") raised to MIN_TEMPERATURE. vLLM itself raises even 1e-40 to 0.01 and samples; it gets 0.0 for those here.
GREEDY_BELOW = 1e-5
MIN_TEMPERATURE = 0.01

INT64 = 2**63


@dataclass(frozen=True)
class SamplingRequest:
    prompt_ids: Sequence[int]
    max_new_tokens: int = 64  # 0: prompt only (completions' echo with prompt logprobs)
    temperature: float = 0.0  # below GREEDY_BELOW (0 included): greedy, repeatable
    top_p: float = 1.0  # 0 keeps only the most likely token (greedy)
    stop: Sequence[str] = ()
    seed: int | None = None  # with temperature > 0: same seed, same sample (any int64)
    json_schema: str | None = None  # response_format json_schema: the answer is JSON valid against it (compact text)
    json_object: bool = False  # response_format json_object: the answer is a JSON object
    adapter: str | None = None  # a server with several adapters: the worker's name for the weights (None: as loaded)
    top_k: int = 0  # 0 or -1: off
    min_p: float = 0.0  # drop tokens less likely than min_p x the most likely one
    presence_penalty: float = 0.0  # [-2, 2], once per token already in the output
    frequency_penalty: float = 0.0  # [-2, 2], per occurrence in the output
    repetition_penalty: float = 1.0  # > 0, over prompt and output tokens (1: off)
    stop_token_ids: Sequence[int] = ()  # end the answer on these ids too (the end-of-turn ids always do)
    ignore_eos: bool = False  # the end-of-turn ids do not end the answer (stop_token_ids still do)
    min_tokens: int = 0  # no end id and no stop before this many tokens
    logprobs: int | None = None  # per new token: its log-probability and the N most likely (0: its own only)
    prompt_logprobs: int | None = None  # the same for every prompt token after the first

    def as_payload(self) -> dict:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}

    @classmethod
    def from_payload(cls, payload: dict) -> SamplingRequest:
        return cls(**{f.name: payload[f.name] for f in dataclasses.fields(cls) if f.name in payload})


def check(request: SamplingRequest, context: int) -> None:
    """Raise GenerationError for a request that cannot run on a model with this context."""
    if not request.prompt_ids:
        raise GenerationError("prompt_ids: empty prompt")
    room = context - len(request.prompt_ids)
    if room < (1 if request.max_new_tokens else 0):
        raise GenerationError(
            f"prompt: {len(request.prompt_ids)} tokens does not fit the model's context of {context} tokens "
            "(leave room for at least one new token); shorten the conversation"
        )
    limits = [
        ("max_new_tokens", request.max_new_tokens >= 0, ">= 0"),
        ("temperature", 0 <= request.temperature <= 2, "in [0, 2]"),
        ("top_p", 0 <= request.top_p <= 1, "in [0, 1]"),
        ("top_k", request.top_k >= -1, "-1, 0 (off) or >= 1"),
        ("min_p", 0 <= request.min_p <= 1, "in [0, 1]"),
        ("presence_penalty", -2 <= request.presence_penalty <= 2, "in [-2, 2]"),
        ("frequency_penalty", -2 <= request.frequency_penalty <= 2, "in [-2, 2]"),
        ("repetition_penalty", 0 < request.repetition_penalty <= 2**24, "> 0"),
        ("min_tokens", 0 <= request.min_tokens <= max(request.max_new_tokens, 0), "in [0, max_new_tokens]"),
        ("seed", request.seed is None or -INT64 <= request.seed < INT64, "an int64"),
    ]
    for name, ok, rule in limits:
        if not ok:
            raise GenerationError(f"{name}: must be {rule}, got {getattr(request, name)}")


def vllm_sampling_kwargs(request: SamplingRequest, end_ids: set[int]) -> dict:
    """vllm.SamplingParams keyword arguments with the same meaning as the HF loop's decoding; a structure comes as
    the keyword arguments of vllm's StructuredOutputsParams (`model.vllm_engine.sampling_params` builds both).
    Fields at their default are left out (SamplingParams' own defaults are the same)."""
    # vLLM refuses top_p 0 (it keeps only the most likely token: greedy); it would raise a temperature below
    # GREEDY_BELOW to MIN_TEMPERATURE and sample, where the HF loop is greedy
    only_best = request.top_p <= 0
    greedy = only_best or request.temperature < GREEDY_BELOW
    kwargs = {
        "max_tokens": max(request.max_new_tokens, 1),  # 0 (prompt only): vLLM needs 1; the worker drops it
        "temperature": 0.0 if greedy else request.temperature,  # vLLM raises one below MIN_TEMPERATURE to it
        "top_p": 1.0 if only_best else request.top_p,
        # vLLM reads seed -1 as "no seed"; torch seeds are uint64 and wrap a negative one the same way, so the
        # unsigned form is the seed the HF loop's generator gets, for every int64 the spec allows.
        "seed": None if request.seed is None else request.seed % 2**64,
        "stop": list(request.stop) or None,
        # The end-of-turn ids stop the answer unless ignore_eos; a request's own stop_token_ids always do.
        "stop_token_ids": sorted(set(request.stop_token_ids) | (set() if request.ignore_eos else set(end_ids))),
        "skip_special_tokens": True,
    }
    optional = {"top_k": 0, "min_p": 0.0, "presence_penalty": 0.0, "frequency_penalty": 0.0, "repetition_penalty": 1.0,
                "ignore_eos": False, "min_tokens": 0, "logprobs": None, "prompt_logprobs": None}
    kwargs.update({name: getattr(request, name) for name, default in optional.items()
                   if getattr(request, name) != default})
    if request.json_schema is not None:
        kwargs["structured_outputs"] = {"json": json.loads(request.json_schema)}
    elif request.json_object:
        kwargs["structured_outputs"] = {"json_object": True}
    return kwargs
