"""A strict stand-in for vLLM 0.33.0 where vLLM cannot run (no GPU): the classes, fields and signatures the
project uses, rejecting what the real ones reject. tests/model/test_vllm_contract.py proves it against the real
package (signatures equal, field names a subset, the same accept/reject verdicts on generated arguments).

    recorder = install(monkeypatch)   # `vllm` and the submodules the project imports, in sys.modules
    recorder.calls                    [("engine", kwargs), ("generate", prompt ids, SamplingParams, LoRARequest)...]
    recorder.answer = fn              fn(prompt_ids, params, lora_request) -> (text, token_ids, finish_reason)

Checked like the real engine: unknown keyword arguments (TypeError), SamplingParams' ranges (msgspec struct,
`_verify_args`), exactly one structured-output constraint, `LoRARequest(lora_name, lora_int_id >= 1, lora_path)`,
engine arguments against the model's config (max_lora_rank, dtype, gpu_memory_utilization, max_model_len), and at
admission (LLM.generate, AsyncLLM.generate) the prompt length, stop ids in the vocabulary, JSON schema nesting and
LoRA enabled. Not modelled: decoding itself (the answer function), CUDA memory, prefix caching.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
from collections.abc import Callable
from pathlib import Path

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
MAX_N = 16384  # VLLM_MAX_N_SEQUENCES
MAX_JSON_NESTING = 64
SAMPLING_FIELDS = (
    "n", "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature", "watermarking", "top_p", "top_k",
    "min_p", "seed", "stop", "stop_token_ids", "ignore_eos", "max_tokens", "min_tokens", "logprobs", "prompt_logprobs",
    "prompt_logprob_token_ids", "prompt_logprob_start", "logprob_token_ids", "flat_logprobs", "detokenize",
    "skip_special_tokens", "spaces_between_special_tokens", "include_stop_str_in_output", "output_kind",
    "stream_interval", "skip_clone", "output_text_buffer_length", "structured_outputs", "logit_bias",
    "allowed_token_ids", "extra_args", "bad_words", "skip_reading_prefix_cache", "thinking_token_budget",
    "repetition_detection", "routed_experts_prompt_start", "trace_decode_token_ids")
SAMPLING_DEFAULTS = {"n": 1, "presence_penalty": 0.0, "frequency_penalty": 0.0, "repetition_penalty": 1.0,
                     "temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "seed": None, "stop": None,
                     "stop_token_ids": None, "max_tokens": 16, "min_tokens": 0, "logprobs": None,
                     "prompt_logprobs": None, "detokenize": True, "skip_special_tokens": True,
                     "include_stop_str_in_output": False, "structured_outputs": None, "stream_interval": None}
# The EngineArgs fields the project passes and their neighbours (the real class has ~260).
ENGINE_FIELDS = ("model", "tokenizer", "revision", "tokenizer_revision", "dtype", "seed", "max_model_len",
                 "tensor_parallel_size", "max_num_seqs", "max_num_batched_tokens", "enable_lora", "max_loras",
                 "max_lora_rank", "max_cpu_loras", "gpu_memory_utilization", "enforce_eager", "enable_prefix_caching",
                 "trust_remote_code", "structured_outputs_config")


class VLLMValidationError(ValueError):
    pass


class SamplingParams:
    def __init__(self, **kwargs):
        for name in kwargs:
            if name not in SAMPLING_FIELDS:
                raise TypeError(f"Unexpected keyword argument {name!r}")
        self.kwargs = dict(kwargs)  # as the caller passed them
        for name, default in SAMPLING_DEFAULTS.items():
            setattr(self, name, kwargs.get(name, default))
        if 0 < self.temperature < 0.01:
            self.temperature = 0.01
        if self.seed == -1:
            self.seed = None
        self.stop = [] if self.stop is None else [self.stop] if isinstance(self.stop, str) else self.stop
        self.stop_token_ids = [] if self.stop_token_ids is None else list(dict.fromkeys(self.stop_token_ids))
        self._verify()
        if self.temperature < 1e-5:
            self.top_p, self.top_k, self.min_p = 1.0, 0, 0.0
            if self.n > 1:
                raise VLLMValidationError(f"n must be 1 when using greedy sampling, got {self.n}.")

    def _verify(self) -> None:
        checks = [
            (isinstance(self.n, int) and 1 <= self.n <= MAX_N, "n must be an int in [1, 16384]"),
            (-2.0 <= self.presence_penalty <= 2.0, "presence_penalty must be in [-2, 2]"),
            (-2.0 <= self.frequency_penalty <= 2.0, "frequency_penalty must be in [-2, 2]"),
            (math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0, "repetition_penalty must be > 0"),
            (math.isfinite(self.temperature) and 0.0 <= self.temperature <= 2.0, "temperature must be in [0, 2]"),
            (0.0 < self.top_p <= 1.0, "top_p must be in (0, 1]"),
            (self.top_k >= -1 and isinstance(self.top_k, int), "top_k must be 0 (disable), or at least 1"),
            (0.0 <= self.min_p <= 1.0, "min_p must be in [0, 1]"),
            (self.max_tokens is None or self.max_tokens >= 1, "max_tokens must be at least 1"),
            (self.min_tokens >= 0, "min_tokens must be >= 0"),
            (self.max_tokens is None or self.min_tokens <= self.max_tokens, "min_tokens must be <= max_tokens"),
            (self.stream_interval is None or self.stream_interval >= 1, "stream_interval must be at least 1"),
            (self.logprobs is None or self.logprobs == -1 or self.logprobs >= 0, "logprobs must be >= 0 or -1"),
            (all(isinstance(i, int) for i in self.stop_token_ids), "stop_token_ids must contain only integers"),
            (all(self.stop), "stop cannot contain an empty string"),
            (not self.stop or self.detokenize, "stop strings are only supported when detokenize is True"),
        ]
        for holds, message in checks:
            if not holds:
                raise VLLMValidationError(message)


@dataclasses.dataclass
class StructuredOutputsParams:
    json: str | dict | None = None
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    disable_any_whitespace: bool = False
    disable_additional_properties: bool = False
    whitespace_pattern: str | None = None
    structural_tag: str | None = None

    def __post_init__(self):
        count = sum(getattr(self, f) is not None for f in ("json", "regex", "choice", "grammar", "json_object",
                                                            "structural_tag"))
        if count != 1:
            raise VLLMValidationError(f"exactly one kind of structured outputs constraint, got {count}")


class LoRARequest:
    def __init__(self, lora_name: str, lora_int_id: int, lora_path: str = "", base_model_name: str | None = None,
                 load_inplace: bool = False, is_3d_lora_weight: bool = False):
        self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path
        self.base_model_name, self.load_inplace, self.is_3d_lora_weight = base_model_name, load_inplace, is_3d_lora_weight
        if self.lora_int_id < 1:
            raise ValueError(f"id must be > 0, got {self.lora_int_id}")
        assert self.lora_path, "lora_path cannot be empty"

    name = property(lambda self: self.lora_name)
    path = property(lambda self: self.lora_path)
    adapter_id = property(lambda self: self.lora_int_id)

    def __eq__(self, other) -> bool:  # by name, as vLLM's
        return isinstance(other, LoRARequest) and other.lora_name == self.lora_name

    def __hash__(self) -> int:
        return hash(self.lora_name)


@dataclasses.dataclass
class Config:
    max_model_len: int
    vocab_size: int
    enable_lora: bool


class EngineArgs:
    def __init__(self, **kwargs):
        for name in kwargs:
            if name not in ENGINE_FIELDS:
                raise TypeError(f"EngineArgs.__init__() got an unexpected keyword argument {name!r}")
        self.kwargs = dict(kwargs)

    def create_engine_config(self) -> Config:
        """What the real create_engine_config refuses, for a local model directory (this project's tests)."""
        k = self.kwargs
        config_file = Path(k.get("model", "")) / "config.json"
        if not config_file.is_file():
            raise ValueError(f"{k.get('model')!r}: no config.json (the stand-in loads local models only)")
        config = json.loads(config_file.read_text(encoding="utf-8"))
        longest = config["max_position_embeddings"]
        length = k.get("max_model_len") or longest
        checks = [
            (k.get("dtype", "auto") in DTYPES, f"dtype: input should be one of {DTYPES}"),
            (length <= longest, f"max_model_len ({length}) is greater than the derived max_model_len ({longest})"),
            (0 < k.get("gpu_memory_utilization", 0.92) <= 1, "gpu_memory_utilization must be in (0, 1]"),
            (k.get("max_num_seqs") is None or k["max_num_seqs"] >= 1, "max_num_seqs must be >= 1"),
            (not k.get("enable_lora") or k.get("max_lora_rank", 16) in LORA_RANKS,
             f"max_lora_rank: input should be one of {LORA_RANKS}"),
            (not k.get("enable_lora") or k.get("max_loras", 1) >= 1, "max_loras must be >= 1"),
        ]
        for holds, message in checks:
            if not holds:
                raise ValueError(message)
        return Config(length, config["vocab_size"], bool(k.get("enable_lora")))


class AsyncEngineArgs(EngineArgs):
    pass


def _nesting(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_nesting, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_nesting, value), default=0)
    return 0


def admit(config: Config, prompt_ids: list[int], params: SamplingParams, lora_request) -> None:
    """The engine's admission checks (vllm.v1.engine.input_processor) for a token prompt."""
    if not prompt_ids:
        raise VLLMValidationError("The decoder prompt cannot be empty")
    if len(prompt_ids) >= config.max_model_len:
        raise VLLMValidationError(f"The decoder prompt (length {len(prompt_ids)}) plus the requested output tokens "
                                  f"is longer than the maximum model length of {config.max_model_len}")
    if any(not 0 <= i < config.vocab_size for i in params.stop_token_ids):
        raise VLLMValidationError("stop_token_ids contain out-of-vocab token ids")
    structured = params.structured_outputs
    if structured is not None:
        schema = json.loads(structured.json) if isinstance(structured.json, str) else structured.json
        if schema is not None and _nesting(schema) > MAX_JSON_NESTING:
            raise VLLMValidationError("The JSON schema is nested too deeply: at most 64 levels")
        if structured.json_object is False:
            raise VLLMValidationError("structured_outputs.json_object must be True if set")
    if lora_request is not None and not config.enable_lora:
        raise VLLMValidationError(f"Got lora_request {lora_request} but LoRA is not enabled!")


@dataclasses.dataclass
class Logprob:
    """One position's entry in CompletionOutput.logprobs / RequestOutput.prompt_logprobs ({token id: Logprob})."""

    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclasses.dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None = None
    logprobs: object = None
    finish_reason: str | None = None
    stop_reason: object = None
    lora_request: LoRARequest | None = None


@dataclasses.dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: object
    outputs: list[CompletionOutput]
    finished: bool
    lora_request: LoRARequest | None = None


def default_answer(prompt_ids: list[int], params: SamplingParams, lora_request) -> tuple[str, list[int], str]:
    tag = "tuned" if lora_request is not None else "base"
    n = min(len(prompt_ids) % 4 + 1, params.max_tokens or 16)
    return f"{tag} Điều {n}", [7] * n, "length" if n == params.max_tokens else "stop"


class Recorder:
    def __init__(self):
        self.calls: list[tuple] = []
        self.answer: Callable = default_answer
        self.aborted: list[str] = []


def _prompt_ids(prompt) -> list[int]:
    if not isinstance(prompt, dict) or set(prompt) != {"prompt_token_ids"}:
        raise TypeError(f"the stand-in takes token prompts only ({{'prompt_token_ids': [...]}}), got {prompt!r}")
    return list(prompt["prompt_token_ids"])


def modules(recorder: Recorder) -> dict[str, types.ModuleType]:
    class LLM:
        def __init__(self, model: str, **kwargs):
            self.config = EngineArgs(model=model, **kwargs).create_engine_config()
            recorder.calls.append(("engine", {"model": model, **kwargs}))

        def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None, priority=None,
                     tokenization_kwargs=None, mm_processor_kwargs=None) -> list[RequestOutput]:
            ids = [_prompt_ids(p) for p in prompts]
            params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(ids)
            for one, p in zip(ids, params):
                admit(self.config, one, p, lora_request)
            recorder.calls.append(("generate", ids, params, lora_request))
            outputs = []
            for k, (one, p) in enumerate(zip(ids, params)):
                text, tokens, reason = recorder.answer(one, p, lora_request)
                outputs.append(RequestOutput(str(k), None, one, None, [CompletionOutput(0, text, tokens, None, None, reason)],
                                             True, lora_request))
            return outputs

    class AsyncLLM:
        def __init__(self, config: Config):
            self.config = config

        @staticmethod
        def from_engine_args(engine_args, start_engine_loop=True, usage_context=None, stat_loggers=None):
            if not isinstance(engine_args, AsyncEngineArgs):
                raise TypeError("from_engine_args takes an AsyncEngineArgs")
            recorder.calls.append(("engine", dict(engine_args.kwargs)))
            return AsyncLLM(engine_args.create_engine_config())

        async def generate(self, prompt, sampling_params, request_id, *, prompt_text=None, lora_request=None,
                           tokenization_kwargs=None, trace_headers=None, priority=0, data_parallel_rank=None,
                           session_id=None, kv_hints=None, reasoning_ended=None, reasoning_parser_kwargs=None):
            ids = _prompt_ids(prompt)
            admit(self.config, ids, sampling_params, lora_request)
            recorder.calls.append(("generate", [ids], [sampling_params], lora_request))
            text, tokens, reason = recorder.answer(ids, sampling_params, lora_request)
            for k in range(1, len(tokens) + 1):  # cumulative outputs, one token at a time, as vLLM streams
                if request_id in recorder.aborted:
                    return
                last = k == len(tokens)
                shown = text if last else text[: len(text) * k // len(tokens)]
                yield RequestOutput(request_id, None, ids, None,
                                    [CompletionOutput(0, shown, tokens[:k], None, None, reason if last else None)],
                                    last, lora_request)

        async def abort(self, request_id, internal=False) -> None:
            recorder.aborted.extend([request_id] if isinstance(request_id, str) else request_id)

    made = {name: types.ModuleType(name) for name in (
        "vllm", "vllm.sampling_params", "vllm.lora", "vllm.lora.request", "vllm.engine", "vllm.engine.arg_utils",
        "vllm.outputs", "vllm.logprobs", "vllm.v1", "vllm.v1.engine", "vllm.v1.engine.async_llm")}
    exports = {
        "vllm": {"LLM": LLM, "SamplingParams": SamplingParams, "AsyncEngineArgs": AsyncEngineArgs, "EngineArgs": EngineArgs},
        "vllm.sampling_params": {"SamplingParams": SamplingParams, "StructuredOutputsParams": StructuredOutputsParams},
        "vllm.lora.request": {"LoRARequest": LoRARequest},
        "vllm.engine.arg_utils": {"AsyncEngineArgs": AsyncEngineArgs, "EngineArgs": EngineArgs},
        "vllm.outputs": {"CompletionOutput": CompletionOutput, "RequestOutput": RequestOutput},
        "vllm.logprobs": {"Logprob": Logprob},
        "vllm.v1.engine": {"FINISH_REASON_STRINGS": ("stop", "length", "abort", "error", "repetition")},
        "vllm.v1.engine.async_llm": {"AsyncLLM": AsyncLLM},
    }
    for name, attributes in exports.items():
        for attribute, value in attributes.items():
            setattr(made[name], attribute, value)
    for name, module in made.items():  # submodules as attributes, as `import vllm.lora.request` leaves them
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(made[parent], child, module)
    return made


def install(monkeypatch) -> Recorder:
    """Put the stand-in into sys.modules for one test (pytest's monkeypatch undoes it); returns its recorder."""
    recorder = Recorder()
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    for name, module in modules(recorder).items():
        monkeypatch.setitem(sys.modules, name, module)
    return recorder
