"""Answers with the real vLLM (run by tests/helpers/gpu_packages.Oracle in the side environment): one JSON request per
line on stdin, one JSON answer per line on the original stdout (vLLM's log goes to stderr).

    {"op": "engine", "kwargs": {...}}        AsyncEngineArgs(**kwargs).create_engine_config(); kept for "request"
    {"op": "request", "payload", "end_ids", "lora": [name, id, path] | null, "prompt_ids"}
                                             the project's vllm_engine.sampling_params(...) with the real classes,
                                             then the engine's own admission check (InputProcessor.process_inputs)
    {"op": "construct", "cls", "kwargs"}     SamplingParams / StructuredOutputsParams / LoRARequest / EngineArgs raw
    {"op": "surface"}                        signatures and field names of what the project calls

Answers: {"ok": true, ...} or {"ok": false, "error": "<Type>: <message>"}.
"""
from __future__ import annotations

import dataclasses
import inspect

from tests.helpers.gpu_packages import answer_requests, take_stdout

CHANNEL = take_stdout()  # before vLLM is imported: whatever it prints goes to the log, never into the answers


class State:
    config = None
    processor = None


def engine(kwargs: dict) -> dict:
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.input_processor import InputProcessor

    config = AsyncEngineArgs(**kwargs).create_engine_config()
    State.config, State.processor = config, InputProcessor(config)
    return {"ok": True, "max_num_seqs": config.scheduler_config.max_num_seqs,
            "max_loras": config.lora_config.max_loras if config.lora_config else None,
            "max_lora_rank": config.lora_config.max_lora_rank if config.lora_config else None,
            "gpu_memory_utilization": config.cache_config.gpu_memory_utilization,
            "max_model_len": config.model_config.max_model_len, "dtype": str(config.model_config.dtype),
            "tokenizer": config.model_config.tokenizer, "seed": config.model_config.seed}


def request(payload: dict, end_ids: list[int], lora: list | None, prompt_ids: list[int] | None = None) -> dict:
    from vietlegal.model import vllm_engine
    from vietlegal.model.sampling import SamplingRequest

    sampling = SamplingRequest.from_payload(payload)
    params = vllm_engine.sampling_params(sampling, set(end_ids))
    lora_request = vllm_engine.lora_request(*lora) if lora else None
    State.processor.process_inputs("contract", {"prompt_token_ids": list(prompt_ids or sampling.prompt_ids)}, params,
                                   ("generate",), lora_request=lora_request)
    structured = params.structured_outputs
    return {"ok": True, "max_tokens": params.max_tokens, "temperature": params.temperature, "top_p": params.top_p,
            "seed": params.seed, "stop": params.stop, "stop_token_ids": params.stop_token_ids,
            "structured": None if structured is None else {f.name: getattr(structured, f.name)
                                                           for f in dataclasses.fields(structured) if f.init}}


def construct(cls: str, kwargs: dict) -> dict:
    from vllm import SamplingParams
    from vllm.engine.arg_utils import EngineArgs
    from vllm.lora.request import LoRARequest
    from vllm.sampling_params import StructuredOutputsParams

    if cls == "SamplingParams":
        if isinstance(kwargs.get("structured_outputs"), dict):
            kwargs["structured_outputs"] = StructuredOutputsParams(**kwargs["structured_outputs"])
        SamplingParams(**kwargs)
    elif cls == "StructuredOutputsParams":
        StructuredOutputsParams(**kwargs)
    elif cls == "LoRARequest":
        made = LoRARequest(**kwargs)
        return {"ok": True, "name": made.name, "path": made.path, "adapter_id": made.adapter_id}
    elif cls == "EngineArgs":
        EngineArgs(**kwargs).create_engine_config()
    else:
        raise ValueError(f"unknown class {cls}")
    return {"ok": True}


def parameters(fn) -> list[list]:
    """[name, kind, has a default] per parameter (self dropped)."""
    return [[p.name, p.kind.name, p.default is not inspect.Parameter.empty]
            for p in inspect.signature(fn).parameters.values() if p.name != "self"]


def surface() -> dict:
    import msgspec
    from vllm import LLM, SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs, EngineArgs
    from vllm.logprobs import Logprob
    from vllm.lora.request import LoRARequest
    from vllm.outputs import CompletionOutput, RequestOutput
    from vllm.sampling_params import StructuredOutputsParams
    from vllm.v1.engine import FINISH_REASON_STRINGS
    from vllm.v1.engine.async_llm import AsyncLLM

    return {"ok": True,
            "signatures": {"AsyncLLM.generate": parameters(AsyncLLM.generate), "AsyncLLM.abort": parameters(AsyncLLM.abort),
                           "AsyncLLM.from_engine_args": parameters(AsyncLLM.from_engine_args),
                           "LLM.generate": parameters(LLM.generate), "LLM.__init__": parameters(LLM.__init__),
                           "LoRARequest": parameters(LoRARequest)},
            "sampling_fields": [f for f in SamplingParams.__struct_fields__ if not f.startswith("_")],
            "structured_fields": [f.name for f in dataclasses.fields(StructuredOutputsParams) if f.init],
            "engine_fields": [f.name for f in dataclasses.fields(EngineArgs) if f.init],
            "async_engine_fields": [f.name for f in dataclasses.fields(AsyncEngineArgs) if f.init],
            "completion_fields": list(inspect.signature(CompletionOutput).parameters),
            "request_output_attributes": list(inspect.signature(RequestOutput).parameters),
            "logprob_fields": [f.name for f in dataclasses.fields(Logprob)],
            "finish_reasons": list(FINISH_REASON_STRINGS),
            "msgspec": msgspec.__version__}


def main() -> None:
    import vllm  # noqa: F401 - import once, before the first request (tens of seconds)

    answer_requests(CHANNEL, {"engine": engine, "request": request, "construct": construct, "surface": surface})


if __name__ == "__main__":
    main()
