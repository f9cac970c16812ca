"""GPU backend (`serve.backend: vllm`): vLLM's AsyncLLM with the LoRA adapters and continuous batching.

LitServe runs it with `enable_async=True` and one request per `predict` (its static batching
cannot be combined with async); vLLM batches continuously across all in-flight requests and
applies each request's adapter through its `LoRARequest` (one per served version, read by vLLM on first use;
`max_loras` and `max_lora_rank` come from what is served, serve.max_adapters and serve.max_lora_rank). vLLM is
imported only inside `setup`, so CPU machines never need it. The engine and sampling arguments come from
`model.vllm_engine` and `model.sampling`, shared with the offline evaluation path and tested without vLLM;
the engine itself is UNVERIFIED here (no GPU in this project's test environment).
"""
from __future__ import annotations

from collections.abc import AsyncIterator

from vietlegal.model.adapter import BASE_ADAPTER
from vietlegal.model.sampling import SamplingRequest
from vietlegal.model.vllm_engine import adapter_rank, engine_kwargs, lora_rank_slot, sampling_params
from vietlegal.serve.protocol import Piece
from vietlegal.serve.worker import ChatAPI


class VLLMChatAPI(ChatAPI):
    def __init__(self, *args, max_num_seqs: int = 64, tensor_parallel_size: int = 1, max_loras: int = 4,
                 max_lora_rank: int = 64, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_num_seqs, self.tensor_parallel_size = max_num_seqs, tensor_parallel_size
        self.max_loras, self.max_lora_rank = max_loras, max_lora_rank
        self.loras: dict[str, object] = {}  # worker key (version hash) -> LoRARequest
        self.next_lora_id = 1

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
        ranks = tuple(adapter_rank(path) for path in self.adapters_at.values()) + (self.max_lora_rank,)
        args = engine_kwargs(base.path, base.revision, self.adapter_dir, context, self.max_num_seqs,
                             dtype_name(inference_dtype("cuda")), self.tensor_parallel_size,
                             max_loras=max(self.max_loras, len(self.adapters_at)), ranks=ranks)
        self.rank_slot = args["max_lora_rank"]
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**args))
        self._lora_request = LoRARequest
        for key, path in self.adapters_at.items():
            self._load(key, path)

    def _load(self, key: str, path: str) -> None:
        """A LoRARequest for the version (vLLM reads the weights when a request first uses it)."""
        if lora_rank_slot(adapter_rank(path)) > self.rank_slot:
            raise ValueError(f"{path}: rank {adapter_rank(path)} is above this engine's max_lora_rank {self.rank_slot}"
                             "; raise serve.max_lora_rank and restart")
        self.loras[key] = self._lora_request(key, self.next_lora_id, path)
        self.next_lora_id += 1

    async def _control(self, job: dict) -> Piece:
        try:
            if job["control"] == "load":
                self._load(job["adapter"], job["path"])
            elif job["control"] == "unload":
                # Requests already holding the LoRARequest finish on it; vLLM evicts the weights when unused.
                self.loras.pop(job["adapter"], None)
        except Exception as exc:  # noqa: BLE001 - reported to the HTTP side, the worker goes on
            return Piece(error=f"{type(exc).__name__}: {exc}")
        return Piece(finish_reason="done")

    async def predict(self, job: dict) -> AsyncIterator[Piece]:  # pragma: no cover - needs a GPU and vllm
        if "control" in job:
            yield await self._control(job)
            return
        request = SamplingRequest.from_payload(job)
        params = sampling_params(request, self.end_ids)
        prompt = {"prompt_token_ids": job["prompt_ids"]}
        lora = None if request.adapter == BASE_ADAPTER else self.loras[request.adapter or next(iter(self.loras))]
        sent, first = 0, True
        async for out in self.engine.generate(prompt, params, job["id"], lora_request=lora):
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
