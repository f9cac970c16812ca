"""The LitAPI side: runs in LitServe's inference worker process.

`ChatAPI` holds what both backends share (Bearer auth, which LitServe calls in the HTTP process,
and the cancel queue). `HFChatAPI` is the CPU/GPU transformers backend: LitServe collects up to
`max_batch_size` requests within `batch_timeout`, and `predict` decodes them as one left-padded
batch through `vietlegal.generation`, yielding one `Piece` per request per flush.
"""
from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator

import litserve as ls
from fastapi import Request

from vietlegal.serve import configure_logging
from vietlegal.serve.auth import check_bearer
from vietlegal.serve.pieces import NOTHING, Piece

logger = logging.getLogger("vietlegal.serve")
FLUSH_SECONDS = 0.02  # coalesce per-token deltas: one message per request per 20 ms, not per token
CANCEL_MEMORY_SECONDS = 600  # a cancel can arrive before its request leaves the queue


class ChatAPI(ls.LitAPI):
    def __init__(self, adapter_dir: str, api_key: str | None, cancel_queue, **litapi_kwargs):
        super().__init__(**litapi_kwargs)
        self.adapter_dir, self.api_key, self.cancel_queue = str(adapter_dir), api_key, cancel_queue
        self._cancelled: dict[str, float] = {}

    def authorize(self, request: Request) -> None:
        check_bearer(request.url.path, request.headers.get("authorization"), self.api_key)

    def decode_request(self, request: dict) -> dict:
        return request  # validated and tokenized by the spec in the HTTP process

    def cancelled(self) -> set[str]:
        """Ids whose clients went away (drained from the cancel queue without blocking)."""
        now = time.monotonic()
        while True:
            try:
                self._cancelled[self.cancel_queue.get_nowait()] = now
            except (queue.Empty, OSError, ValueError):
                break
        for job_id in [j for j, t in self._cancelled.items() if now - t > CANCEL_MEMORY_SECONDS]:
            del self._cancelled[job_id]
        return set(self._cancelled)


class HFChatAPI(ChatAPI):
    def __init__(self, *args, cpu_threads: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.cpu_threads = cpu_threads

    def setup(self, device: str) -> None:
        import torch

        from vietlegal.adapter import load_for_inference
        from vietlegal.serve import model_info

        configure_logging("info")  # a spawned worker does not inherit the server's logging set-up
        on_gpu = str(device).startswith("cuda")
        if self.cpu_threads and not on_gpu:
            torch.set_num_threads(self.cpu_threads)  # tiny matrices: thread hand-offs cost more than they save
        model, _, _ = load_for_inference(self.adapter_dir, device=device, dtype=torch.bfloat16 if on_gpu else None)
        # Fold the LoRA weights into the base (unquantized here): same outputs, no extra matmuls per layer.
        self.model = model.merge_and_unload().eval()
        self.tokenizer = model_info.load(self.adapter_dir).tokenizer  # the one the HTTP side encodes with

    def predict(self, jobs: list[dict], context: list[dict]) -> Iterator[list[Piece | None]]:
        yield from decode_batch(self.model, self.tokenizer, jobs, self.cancelled)

    def encode_response(self, outputs: Iterator[list[Piece | None]], context: list[dict]) -> Iterator[list[str]]:
        for batch in outputs:
            yield [NOTHING if piece is None else piece.encode() for piece in batch]


def decode_batch(model, tokenizer, jobs: list[dict], cancelled) -> Iterator[list[Piece | None]]:
    """Decode jobs together; yield one list (a Piece or None per job) per flush.

    A job that cannot run gets an error Piece and the rest go on; a job whose id shows up in
    `cancelled()` is dropped from the batch at the next step.
    """
    from vietlegal import generation

    out: list[Piece | None] = [None] * len(jobs)
    runnable, requests = [], []
    context = generation.context_length(model)
    gone = cancelled()
    for k, job in enumerate(jobs):
        request = generation.Request(job["prompt_ids"], job["max_new_tokens"], job["temperature"], job["top_p"],
                                     job["stop"], job["seed"])
        try:
            generation.check(request, context)
        except generation.GenerationError as exc:
            out[k] = Piece(error=str(exc))
            continue
        if job["id"] in gone:
            out[k] = Piece(finish_reason=generation.CANCELLED)
            logger.info("cancelled id=%s (client gone) after completion_tokens=0", job["id"])
            continue
        runnable.append(k)
        requests.append(request)
    if any(p is not None for p in out) or not requests:
        yield out
        out = [None] * len(jobs)
    if not requests:
        return
    decoding = generation.stream(model, tokenizer, requests)
    rows = {jobs[k]["id"]: row for row, k in enumerate(runnable)}
    last_flush, first = time.monotonic(), True
    for deltas in decoding:
        finished = False
        for d in deltas:
            if not d.text and d.completion is None:
                continue
            k = runnable[d.index]
            piece = out[k] or Piece()
            piece.text += d.text
            if d.completion is not None:
                piece.finish_reason = d.finish_reason
                piece.prompt_tokens, piece.completion_tokens = d.completion.prompt_tokens, d.completion.completion_tokens
                rows.pop(jobs[k]["id"], None)
                finished = True
            out[k] = piece
        for job_id in cancelled() & rows.keys():
            row = rows.pop(job_id)
            decoding.cancel(row)
            logger.info("cancelled id=%s (client gone) after completion_tokens=%d", job_id, decoding.generated(row))
        now = time.monotonic()
        if first or finished or now - last_flush >= FLUSH_SECONDS:
            yield out
            out, last_flush, first = [None] * len(jobs), now, False
    if any(p is not None for p in out):
        yield out
