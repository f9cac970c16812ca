"""GPU backend (`serve.backend: vllm`): vLLM's AsyncLLM with the LoRA adapter and continuous batching.

LitServe runs it with `enable_async=True` and one request per `predict` (its static batching
cannot be combined with async); vLLM batches continuously across all in-flight requests and
applies the adapter through a per-request `LoRARequest`. vLLM is imported only inside `setup`
and `predict`, so CPU machines never need it. The engine and sampling arguments come from
`model.vllm_engine` and `model.sampling`, shared with the offline evaluation path and tested without vLLM;
the engine itself is UNVERIFIED here (no GPU in this project's test environment).
"""
from __future__ import annotations

from collections.abc import AsyncIterator

from vietlegal.model.sampling import SamplingRequest
from vietlegal.model.vllm_engine import engine_kwargs, sampling_params
from vietlegal.serve.protocol import Piece
from vietlegal.serve.worker import ChatAPI

ADAPTER_NAME = "vietlegal"


class VLLMChatAPI(ChatAPI):
    def __init__(self, *args, max_num_seqs: int = 64, tensor_parallel_size: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_num_seqs, self.tensor_parallel_size = max_num_seqs, tensor_parallel_size

    def setup(self, device: str) -> None:  # pragma: no cover - needs a GPU and vllm
        from vllm import AsyncEngineArgs
        from vllm.lora.request import LoRARequest
        from vllm.v1.engine.async_llm import AsyncLLM

        from transformers import AutoTokenizer

        from vietlegal.model import base as base_model
        from vietlegal.model import decoding
        from vietlegal.serve.drain import ignore_sigterm_in_worker

        ignore_sigterm_in_worker()
        from vietlegal.model.adapter import read_manifest
        from vietlegal.model.device import dtype_name, inference_dtype

        manifest = read_manifest(self.adapter_dir)
        base = base_model.resolve(manifest.base_model, manifest.base_revision)
        context = base_model.context_of(base)
        tokenizer = AutoTokenizer.from_pretrained(self.adapter_dir)
        self.end_ids = decoding.end_token_ids(None, tokenizer)
        args = engine_kwargs(base.path, base.revision, self.adapter_dir, context, self.max_num_seqs,
                             dtype_name(inference_dtype("cuda")), self.tensor_parallel_size)
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**args))
        self.lora = LoRARequest(ADAPTER_NAME, 1, self.adapter_dir)

    async def predict(self, job: dict) -> AsyncIterator[Piece]:  # pragma: no cover - needs a GPU and vllm
        params = sampling_params(SamplingRequest.from_payload(job), self.end_ids)
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
