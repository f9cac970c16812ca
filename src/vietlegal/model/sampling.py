"""The one sampling request: what every decoder (the HF loop, vLLM) is asked to do, and its conversions.

    SamplingRequest(prompt_ids, max_new_tokens, temperature, top_p, stop, seed, json_schema, json_object)
      .as_payload() / from_payload()   the server's queue message (a plain dict of these fields)
      check(request, context)          the limits every backend shares (GenerationError naming the field)
      vllm_sampling_kwargs(...)        vLLM's SamplingParams keyword arguments

Adding a sampling parameter means adding a field here and reading it in each backend; the evaluation stages,
the server's parser and both workers all pass this type.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

from vietlegal.errors import GenerationError


@dataclass(frozen=True)
class SamplingRequest:
    prompt_ids: Sequence[int]
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy, repeatable
    top_p: float = 1.0
    stop: Sequence[str] = ()
    seed: int | None = None  # with temperature > 0: same seed, same sample
    json_schema: str | None = None  # response_format json_schema: the answer is JSON valid against it (compact text)
    json_object: bool = False  # response_format json_object: the answer is a JSON object
    adapter: str | None = None  # a server with several adapters: the worker's name for the weights (None: as loaded)

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
    if len(request.prompt_ids) >= context:
        raise GenerationError(
            f"prompt: {len(request.prompt_ids)} tokens does not fit the model's context of {context} tokens "
            "(leave room for at least one new token); shorten the conversation"
        )
    if request.max_new_tokens < 1:
        raise GenerationError(f"max_new_tokens: must be >= 1, got {request.max_new_tokens}")
    if not 0 <= request.temperature <= 2:
        raise GenerationError(f"temperature: must be in [0, 2], got {request.temperature}")
    if not 0 < request.top_p <= 1:
        raise GenerationError(f"top_p: must be in (0, 1], got {request.top_p}")


def vllm_sampling_kwargs(request: SamplingRequest, end_ids: set[int]) -> dict:
    """vllm.SamplingParams keyword arguments with the same meaning as the HF loop's decoding; a structure comes as
    the keyword arguments of vllm's StructuredOutputsParams (`model.vllm_engine.sampling_params` builds both)."""
    kwargs = {
        "max_tokens": request.max_new_tokens,
        "temperature": request.temperature,  # 0 is greedy in vLLM too
        "top_p": request.top_p,
        "seed": request.seed,
        "stop": list(request.stop) or None,
        "stop_token_ids": sorted(end_ids),
        "skip_special_tokens": True,
    }
    if request.json_schema is not None:
        kwargs["structured_outputs"] = {"json": json.loads(request.json_schema)}
    elif request.json_object:
        kwargs["structured_outputs"] = {"json_object": True}
    return kwargs
