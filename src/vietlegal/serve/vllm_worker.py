"""GPU backend (`serve.backend: vllm`): vLLM's AsyncLLM with the LoRA adapter and continuous batching.

LitServe runs it with `enable_async=True` and one request per `predict` (its static batching
cannot be combined with async); vLLM batches continuously across all in-flight requests and
applies the adapter through a per-request `LoRARequest`. vLLM is imported only inside `setup`
and `predict`, so CPU machines never need it. The mapping from adapter settings to engine and
sampling arguments is plain Python and tested without vLLM; the engine itself is UNVERIFIED here
(no GPU in this project's test environment).
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

from vietlegal.errors import AdapterError
from vietlegal.model.sampling import SamplingRequest, vllm_sampling_kwargs
from vietlegal.serve.protocol import Piece
from vietlegal.serve.worker import ChatAPI

# vLLM's max_lora_rank accepts only these values (vllm.config.lora.MaxLoRARanks); its default is 16.
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
ADAPTER_NAME = "vietlegal"


def lora_rank_slot(rank: int) -> int:
    """The smallest max_lora_rank vLLM accepts that holds an adapter of this rank."""
    for slot in LORA_RANKS:
        if rank <= slot:
            return slot
    raise AdapterError(f"adapter_config.json: r={rank} is above vLLM's largest max_lora_rank {LORA_RANKS[-1]}; "
                       "retrain with a smaller train.lora_r")


def adapter_rank(adapter_dir: str | Path) -> int:
    """The adapter's LoRA rank (the largest, if ranks differ per module); refuses what vLLM cannot serve."""
    path = Path(adapter_dir) / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("modules_to_save"):
        raise AdapterError(f"{path}: modules_to_save={config['modules_to_save']} cannot be served by vLLM "
                           "(vllm#9280); retrain without it")
    return max([int(config.get("r", 8)), *map(int, (config.get("rank_pattern") or {}).values())])


def engine_kwargs(base_path: str, revision: str | None, adapter_dir: str | Path, context: int,
                  max_num_seqs: int, dtype: str = "auto") -> dict:
    """AsyncEngineArgs keyword arguments for the adapter's base with LoRA enabled."""
    return {
        "model": base_path,
        "revision": revision,
        "tokenizer": str(adapter_dir),  # the adapter's tokenizer: the one whose template built the prompt
        "enable_lora": True,
        "max_loras": 1,
        "max_lora_rank": lora_rank_slot(adapter_rank(adapter_dir)),
        "max_model_len": context,
        "max_num_seqs": max_num_seqs,
        "dtype": dtype,  # model.device's policy, as generate and perplexity load it
        "seed": 0,
    }


def sampling_kwargs(job: dict, end_ids: set[int]) -> dict:
    """SamplingParams keyword arguments for one queued job (the conversion is `model.sampling`'s, shared)."""
    return vllm_sampling_kwargs(SamplingRequest.from_payload(job), end_ids)


class VLLMChatAPI(ChatAPI):
    def __init__(self, *args, max_num_seqs: int = 64, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_num_seqs = max_num_seqs

    def setup(self, device: str) -> None:  # pragma: no cover - needs a GPU and vllm
        from vllm import AsyncEngineArgs
        from vllm.lora.request import LoRARequest
        from vllm.v1.engine.async_llm import AsyncLLM

        from transformers import AutoTokenizer

        from vietlegal.model import base as base_model
        from vietlegal.model import decoding
        from vietlegal.model.adapter import read_manifest
        from vietlegal.model.device import dtype_name, inference_dtype
        from vietlegal.serve.model_info import context_length

        manifest = read_manifest(self.adapter_dir)
        base = base_model.resolve(manifest.base_model, manifest.base_revision)
        context = context_length(base)
        tokenizer = AutoTokenizer.from_pretrained(self.adapter_dir)
        self.end_ids = decoding.end_token_ids(None, tokenizer)
        args = engine_kwargs(base.path, base.revision, self.adapter_dir, context, self.max_num_seqs,
                             dtype_name(inference_dtype("cuda")))
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**args))
        self.lora = LoRARequest(ADAPTER_NAME, 1, self.adapter_dir)

    async def predict(self, job: dict) -> AsyncIterator[Piece]:  # pragma: no cover - needs a GPU and vllm
        from vllm import SamplingParams

        params = SamplingParams(**sampling_kwargs(job, self.end_ids))
        prompt = {"prompt_token_ids": job["prompt_ids"]}
        sent, first = 0, True
        async for out in self.engine.generate(prompt, params, job["id"], lora_request=self.lora):
            if job["id"] in self.cancelled():
                await self.engine.abort(job["id"])
                return
            choice = out.outputs[0]
            piece = Piece(text=choice.text[sent:])
            sent = len(choice.text)
            if out.finished:
                piece.finish_reason = "length" if choice.finish_reason == "length" else "stop"
                piece.prompt_tokens, piece.completion_tokens = len(job["prompt_ids"]), len(choice.token_ids)
            if piece.text or piece.finish_reason or first:
                first = False
                yield piece

    async def encode_response(self, outputs: AsyncIterator[Piece]) -> AsyncIterator[str]:  # pragma: no cover
        async for piece in outputs:
            yield piece.encode()
