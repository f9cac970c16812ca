"""The LitAPI both inference workers share (hf_worker.py, vllm_worker.py): Bearer auth, which LitServe calls
in the HTTP process, and the cancel queue through which the HTTP process names requests whose client left.
"""
from __future__ import annotations

import queue
import time

import litserve as ls
from fastapi import Request

from vietlegal.model.base import ResolvedBase
from vietlegal.serve.http.auth import check_bearer
from vietlegal.serve.workers.liveness import Liveness

CANCEL_MEMORY_SECONDS = 600  # a cancel can arrive before its request leaves the queue


class ChatAPI(ls.LitAPI):
    def __init__(self, adapters: dict[str, str], api_key: str | None, cancel_queue, liveness: Liveness | None = None,
                 whole: ResolvedBase | None = None, **litapi_kwargs):
        """`adapters`: worker key (the version hash) -> directory, for the versions served at start; `whole`: instead,
        a model loaded as it is (`--model`: a merged directory or a base alone), no adapter over it."""
        super().__init__(**litapi_kwargs)
        self.adapters_at = {key: str(path) for key, path in adapters.items()}
        self.whole = whole
        # Its tokenizer is the one every prompt uses (the whole model's own, when there is no adapter).
        self.adapter_dir = next(iter(self.adapters_at.values()), None)
        self.api_key, self.cancel_queue = api_key, cancel_queue
        self.liveness = liveness
        self._cancelled: dict[str, float] = {}

    def health(self) -> bool:
        """LitServe's /health asks this in the HTTP process: 503 while no live worker holds the model."""
        return self.liveness is None or self.liveness.alive()

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
