"""The transformers backend (`serve.backend: hf`, CPU or GPU) in LitServe's inference worker process.

LitServe collects up to `max_batch_size` requests within `batch_timeout`, and `predict` decodes them as one
left-padded batch through `vietlegal.model.decoding`, yielding one `Piece` per request per flush.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator

from vietlegal.serve.log import configure_logging, logger
from vietlegal.serve.protocol import NOTHING, Piece
from vietlegal.serve.worker import ChatAPI

FLUSH_SECONDS = 0.02  # coalesce per-token deltas: one message per request per 20 ms, not per token


class HFChatAPI(ChatAPI):
    def __init__(self, *args, cpu_threads: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.cpu_threads = cpu_threads

    def setup(self, device: str) -> None:
        import torch

        from vietlegal.model.adapter import load_for_inference
        from vietlegal.model.device import inference_dtype
        from vietlegal.serve import model_info

        configure_logging("info")  # a spawned worker does not inherit the server's logging set-up
        if self.cpu_threads and not str(device).startswith("cuda"):
            torch.set_num_threads(self.cpu_threads)  # tiny matrices: thread hand-offs cost more than they save
        model, _, _ = load_for_inference(self.adapter_dir, device=device, dtype=inference_dtype(device))
        # Fold the LoRA weights into the base (unquantized here): same outputs, no extra matmuls per layer.
        self.model = model.merge_and_unload().eval()
        self.tokenizer = model_info.load(self.adapter_dir).tokenizer  # the one the HTTP side encodes with
        logger.info("inference worker pid=%d ready on %s", os.getpid(), device)

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
    from vietlegal.errors import GenerationError
    from vietlegal.model import decoding, sampling

    out: list[Piece | None] = [None] * len(jobs)
    runnable, requests = [], []
    context = decoding.context_length(model)
    gone = cancelled()
    for k, job in enumerate(jobs):
        request = sampling.SamplingRequest.from_payload(job)
        try:
            sampling.check(request, context)
        except GenerationError as exc:
            out[k] = Piece(error=str(exc))
            continue
        if job["id"] in gone:
            out[k] = Piece(finish_reason=decoding.CANCELLED)
            logger.info("cancelled id=%s (client gone) after completion_tokens=0", job["id"])
            continue
        runnable.append(k)
        requests.append(request)
    if any(p is not None for p in out) or not requests:
        yield out
        out = [None] * len(jobs)
    if not requests:
        return
    stream = decoding.stream(model, tokenizer, requests)
    rows = {jobs[k]["id"]: row for row, k in enumerate(runnable)}
    last_flush, first = time.monotonic(), True
    for deltas in stream:
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
            stream.cancel(row)
            logger.info("cancelled id=%s (client gone) after completion_tokens=%d", job_id, stream.generated(row))
        now = time.monotonic()
        if first or finished or now - last_flush >= FLUSH_SECONDS:
            yield out
            out, last_flush, first = [None] * len(jobs), now, False
    if any(p is not None for p in out):
        yield out
