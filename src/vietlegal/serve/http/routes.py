"""LitServe's OpenAISpec, completed: what the stock spec leaves to the API author.

The stock spec (litserve 0.2.19) hard-codes finish_reason "stop", counts usage from whichever
item came last, drops stream_options and seed, answers errors as `{"detail"}` and validates
inside the batch (one bad request fails all). This subclass keeps LitServe's queue and worker
processes (the HF worker runs its own continuous-batching loop, workers/hf_loop.py), and replaces the
HTTP side. Routes only move bytes: a body goes through protocol/convert.py (typed models -> jobs), the
jobs go on the queue, the pieces come back as protocol/responses.py shapes them.

  POST /v1/chat/completions          stream false or true (SSE ending with `data: [DONE]`)
  POST /v1/chat/completions/stream   the seed's endpoint: same body, always streams
  POST /v1/completions               text or token-id prompts, echo, logprobs, max_tokens 0 (lm-eval's log-likelihood)
  GET  /v1/models, /v1/models/{id}   the served adapters (each at its version), routes and the base
  POST /tokenize, /detokenize        vLLM's: a prompt or messages to token ids, and back
  POST /v1/load_lora_adapter         admin (vLLM's name and body): serve a directory as a name, or its next version
  POST /v1/unload_lora_adapter       admin: stop serving a name
  GET  /metrics                      Prometheus (requests, tokens, latency per version)

A client that goes away has its ids put on the cancel queue, and the worker drops those sequences from its batch.
"""
from __future__ import annotations

import asyncio
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
from vietlegal.serve.versions.catalog import Catalog, Target
from vietlegal.serve.http.limits import read_body
from vietlegal.serve.log import logger
from vietlegal.model import chat
from vietlegal.text import nfc
from vietlegal.serve.protocol import requests as rq
from vietlegal.serve.protocol import responses
from vietlegal.serve.protocol.convert import ChatJob, Job, Validator, _json_object, admin_body, validated
from vietlegal.serve.http.prometheus import Metrics, RequestRecord
from vietlegal.serve.protocol.errors import ApiError
from vietlegal.serve.protocol.piece import Piece
from vietlegal.serve.versions.swap import Swapper

CLIENT_CLOSED = 499  # nginx's code for "client closed request": logged, never sent


class ChatSpec(OpenAISpec):
    def __init__(self, validator: Validator, catalog: Catalog, max_body_bytes: int, cancel_queue, max_queued: int = 64,
                 admin_key: str | None = None, liveness=None):
        super().__init__()
        self.validator, self.catalog, self.max_body_bytes = validator, catalog, max_body_bytes
        self.cancel_queue, self.max_queued, self.admin_key = cancel_queue, max_queued, admin_key
        self.liveness = liveness  # workers/liveness.py: None in tests that build the spec alone
        self.tokens = responses.Tokens(validator.tokenizer) if validator is not None else None
        self.created = int(time.time())
        self._metrics: Metrics | None = None
        self._targets: dict[str, Target] = {}  # request id -> the version it resolved to, released when it closes
        self.swapper = Swapper(catalog, validator.tokenizer, self.control) if catalog is not None else None

    def __getstate__(self):
        # The inference worker gets a pickled copy: it needs neither the tokenizer, the catalog nor the metrics.
        state = super().__getstate__()
        state.update(validator=None, catalog=None, swapper=None, _metrics=None, _targets={}, tokens=None)
        return state

    # --- LitServe hooks -------------------------------------------------------------------------
    def pre_setup(self, lit_api) -> None:
        super().pre_setup(lit_api)  # registers self.chat_completion and checks predict is a generator
        self.add_endpoint(self.api_path + "/stream", self.stream_completion, ["POST"])
        self.add_endpoint("/v1/completions", self.text_completion, ["POST"])
        self.add_endpoint("/v1/models", self.models, ["GET"])
        self.add_endpoint("/v1/models/{model_id:path}", self.model, ["GET"])
        self.add_endpoint("/tokenize", self.tokenize, ["POST"])
        self.add_endpoint("/detokenize", self.detokenize, ["POST"])
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

    async def text_completion(self, request: Request) -> Response:
        return await self._complete(request, force_stream=False, kind="completion")

    async def models(self) -> JSONResponse:
        return JSONResponse({"object": "list", "data": self.catalog.models(self.created)})

    async def model(self, model_id: str) -> JSONResponse:
        for entry in self.catalog.models(self.created):
            if entry["id"] == model_id:
                return JSONResponse(entry)
        try:
            target = self.catalog.resolve(model_id)  # a pinned version id, or the alias
        except ApiError as exc:
            return exc.response()
        return JSONResponse({"id": model_id, "object": "model", "created": self.created, "owned_by": "vietlegal",
                             "root": target.version.model_id, "parent": self.catalog.base.model_id,
                             "max_model_len": self.catalog.context})

    async def tokenize(self, request: Request) -> Response:
        """vLLM's body and answer: {prompt} or {messages} -> {count, max_model_len, tokens, token_strs}."""
        try:
            body = validated(rq.TokenizeRequest, _json_object(await read_body(request, self.max_body_bytes)))
            if (body.prompt is None) == (body.messages is None):
                raise ApiError(400, "prompt or messages: give exactly one", "prompt", "invalid_value")
            self.catalog.resolve(body.model)
            tokenizer = self.validator.tokenizer
            if body.prompt is not None:
                ids = tokenizer(nfc(body.prompt), add_special_tokens=body.add_special_tokens is not False)["input_ids"]
            else:
                messages = self.validator._messages(body.messages)
                text = chat.render(tokenizer, messages, body.add_generation_prompt is not False)
                ids = tokenizer(text, add_special_tokens=bool(body.add_special_tokens))["input_ids"]
        except ApiError as exc:
            return exc.response()
        strs = [self.tokens.text(i) for i in ids] if body.return_token_strs else None
        return JSONResponse({"count": len(ids), "max_model_len": self.catalog.context, "tokens": ids,
                             "token_strs": strs})

    async def detokenize(self, request: Request) -> Response:
        try:
            body = validated(rq.DetokenizeRequest, _json_object(await read_body(request, self.max_body_bytes)))
            self.catalog.resolve(body.model)
            if any(t >= self.validator.vocab for t in body.tokens):
                raise ApiError(400, f"tokens: ids must be below the vocabulary size {self.validator.vocab}", "tokens",
                               "invalid_value")
        except ApiError as exc:
            return exc.response()
        return JSONResponse({"prompt": self.validator.tokenizer.decode(body.tokens)})

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
    async def _complete(self, request: Request, force_stream: bool, kind: str = "chat") -> Response:
        record = RequestRecord(("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24])
        self.metrics.in_flight.inc()
        try:
            raw = await read_body(request, self.max_body_bytes)
            parse = self.validator.parse if kind == "chat" else self.validator.parse_completion
            args = (raw, record.id, force_stream) if kind == "chat" else (raw, record.id)
            # Off the event loop: a long prompt's template + tokenization must not stall other streams.
            job = await asyncio.to_thread(parse, *args)
            if self.liveness is not None and not self.liveness.alive():
                self.catalog.release(job.target)
                raise worker_down()
        except ApiError as exc:
            record.status = exc.status
            self._close(record)
            return exc.response()
        except Exception:
            record.status = 500
            self._close(record)
            raise
        self._targets[record.id] = job.target
        record.stream, record.prompt_tokens = job.stream, sum(len(p.prompt_ids) for p in job.prompts or [job.sampling])
        record.model, record.route = job.target.version.model_id, job.target.route
        record.retrieved = job.retrieved_provisions
        if self.request_queue.qsize() >= self.max_queued:
            # Told at once to come back, rather than waiting up to serve.queue_timeout for a slot.
            self.metrics.rejected.labels("queue_full").inc()
            record.status = 429
            self._close(record)
            return queue_full(self.max_queued).response()
        pieces = self._submit(job)
        answer = ChatAnswer(job, self.tokens) if kind == "chat" else CompletionAnswer(job, self.tokens)
        if job.stream:
            return StreamingResponse(self._sse(job, answer, pieces, record), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Request-Id": job.id})
        return await self._json_unless_gone(job, answer, pieces, record, request)

    def _submit(self, job: Job) -> AsyncIterator[tuple[int, Piece]]:
        """(choice index, piece) of every choice, as they arrive."""
        streams = [self._put(payload["id"], payload) for payload in job.payloads()]
        return _merged(streams)

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

    def fail_in_flight(self, message: str) -> int:
        """The worker that held these requests died: each gets a 503 (or an in-band error) now, and its id goes on
        the cancel queue so that a new worker never decodes it for nobody."""
        failed = 0
        for job_id, item in list(self.response_buffer.items()):
            item.response_queue.append((Piece(error=message, status=503).encode(), LitAPIStatus.OK))
            item.event.set()
            self._cancel(job_id)
            failed += 1
        return failed

    async def _pieces(self, job_id: str, queue: deque, event: asyncio.Event) -> AsyncIterator[Piece]:
        try:
            async for data, status in self.data_streamer(queue, event, send_status=True):
                if status == LitAPIStatus.ERROR:
                    raise _worker_error(data)
                piece = Piece.decode(data)
                if piece is None:
                    continue
                if piece.error:
                    if piece.status == 503:
                        raise ApiError(503, piece.error, None, "service_unavailable", headers={"Retry-After": "1"})
                    raise ApiError(500, piece.error if piece.error.startswith("generation failed")
                                   else f"generation failed: {piece.error}", None, "internal_error")
                yield piece
                if piece.finish_reason is not None:
                    return
        finally:
            self.response_buffer.pop(job_id, None)

    async def _json_unless_gone(self, job: Job, answer, pieces, record: RequestRecord, request: Request) -> Response:
        """Collect the answer, but stop generating if the client disconnects while waiting."""
        collect = asyncio.ensure_future(self._collect(answer, pieces, record))
        gone = asyncio.ensure_future(_disconnected(request))
        await asyncio.wait({collect, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not collect.done():
            collect.cancel()
            for job_id in job.choice_ids():
                self._cancel(job_id)
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

    async def _collect(self, answer, pieces, record: RequestRecord) -> dict:
        async for index, piece in pieces:
            if piece.text:
                record.mark_first_token()
            answer.choices[index].add(piece)
        self._account(record, answer)
        return answer.body()

    async def _sse(self, job: Job, answer, pieces, record: RequestRecord) -> AsyncIterator[str]:
        done = False
        try:
            for first in answer.opening():
                yield first
            async for index, piece in pieces:
                if piece.text:
                    record.mark_first_token()
                answer.choices[index].add(piece)
                for chunk in answer.delta(index, piece):
                    yield chunk
            self._account(record, answer)
            if job.include_usage:
                yield answer.usage_chunk()
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
                for job_id in job.choice_ids():
                    self._cancel(job_id)
            self._close(record)

    # --- bookkeeping ----------------------------------------------------------------------------
    def _account(self, record: RequestRecord, answer) -> None:
        record.completion_tokens = sum(c.last.completion_tokens for c in answer.choices)
        record.finish_reason = answer.choices[0].last.finish_reason

    def _cancel(self, job_id: str) -> None:
        self.cancel_queue.put(job_id)

    def _close(self, record: RequestRecord) -> None:
        self.metrics.in_flight.dec()
        record.close(self.metrics)
        target = self._targets.pop(record.id, None)
        if target is not None:
            self.catalog.release(target)  # its version may be unloaded now, if no name serves it any more


def worker_down() -> ApiError:
    return ApiError(503, "the inference worker is restarting (it stopped unexpectedly); retry in a few seconds", None,
                    "worker_restarting", headers={"Retry-After": "2"})


async def _merged(streams: list[AsyncIterator[Piece]]) -> AsyncIterator[tuple[int, Piece]]:
    """Pieces of several choices as they come (one choice: straight through, no task)."""
    if len(streams) == 1:
        async for piece in streams[0]:
            yield 0, piece
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(index: int, stream) -> None:
        try:
            async for piece in stream:
                await queue.put((index, piece, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
            await queue.put((index, None, exc))
            return
        await queue.put((index, None, None))

    tasks = [asyncio.ensure_future(pump(i, stream)) for i, stream in enumerate(streams)]
    try:
        open_streams = len(tasks)
        while open_streams:
            index, piece, exc = await queue.get()
            if exc is not None:
                raise exc
            if piece is None:
                open_streams -= 1
                continue
            yield index, piece
    finally:
        for task in tasks:
            task.cancel()


class ChatAnswer:
    """A chat completion being answered: its choices, and the chunks or body they make (protocol/responses.py)."""

    def __init__(self, job: Job, tokens: responses.Tokens):
        self.job, self.tokens = job, tokens
        self.choices = [responses.Choice(i) for i in range(job.n)]
        self.head = responses.head(job.id, "chat.completion.chunk" if job.stream else "chat.completion",
                                   job.target.version)

    def body(self) -> dict:
        return {**self.head, "choices": [
            {"index": c.index, "message": responses.chat_message(c.text, self.job.tool, c.call_id),
             "logprobs": self.tokens.chat_logprobs(c.tokens, c.records if self.job.logprobs is not None else None),
             "finish_reason": c.last.finish_reason} for c in self.choices],
            "usage": self.usage(), **_retrieval(self.job)}

    def usage(self) -> dict:
        return responses.usage(len(self.job.sampling.prompt_ids), sum(c.last.completion_tokens for c in self.choices))

    def opening(self) -> list[str]:
        content = "" if self.job.tool is None else None  # a tool call's arguments come as tool_calls deltas
        return [self._chunk(c.index, {"role": "assistant", "content": content}, extra=_retrieval(self.job))
                for c in self.choices]

    def delta(self, index: int, piece: Piece) -> list[str]:
        out = []
        if piece.text or piece.logprobs:
            logprobs = (self.tokens.chat_logprobs(piece.token_ids, piece.logprobs)
                        if self.job.logprobs is not None else None)
            out.append(self._chunk(index, self._content(index, piece.text), logprobs=logprobs))
        if piece.finish_reason is not None:
            out.append(self._chunk(index, {}, piece.finish_reason))
        return out

    def _content(self, index: int, text: str) -> dict:
        if self.job.tool is None:
            return {"content": text}
        c = self.choices[index]
        first, c.called = not c.called, True
        return responses.tool_call_delta(c.call_id if first else None, self.job.tool, text)

    def usage_chunk(self) -> str:
        return responses.event({**self.head, "choices": [], "usage": self.usage()})

    def _chunk(self, index: int, delta: dict, finish_reason: str | None = None, extra: dict | None = None,
               logprobs: dict | None = None) -> str:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
        return responses.event({**self.head, "choices": [choice], "usage": None, **(extra or {})})


class CompletionAnswer:
    """A /v1/completions answer: n choices per prompt, the prompt echoed (with its logprobs) when asked."""

    def __init__(self, job: Job, tokens: responses.Tokens):
        self.job, self.tokens = job, tokens
        self.choices = [responses.Choice(i) for i in range(job.n * len(job.prompts))]
        self.head = responses.head(job.id, "text_completion", job.target.version)

    def _prompt(self, index: int):
        return self.job.prompts[index // self.job.n], self.job.prompt_texts[index // self.job.n]

    def _logprobs(self, c: responses.Choice) -> dict | None:
        if self.job.logprobs is None:
            return None
        request, text = self._prompt(c.index)
        if not self.job.echo:
            return self.tokens.completion_logprobs(c.tokens, c.records)
        prompt_records = c.prompt_records or [None] * len(request.prompt_ids)
        return self.tokens.completion_logprobs(list(request.prompt_ids) + c.tokens, prompt_records + c.records)

    def body(self) -> dict:
        choices = []
        for c in self.choices:
            text = (self._prompt(c.index)[1] if self.job.echo else "") + c.text
            choices.append({"index": c.index, "text": text, "logprobs": self._logprobs(c),
                            "finish_reason": c.last.finish_reason})
        return {**self.head, "choices": choices, "usage": self.usage()}

    def usage(self) -> dict:
        return responses.usage(sum(len(p.prompt_ids) for p in self.job.prompts),
                               sum(c.last.completion_tokens for c in self.choices))

    def opening(self) -> list[str]:
        return []

    def delta(self, index: int, piece: Piece) -> list[str]:
        c = self.choices[index]
        echo = self.job.echo and not c.echoed  # the prompt goes with the choice's first piece
        text, logprobs = piece.text, None
        if self.job.logprobs is not None:
            logprobs = self.tokens.completion_logprobs(piece.token_ids, piece.logprobs or [])
        if echo:
            c.echoed = True
            request, prompt = self._prompt(index)
            text = prompt + text
            if self.job.logprobs is not None:
                records = (piece.prompt_logprobs or [None] * len(request.prompt_ids)) + (piece.logprobs or [])
                logprobs = self.tokens.completion_logprobs(list(request.prompt_ids) + piece.token_ids, records)
        if not text and piece.finish_reason is None and not logprobs:
            return []
        choice = {"index": index, "text": text, "logprobs": logprobs, "finish_reason": piece.finish_reason}
        return [responses.event({**self.head, "choices": [choice]})]  # no `usage: null`: the spec's usage is an object

    def usage_chunk(self) -> str:
        return responses.event({**self.head, "choices": [], "usage": self.usage()})


def queue_full(max_queued: int) -> ApiError:
    return ApiError(429, f"the server is busy: {max_queued} requests are already waiting for the model "
                         "(serve.max_queued); retry after a second", None, "queue_full",
                    headers={"Retry-After": "1"})


def _retrieval(job: ChatJob) -> dict:
    """serve --rag: the provision ids the answer was grounded on ([] = no hit); nothing when retrieval is off."""
    return {} if job.retrieved_provisions is None else {"retrieved_provisions": job.retrieved_provisions}


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
