"""LitServe's OpenAISpec, completed: what the stock spec leaves to the API author.

The stock spec (litserve 0.2.19) hard-codes finish_reason "stop", counts usage from whichever
item came last, drops stream_options and seed, answers errors as `{"detail"}` and validates
inside the batch (one bad request fails all). This subclass keeps LitServe's queue and worker
processes (the HF worker runs its own continuous-batching loop, hf_loop.py), and replaces the HTTP
side of the chat endpoint:

  POST /v1/chat/completions          stream false or true (SSE ending with `data: [DONE]`)
  POST /v1/chat/completions/stream   the seed's endpoint: same body, always streams
  GET  /v1/models                    the served adapters (each at its version), routes and the base
  POST /v1/load_lora_adapter         admin (vLLM's name and body): serve a directory as a name, or its next version
  POST /v1/unload_lora_adapter       admin: stop serving a name
  GET  /metrics                      Prometheus (requests, tokens, latency per version)

Requests are validated and tokenized here (see parsing.py); the worker receives prompt ids
and sampling parameters, and sends back `Piece`s. A client that goes away has its id put on
the cancel queue, and the worker drops that sequence from its batch.
"""
from __future__ import annotations

import asyncio
import json
import pickle
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator

from fastapi import Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from litserve.specs.openai import OpenAISpec
from litserve.utils import LitAPIStatus, ResponseBufferItem

from vietlegal.errors import AdapterError
from vietlegal.serve.catalog import Catalog, Target
from vietlegal.serve.limits import read_body
from vietlegal.serve.log import logger
from vietlegal.serve.parsing import ChatJob, Validator, admin_body
from vietlegal.serve.prometheus import Metrics, RequestRecord
from vietlegal.serve.protocol import ApiError, Piece
from vietlegal.serve.swap import Swapper
from vietlegal.serve.version import AdapterVersion, BaseVersion

CLIENT_CLOSED = 499  # nginx's code for "client closed request": logged, never sent


class ChatSpec(OpenAISpec):
    def __init__(self, validator: Validator, catalog: Catalog, max_body_bytes: int, cancel_queue, max_queued: int = 64,
                 admin_key: str | None = None):
        super().__init__()
        self.validator, self.catalog, self.max_body_bytes = validator, catalog, max_body_bytes
        self.cancel_queue, self.max_queued, self.admin_key = cancel_queue, max_queued, admin_key
        self.created = int(time.time())
        self._metrics: Metrics | None = None
        self._targets: dict[str, Target] = {}  # request id -> the version it resolved to, released when it closes
        self.swapper = Swapper(catalog, validator.tokenizer, self.control) if catalog is not None else None

    def __getstate__(self):
        # The inference worker gets a pickled copy: it needs neither the tokenizer, the catalog nor the metrics.
        state = super().__getstate__()
        state.update(validator=None, catalog=None, swapper=None, _metrics=None, _targets={})
        return state

    # --- LitServe hooks -------------------------------------------------------------------------
    def pre_setup(self, lit_api) -> None:
        super().pre_setup(lit_api)  # registers self.chat_completion and checks predict is a generator
        self.add_endpoint(self.api_path + "/stream", self.stream_completion, ["POST"])
        self.add_endpoint("/v1/models", self.models, ["GET"])
        self.add_endpoint("/v1/load_lora_adapter", self.load_adapter, ["POST"])
        self.add_endpoint("/v1/unload_lora_adapter", self.unload_adapter, ["POST"])
        self.add_endpoint("/metrics", self.prometheus, ["GET"])

    def populate_context(self, context: dict, request: dict) -> None:
        context["id"] = request["id"]

    def decode_request(self, request: dict, context_kwargs: dict | None = None) -> dict:
        return request

    @property
    def metrics(self) -> Metrics:
        if self._metrics is None:  # created in the HTTP process, on first use
            self._metrics = Metrics(lambda: self.request_queue.qsize())
        return self._metrics

    # --- endpoints ------------------------------------------------------------------------------
    async def chat_completion(self, request: Request) -> Response:  # overrides the stock endpoint
        return await self._complete(request, force_stream=False)

    async def stream_completion(self, request: Request) -> Response:
        return await self._complete(request, force_stream=True)

    async def models(self) -> JSONResponse:
        return JSONResponse({"object": "list", "data": self.catalog.models(self.created)})

    async def load_adapter(self, request: Request) -> Response:
        """vLLM's body {"lora_name", "lora_path"}; a name already served moves to the directory's version."""
        try:
            body = admin_body(await read_body(request, self.max_body_bytes), ("lora_name", "lora_path"), self.admin_key)
            served = await self.swapper.load(body["lora_name"], body["lora_path"])
        except ApiError as exc:
            return exc.response()
        except AdapterError as exc:
            return ApiError(400, str(exc), "lora_path", "invalid_adapter").response()
        return Response(f"Success: LoRA adapter '{served.name}' added successfully ({served.version.model_id}).",
                        media_type="text/plain")

    async def unload_adapter(self, request: Request) -> Response:
        try:
            body = admin_body(await read_body(request, self.max_body_bytes), ("lora_name",), self.admin_key)
            await self.swapper.unload(body["lora_name"])
        except ApiError as exc:
            return exc.response()
        except AdapterError as exc:
            return ApiError(500, str(exc), None, "internal_error").response()
        return Response(f"Success: LoRA adapter '{body['lora_name']}' removed successfully.", media_type="text/plain")

    async def prometheus(self) -> Response:
        return Response(self.metrics.exposition(), media_type="text/plain; version=0.0.4")

    # --- one request ----------------------------------------------------------------------------
    async def _complete(self, request: Request, force_stream: bool) -> Response:
        record = RequestRecord(f"chatcmpl-{uuid.uuid4().hex[:24]}")
        self.metrics.in_flight.inc()
        try:
            raw = await read_body(request, self.max_body_bytes)
            # Off the event loop: a long prompt's template + tokenization must not stall other streams.
            job = await asyncio.to_thread(self.validator.parse, raw, record.id, force_stream)
        except ApiError as exc:
            record.status = exc.status
            self._close(record)
            return exc.response()
        except Exception:
            record.status = 500
            self._close(record)
            raise
        self._targets[record.id] = job.target
        record.stream, record.prompt_tokens = job.stream, len(job.sampling.prompt_ids)
        record.model, record.route = job.target.version.model_id, job.target.route
        record.retrieved = job.retrieved_provisions
        if self.request_queue.qsize() >= self.max_queued:
            # Told at once to come back, rather than waiting up to serve.queue_timeout for a slot.
            self.metrics.rejected.labels("queue_full").inc()
            record.status = 429
            self._close(record)
            return queue_full(self.max_queued).response()
        pieces = self._submit(job)
        if job.stream:
            return StreamingResponse(self._sse(job, pieces, record), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Request-Id": job.id})
        return await self._json_unless_gone(job, pieces, record, request)

    def _submit(self, job: ChatJob) -> AsyncIterator[Piece]:
        return self._put(job.id, job.payload())

    def _put(self, job_id: str, payload: dict) -> AsyncIterator[Piece]:
        queue, event = deque(), asyncio.Event()
        self.response_buffer[job_id] = ResponseBufferItem(event=event, response_queue=queue)
        self.request_queue.put((self.response_queue_id, job_id, time.monotonic(), payload))
        return self._pieces(job_id, queue, event)

    async def control(self, payload: dict) -> Piece:
        """A control message (load / unload an adapter) through the request queue: the worker sees it in order with
        the requests, so a version is loaded before the first request for it arrives."""
        last = Piece()
        try:
            async for piece in self._put(payload["id"], payload):
                last = piece
        except ApiError as exc:
            return Piece(error=exc.message)
        return last

    async def _pieces(self, job_id: str, queue: deque, event: asyncio.Event) -> AsyncIterator[Piece]:
        try:
            async for data, status in self.data_streamer(queue, event, send_status=True):
                if status == LitAPIStatus.ERROR:
                    raise _worker_error(data)
                piece = Piece.decode(data)
                if piece is None:
                    continue
                if piece.error:
                    raise ApiError(500, f"generation failed: {piece.error}", None, "internal_error")
                yield piece
        finally:
            self.response_buffer.pop(job_id, None)

    async def _json_unless_gone(self, job: ChatJob, pieces, record: RequestRecord, request: Request) -> Response:
        """Collect the answer, but stop generating if the client disconnects while waiting."""
        collect = asyncio.ensure_future(self._collect(job, pieces, record))
        gone = asyncio.ensure_future(_disconnected(request))
        await asyncio.wait({collect, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not collect.done():
            collect.cancel()
            self._cancel(job.id)
            record.status = CLIENT_CLOSED
            self._close(record)
            return Response(status_code=CLIENT_CLOSED)
        gone.cancel()
        try:
            body = collect.result()
        except ApiError as exc:
            record.status = exc.status
            return exc.response()
        except Exception:
            record.status = 500
            raise
        finally:
            self._close(record)
        return JSONResponse(body, headers={"X-Request-Id": job.id})

    async def _collect(self, job: ChatJob, pieces, record: RequestRecord) -> dict:
        parts, last = [], Piece()
        async for piece in pieces:
            if piece.text:
                record.mark_first_token()
                parts.append(piece.text)
            last = piece
        self._account(record, last)
        return {
            "id": job.id, "object": "chat.completion", "created": int(time.time()), "model": job.target.version.model_id,
            "system_fingerprint": job.target.version.fingerprint,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(parts)},
                         "logprobs": None, "finish_reason": last.finish_reason}],
            "usage": _usage(last),
            **_retrieval(job),
        }

    async def _sse(self, job: ChatJob, pieces, record: RequestRecord) -> AsyncIterator[str]:
        chunk = _Chunks(job.id, job.target.version)
        done = False
        try:
            yield chunk.delta({"role": "assistant", "content": ""}, extra=_retrieval(job))
            last = Piece()
            async for piece in pieces:
                if piece.text:
                    record.mark_first_token()
                    yield chunk.delta({"content": piece.text})
                last = piece
            self._account(record, last)
            yield chunk.delta({}, last.finish_reason)
            if job.include_usage:
                yield chunk.usage(_usage(last))
            yield "data: [DONE]\n\n"
            done = True
        except ApiError as exc:
            record.status, done = exc.status, True
            yield exc.sse()
            yield "data: [DONE]\n\n"  # a stream always ends so, an in-band error included (like vLLM)
        except Exception as exc:  # noqa: BLE001 - the stream has started: report in-band, like vLLM
            record.status, done = 500, True
            logger.error("stream %s failed: %s", job.id, type(exc).__name__)
            yield ApiError(500, "internal server error", None, "internal_error").sse()
            yield "data: [DONE]\n\n"
        finally:  # also runs when Starlette cancels the stream because the client went away
            if not done:
                record.status = CLIENT_CLOSED
                self._cancel(job.id)
            self._close(record)

    # --- bookkeeping ----------------------------------------------------------------------------
    def _account(self, record: RequestRecord, last: Piece) -> None:
        record.completion_tokens, record.finish_reason = last.completion_tokens, last.finish_reason

    def _cancel(self, job_id: str) -> None:
        self.cancel_queue.put(job_id)

    def _close(self, record: RequestRecord) -> None:
        self.metrics.in_flight.dec()
        record.close(self.metrics)
        target = self._targets.pop(record.id, None)
        if target is not None:
            self.catalog.release(target)  # its version may be unloaded now, if no name serves it any more


def queue_full(max_queued: int) -> ApiError:
    return ApiError(429, f"the server is busy: {max_queued} requests are already waiting for the model "
                         "(serve.max_queued); retry after a second", None, "queue_full",
                    headers={"Retry-After": "1"})


class _Chunks:
    """`chat.completion.chunk` SSE events of one stream (same id, created, model, fingerprint)."""

    def __init__(self, job_id: str, version: AdapterVersion | BaseVersion):
        self.head = {"id": job_id, "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": version.model_id, "system_fingerprint": version.fingerprint}

    def delta(self, delta: dict, finish_reason: str | None = None, extra: dict | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _event({**self.head, "choices": [choice], "usage": None, **(extra or {})})

    def usage(self, usage: dict) -> str:
        return _event({**self.head, "choices": [], "usage": usage})


def _event(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def _retrieval(job: ChatJob) -> dict:
    """serve --rag: the provision ids the answer was grounded on ([] = no hit); nothing when retrieval is off."""
    return {} if job.retrieved_provisions is None else {"retrieved_provisions": job.retrieved_provisions}


def _usage(piece: Piece) -> dict:
    return {"prompt_tokens": piece.prompt_tokens, "completion_tokens": piece.completion_tokens,
            "total_tokens": piece.prompt_tokens + piece.completion_tokens}


def _worker_error(data: object) -> ApiError:
    """LitServe reports a timed-out or failed request as an exception object (maybe pickled)."""
    if isinstance(data, bytes):
        try:
            data = pickle.loads(data)
        except Exception:  # noqa: BLE001 - an unreadable error is still an error
            data = None
    status = getattr(data, "status_code", 500)
    if status == 504:
        return ApiError(504, "the request waited too long for a free batch slot (serve.queue_timeout); retry",
                        None, "queue_timeout")
    return ApiError(status if 400 <= status < 600 else 500, "generation failed on the server", None, "internal_error")


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body has already been read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
