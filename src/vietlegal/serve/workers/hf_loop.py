"""The HF backend's inference loop: continuous batching, no idle wait.

LitServe's batched loop waits `batch_timeout` for a batch to fill, even when nothing else is coming: one client
pays that window on every request. Here the worker blocks on the request queue only while nothing is decoding,
and starts the first request the moment it arrives; while a batch decodes, each step first takes what has
arrived since (up to `serve.max_batch_size` sequences in flight) and joins it to the running batch
(`decoding.Stream.add`), so batching gathers only what arrives while the model is busy.

    Decoder   the batch: requests in (checked; a bad one fails alone), one step at a time, Pieces out; control
              messages (load / unload an adapter) are applied in queue order, between steps
    HFLoop    LitServe's side: takes requests off the queue, 504s those that waited past serve.queue_timeout,
              sends each request's pieces, then its end
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from queue import Empty

from litserve.loops.base import _SENTINEL_VALUE, LitLoop
from litserve.utils import LitAPIStatus, LoopResponseType, PickleableHTTPException

from vietlegal.errors import GenerationError
from vietlegal.model import decoding
from vietlegal.serve.http.drain import stop_requested_by_sigterm
from vietlegal.serve.workers.hf_adapters import WorkerAdapters
from vietlegal.serve.log import logger
from vietlegal.serve.protocol.piece import Piece

FLUSH_SECONDS = 0.02  # coalesce per-token deltas: one message per request per 20 ms, not per token
IDLE_WAIT_SECONDS = 1.0  # how long an idle worker blocks on the queue before looking again

Send = Callable[[str, Piece | None], None]  # (request id, piece) or (request id, None) at its end


@dataclass
class _Job:
    id: str
    adapter: str | None = None
    pending: Piece = field(default_factory=Piece)
    last_flush: float = 0.0
    flushed: bool = False
    started: bool = False


class Decoder:
    """The requests decoding in one worker, as one batch that requests join and leave at every step."""

    def __init__(self, model, tokenizer, cancelled: Callable[[], set[str]], send: Send, adapters: WorkerAdapters | None = None):
        self.model, self.tokenizer, self.cancelled, self.send = model, tokenizer, cancelled, send
        self.adapters = adapters or WorkerAdapters(model, merged=True)
        self.stream = None
        self.jobs: dict[int, _Job] = {}  # stream index -> job

    @property
    def size(self) -> int:
        return len(self.jobs)

    def submit(self, payloads: list[dict]) -> None:
        """Queue payloads (the parser's ChatJob.payload()) to start at the next step; a request that cannot run is
        answered with an error piece, one whose client already left with "cancelled"; the others go on."""
        from vietlegal.model import decoding, sampling

        context, gone = decoding.context_length(self.model), self.cancelled()
        runnable = []
        for payload in payloads:
            if "control" in payload:
                self._control(payload)
                continue
            try:
                request = sampling.SamplingRequest.from_payload(payload)
                sampling.check(request, context)
                self.adapters.acquire(request.adapter)  # held until the request ends: its version stays loaded
            except GenerationError as exc:
                self._end(payload["id"], Piece(error=str(exc)))
                continue
            except KeyError:
                self._end(payload["id"], Piece(error=f"adapter {request.adapter} is not loaded in the worker"))
                continue
            except Exception as exc:  # noqa: BLE001 - a payload this worker cannot read fails alone
                logger.exception("request %s refused by the worker", payload.get("id"))
                self._end(payload["id"], Piece(error=f"{type(exc).__name__}: {exc}"))
                continue
            if payload["id"] in gone:
                logger.info("cancelled id=%s (client gone) after completion_tokens=0", payload["id"])
                self.adapters.release(request.adapter)
                self._end(payload["id"], Piece(finish_reason=decoding.CANCELLED))
                continue
            runnable.append((payload["id"], request))
        if not runnable:
            return
        try:
            requests = [r for _, r in runnable]
            if self.stream is None:
                self.stream = decoding.stream(self.model, self.tokenizer, requests)
                indices = list(range(len(requests)))
            else:
                indices = self.stream.add(requests)
        except Exception as exc:  # noqa: BLE001 - e.g. a grammar that compiled in the HTTP process but not here
            if not isinstance(exc, GenerationError):
                logger.exception("could not start %d request(s)", len(runnable))
            for job_id, request in runnable:
                self.adapters.release(request.adapter)
                self._end(job_id, Piece(error=str(exc)))
            return
        for index, (job_id, request) in zip(indices, runnable):
            self.jobs[index] = _Job(job_id, request.adapter)

    def _control(self, payload: dict) -> None:
        """Load or unload an adapter between steps; answered with a finished piece, or one carrying the error."""
        try:
            if payload["control"] == "load":
                self.adapters.load(payload["adapter"], payload["path"])
            elif payload["control"] == "unload":
                self.adapters.unload(payload["adapter"])
            else:
                raise ValueError(f"unknown control {payload['control']!r}")
        except Exception as exc:  # noqa: BLE001 - a bad adapter must not stop the worker; the HTTP side reports it
            logger.error("control %s %s failed: %s", payload.get("control"), payload.get("adapter"), exc)
            self._end(payload["id"], Piece(error=f"{type(exc).__name__}: {exc}"))
            return
        self._end(payload["id"], Piece(finish_reason="done"))

    def step(self) -> None:
        """One decoding step of everything in flight; pieces flushed per request (first text, every 20 ms, end).
        Whatever goes wrong fails the requests in flight (each gets its error), never the worker."""
        try:
            self._step()
        except Exception:  # noqa: BLE001 - a bug here must not take the server down: these requests fail, next
            logger.exception("decoding step failed; ending the %d request(s) in flight with an error", len(self.jobs))
            for job in self.jobs.values():
                self.adapters.release(job.adapter)
                self._end(job.id, Piece(error="the decoding step failed on the server (see its log)"))
            self.jobs.clear()
            self.stream = None

    def _step(self) -> None:
        try:
            deltas = next(self.stream)
        except StopIteration:
            self.stream = None
            return
        now = time.monotonic()
        for d in deltas:
            job = self.jobs.get(d.index)
            if job is None:
                continue
            if not job.started:  # the prompt's logprobs go with the request's first piece
                job.pending.prompt_logprobs, job.started = self.stream.rows[d.index].prompt_logprobs, True
            _gather(job.pending, d)
            if d.completion is not None:
                done = d.completion
                if done.finish_reason == decoding.ERROR:
                    logger.error("request %s failed in decoding: %s", job.id, done.error)
                    job.pending = Piece(error=f"generation failed: {done.error}")
                job.pending.finish_reason = None if job.pending.error else d.finish_reason
                job.pending.prompt_tokens, job.pending.completion_tokens = done.prompt_tokens, done.completion_tokens
                del self.jobs[d.index]
                self.adapters.release(job.adapter)
                self._end(job.id, job.pending)
            elif (job.pending.text or job.pending.logprobs) and (not job.flushed or now - job.last_flush >= FLUSH_SECONDS):
                self.send(job.id, job.pending)
                job.pending, job.last_flush, job.flushed = Piece(), now, True
        gone = self.cancelled()
        for index, job in list(self.jobs.items()):
            if job.id in gone:
                self.stream.cancel(index)  # its last delta ("cancelled") ends it at the next step
                logger.info("cancelled id=%s (client gone) after completion_tokens=%d", job.id, self.stream.generated(index))
        if not self.jobs:
            self.stream = None

    def _end(self, job_id: str, piece: Piece) -> None:
        self.send(job_id, piece)
        self.send(job_id, None)


def _gather(piece: Piece, d) -> None:
    """Add one step's delta to the piece being coalesced: its text, token and that token's logprob record."""
    piece.text += d.text
    if d.token_id >= 0 and d.finish_reason != decoding.CANCELLED:
        piece.token_ids.append(d.token_id)
        if d.logprob is not None:
            piece.logprobs = (piece.logprobs or []) + [d.logprob]


def decode_all(model, tokenizer, payloads: list[dict], cancelled: Callable[[], set[str]],
               adapters: WorkerAdapters | None = None) -> Iterator[tuple[str, Piece | None]]:
    """(request id, piece), then (request id, None) at its end, for payloads decoded together to the end."""
    sent: list[tuple[str, Piece | None]] = []
    decoder = Decoder(model, tokenizer, cancelled, lambda job_id, piece: sent.append((job_id, piece)), adapters)
    decoder.submit(payloads)
    while True:
        yield from sent
        sent.clear()
        if not decoder.size:
            return
        decoder.step()


class HFLoop(LitLoop):
    """LitServe's loop for HFChatAPI (sync `run`, called again and again by LitServe)."""

    def __init__(self):
        super().__init__()
        self.decoder: Decoder | None = None
        self.queues: dict[str, int] = {}  # request id -> its response queue
        self.stop_requested = None  # set in the worker process (drain.py): did SIGTERM ask it to stop?

    def run(self, lit_api, device, worker_id, request_queue, transport, workers_setup_status, callback_runner):
        if self.decoder is None:
            self.decoder = Decoder(lit_api.model, lit_api.tokenizer, lit_api.cancelled,
                                   lambda job_id, piece: self._send(transport, job_id, piece), lit_api.adapters)
            self.stop_requested = stop_requested_by_sigterm()
        busy = self.decoder.size > 0
        arrived = self._take(lit_api, request_queue, transport, block=not busy,
                             room=lit_api.max_batch_size - self.decoder.size)
        if arrived:
            self.decoder.submit(arrived)
        if self.decoder.size:
            self.decoder.step()
        elif not busy and self.stop_requested():  # idle, and the queue stayed empty for a wait: nothing is lost
            os._exit(0)  # what was sent has been flushed during that wait

    def _take(self, lit_api, request_queue, transport, block: bool, room: int) -> list[dict]:
        """What is in the queue (waiting for the first when idle), up to `room`; too-old requests get a 504."""
        taken = []
        while len(taken) < room:
            try:
                item = request_queue.get(timeout=IDLE_WAIT_SECONDS) if block and not taken else request_queue.get_nowait()
            except Empty:
                break
            if item == _SENTINEL_VALUE:
                break
            queue_id, uid, timestamp, payload = item
            self.queues[uid] = queue_id
            if lit_api.request_timeout not in (-1, False, None) and time.monotonic() - timestamp > lit_api.request_timeout:
                self.put_response(transport, queue_id, uid, PickleableHTTPException(504, "Request timed out"),
                                  LitAPIStatus.ERROR, LoopResponseType.STREAMING)
                self.queues.pop(uid)
                continue
            taken.append(payload)
        return taken

    def _send(self, transport, job_id: str, piece: Piece | None) -> None:
        queue_id = self.queues[job_id]
        if piece is None:
            self.put_response(transport, queue_id, job_id, "", LitAPIStatus.FINISH_STREAMING, LoopResponseType.STREAMING)
            self.queues.pop(job_id)
        else:
            self.put_response(transport, queue_id, job_id, piece.encode(), LitAPIStatus.OK, LoopResponseType.STREAMING)
