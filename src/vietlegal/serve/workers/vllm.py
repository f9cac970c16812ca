"""GPU backend (`serve.backend: vllm`): vLLM's AsyncLLM with the LoRA adapters and continuous batching.

LitServe runs it with `enable_async=True` and one request per `predict` (its static batching
cannot be combined with async); vLLM batches continuously across all in-flight requests and
applies each request's adapter through its `LoRARequest` (one per served version, read by vLLM on first use;
`max_loras` and `max_lora_rank` come from what is served, serve.max_adapters and serve.max_lora_rank). vLLM is
imported only inside `setup`, so CPU machines never need it. A model served whole (`--model`: a merged directory, or
a base alone) is the engine's model itself, without `enable_lora`. The engine and sampling arguments come from
`model.vllm_engine` and `model.sampling`, shared with the offline evaluation path and tested without vLLM;
the engine itself is UNVERIFIED here (no GPU in this project's test environment).
"""
from __future__ import annotations

from collections.abc import AsyncIterator

from vietlegal.model.adapter import BASE_ADAPTER
from vietlegal.model.sampling import SamplingRequest
from vietlegal.model.vllm_engine import (adapter_rank, engine_kwargs, lora_rank_slot, lora_request, model_kwargs,
                                         sampling_params)
from vietlegal.serve.protocol.piece import Piece
from vietlegal.serve.workers.base import ChatAPI


class VLLMChatAPI(ChatAPI):
    def __init__(self, *args, max_num_seqs: int = 256, tensor_parallel_size: int = 1, max_loras: int = 4,
                 max_lora_rank: int = 64, gpu_memory_utilization: float = 0.92, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_num_seqs, self.tensor_parallel_size = max_num_seqs, tensor_parallel_size
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_loras, self.max_lora_rank = max_loras, max_lora_rank
        self.loras: dict[str, object] = {}  # worker key (version hash) -> LoRARequest
        self.next_lora_id = 1

    def setup(self, device: str) -> None:  # the engine needs a GPU: tests run it on tests/helpers/strict_vllm.py
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        from transformers import AutoTokenizer

        from vietlegal.model import base as base_model
        from vietlegal.model import decoding
        from vietlegal.serve.http.drain import ignore_sigterm_in_worker

        ignore_sigterm_in_worker()
        if self.liveness is not None:
            self.liveness.starting()
        from vietlegal.model.adapter import read_manifest
        from vietlegal.model.device import dtype_name, inference_dtype

        dtype = dtype_name(inference_dtype("cuda"))
        if self.whole is not None:
            tokenizer = base_model.load_tokenizer(self.whole)
            args = model_kwargs(self.whole.path, self.whole.revision, self.whole.path, base_model.context_of(self.whole),
                                self.max_num_seqs, dtype, self.tensor_parallel_size, self.gpu_memory_utilization)
        else:
            manifest = read_manifest(self.adapter_dir)
            base = base_model.resolve(manifest.base_model, manifest.base_revision)
            tokenizer = AutoTokenizer.from_pretrained(self.adapter_dir)
            ranks = tuple(adapter_rank(path) for path in self.adapters_at.values()) + (self.max_lora_rank,)
            args = engine_kwargs(base.path, base.revision, self.adapter_dir, base_model.context_of(base),
                                 self.max_num_seqs, dtype, self.tensor_parallel_size,
                                 max_loras=max(self.max_loras, len(self.adapters_at)), ranks=ranks,
                                 gpu_memory_utilization=self.gpu_memory_utilization)
            self.rank_slot = args["max_lora_rank"]
        self.end_ids = decoding.end_token_ids(None, tokenizer)
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**args))
        self._lora_request = lora_request  # vLLM's LoRARequest by its keyword names
        for key, path in self.adapters_at.items():
            self._load(key, path)
        if self.liveness is not None:
            self.liveness.ready()

    def _load(self, key: str, path: str) -> None:
        """A LoRARequest for the version (vLLM reads the weights when a request first uses it). Its lora_int_id is
        never reused, even when a key comes back: vLLM's prefix cache is keyed by it, and a reload under an old id
        serves blocks computed with the old weights (vllm#42125, #30931)."""
        if self.whole is not None:
            raise ValueError(f"this engine serves {self.whole.path} whole, without LoRA: it loads no adapter")
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
        lora = self.lora_for(request.adapter)
        reader = OutputReader(request)
        async for out in self.engine.generate(prompt, params, job["id"], lora_request=lora):
            if job["id"] in self.cancelled():
                await self.engine.abort(job["id"])
                return
            piece = reader.piece(out)
            if piece is not None:
                yield piece
            if piece is not None and (piece.finish_reason or piece.error):
                return

    def lora_for(self, adapter: str | None):
        """The request's LoRARequest: its version's, the first's when it names none, none for the base (or a model
        served whole, which the engine holds without LoRA)."""
        if adapter == BASE_ADAPTER or self.whole is not None:
            return None
        return self.loras[adapter or next(iter(self.loras))]

    async def encode_response(self, outputs: AsyncIterator[Piece]) -> AsyncIterator[str]:  # pragma: no cover
        async for piece in outputs:
            yield piece.encode()


# vLLM's finish reasons (vllm.v1.engine.FINISH_REASON_STRINGS) -> OpenAI's enum, or an error. Only "stop" and
# "length" are clean ends; "repetition" (vLLM's repetition detection, never asked for here) cut the answer short:
# reported as "length", the enum's "cut before its natural end"; "abort" and "error" are failures, not answers.
FINISH_REASONS = {"stop": "stop", "length": "length", "repetition": "length"}
FAILURES = {"abort": (503, "the engine aborted this request (it is pausing or shutting down); retry"),
            "error": (500, "the engine failed this request (a retryable internal error); retry")}


class OutputReader:
    """vLLM's cumulative RequestOutputs of one request -> Pieces (plain Python: tested without vLLM)."""

    def __init__(self, request: SamplingRequest):
        self.request, self.sent_text, self.sent_tokens, self.first = request, 0, 0, True

    def piece(self, out) -> Piece | None:
        choice = out.outputs[0]
        prompt_only = self.request.max_new_tokens == 0  # vLLM generated one token that nobody asked for
        tokens = [] if prompt_only else list(choice.token_ids)
        piece = Piece(text="" if prompt_only else choice.text[self.sent_text:], token_ids=tokens[self.sent_tokens:])
        if self.request.logprobs is not None and choice.logprobs is not None and not prompt_only:
            piece.logprobs = [record(step, token, self.request.logprobs)
                              for step, token in zip(choice.logprobs[self.sent_tokens:], piece.token_ids)]
        if self.first and self.request.prompt_logprobs is not None and out.prompt_logprobs is not None:
            piece.prompt_logprobs = [None if step is None else record(step, token, self.request.prompt_logprobs)
                                     for step, token in zip(out.prompt_logprobs, self.request.prompt_ids)]
            piece.prompt_logprobs[0] = None
        self.sent_text, self.sent_tokens = len(choice.text), len(tokens)
        if out.finished:
            reason = choice.finish_reason
            if reason in FAILURES:
                status, message = FAILURES[reason]
                return Piece(error=message, status=status)
            piece.finish_reason = "length" if prompt_only else FINISH_REASONS.get(reason, "stop")
            piece.prompt_tokens, piece.completion_tokens = len(self.request.prompt_ids), len(tokens)
        if piece.text or piece.finish_reason or piece.token_ids or self.first:
            self.first = False
            return piece
        return None


def record(step: dict, token: int, top: int) -> tuple[float, list[tuple[int, float]]]:
    """vLLM's {token id: Logprob(logprob, rank, decoded_token)} at one position -> (the token's logprob, the `top`
    best (id, logprob)), the HF loop's record (model.sampler.logprob_record)."""
    floor = -9999.0
    ranked = sorted(((i, max(lp.logprob, floor)) for i, lp in step.items()), key=lambda pair: -pair[1])
    best = ranked[:top]
    own = step.get(token)
    return (max(own.logprob, floor) if own is not None else floor), best
