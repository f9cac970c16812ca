"""A chat completion request body -> a `ChatJob`, or an `ApiError` naming the parameter: the one method that
turns a request into engine parameters (`Validator.parse`).

Validation runs in the HTTP process, before a request reaches the batching queue, so a bad
request is answered on its own and never shares (and fails) a batch with good ones. The prompt
is built here by `chat.encode_prompt`, the function training uses, so `usage.prompt_tokens` is
exactly the template's token count.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from numbers import Real

from vietlegal.errors import ChatError
from vietlegal.model import chat
from vietlegal.model.sampling import SamplingRequest
from vietlegal.serve.protocol import ApiError

MAX_STOP = 4  # OpenAI's limit on stop sequences
DEFAULT_TEMPERATURE = 1.0  # OpenAI's defaults: a client that sends nothing gets what it would get there
DEFAULT_TOP_P = 1.0


@dataclass
class ChatJob:
    """What the inference worker needs (the queue payload: id and sampling request) plus how to answer."""

    id: str
    sampling: SamplingRequest
    stream: bool = False
    include_usage: bool = True
    retrieved_provisions: list[str] | None = None  # serve --rag: ids put into the prompt ([] = no hit); never sent to the worker

    def payload(self) -> dict:
        return {"id": self.id, **self.sampling.as_payload()}


@dataclass
class Validator:
    tokenizer: object
    context: int  # the model's context window in tokens
    default_max_tokens: int
    model_ids: tuple[str, ...]  # names a request may use for the served model
    system_prompt: str | None = None
    grounder: object = None  # serve --rag: messages -> vietlegal.rag.context.Grounded

    def parse(self, raw: bytes, request_id: str, force_stream: bool = False) -> ChatJob:
        body = _json_object(raw)
        self._check_model(body.get("model"))
        _check_unsupported(body)
        messages = self._messages(body)
        retrieved = None
        if self.grounder is not None:
            grounded = self.grounder(messages)
            messages, retrieved = grounded.messages, grounded.provision_ids
        prompt = chat.encode_prompt(self.tokenizer, messages)
        stream = force_stream or _optional(body, "stream", bool, False)
        sampling = SamplingRequest(
            prompt_ids=prompt,
            max_new_tokens=self._max_tokens(body, len(prompt)),
            temperature=_number(body, "temperature", DEFAULT_TEMPERATURE, 0.0, 2.0, low_open=False),
            top_p=_number(body, "top_p", DEFAULT_TOP_P, 0.0, 1.0, low_open=True),
            stop=_stop(body.get("stop")),
            seed=_optional(body, "seed", int, None),
        )
        return ChatJob(
            id=request_id,
            sampling=sampling,
            stream=stream,
            include_usage=_include_usage(body.get("stream_options"), stream),
            retrieved_provisions=retrieved,
        )

    def _check_model(self, model: object) -> None:
        if model in (None, ""):
            return  # like vLLM: no model means the one served
        if not isinstance(model, str):
            raise ApiError(400, "model: must be a string", "model", "invalid_type")
        if model not in self.model_ids:
            raise ApiError(404, f"The model '{model}' does not exist; this server serves {self.model_ids[0]!r} "
                                "(GET /v1/models)", "model", "model_not_found")

    def _messages(self, body: dict) -> list[dict]:
        if "messages" not in body:
            raise ApiError(400, "messages: missing required parameter", "messages", "missing_required_parameter")
        try:
            return chat.with_system(chat.check_messages(body["messages"]), self.system_prompt)
        except ChatError as exc:
            # chat's messages are "<field>: <problem>"; the field is OpenAI's `param`.
            raise ApiError(400, str(exc), str(exc).split(":", 1)[0], "invalid_value") from None

    def _max_tokens(self, body: dict, prompt_tokens: int) -> int:
        room = self.context - prompt_tokens
        if room < 1:
            raise ApiError(400, f"messages: the prompt is {prompt_tokens} tokens, the model's context is "
                                f"{self.context} tokens; shorten the conversation", "messages", "context_length_exceeded")
        name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        asked = _optional(body, name, int, None)
        if asked is None:
            return min(self.default_max_tokens, room)
        if asked < 1:
            raise ApiError(400, f"{name}: must be at least 1, got {asked}", name, "invalid_value")
        if asked > room:
            raise ApiError(400, f"{name}: {asked} new tokens plus the {prompt_tokens}-token prompt exceed the model's "
                                f"context of {self.context} tokens; ask for at most {room}", name, "context_length_exceeded")
        return asked


def _json_object(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", None, "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", None, "invalid_json")
    return body


def _optional(body: dict, name: str, kind: type, default):
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(400, f"{name}: must be {'an integer' if kind is int else 'a boolean'}, got {value!r}", name, "invalid_type")
    return value


def _number(body: dict, name: str, default: float, low: float, high: float, low_open: bool) -> float:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, Real) or isinstance(value, bool):
        raise ApiError(400, f"{name}: must be a number, got {value!r}", name, "invalid_type")
    if (value <= low if low_open else value < low) or value > high:
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ApiError(400, f"{name}: must be in {bounds}, got {value}", name, "invalid_value")
    return float(value)


def _stop(value: object) -> list[str]:
    stops = [value] if isinstance(value, str) else value if value is not None else []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise ApiError(400, "stop: must be a string or a list of strings", "stop", "invalid_type")
    if len(stops) > MAX_STOP:
        raise ApiError(400, f"stop: at most {MAX_STOP} sequences, got {len(stops)}", "stop", "invalid_value")
    return [s for s in stops if s]


def _include_usage(options: object, stream: bool) -> bool:
    """Streams end with a usage chunk unless the client says include_usage: false."""
    if options is None:
        return True
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", True), bool):
        raise ApiError(400, "stream_options: must be an object like {\"include_usage\": true}", "stream_options", "invalid_type")
    if not stream:
        raise ApiError(400, "stream_options: only allowed when stream is true", "stream_options", "invalid_value")
    return options.get("include_usage", True)


def _check_unsupported(body: dict) -> None:
    """Refuse what this server cannot honour instead of silently ignoring it."""
    if body.get("n") not in (None, 1):
        raise ApiError(400, "n: only n=1 is supported", "n", "unsupported_value")
    for name in ("presence_penalty", "frequency_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            raise ApiError(400, f"{name}: not supported by this server; leave it at 0", name, "unsupported_parameter")
    if body.get("logprobs"):
        raise ApiError(400, "logprobs: not supported by this server", "logprobs", "unsupported_parameter")
    if body.get("tools"):
        raise ApiError(400, "tools: not supported by this server", "tools", "unsupported_parameter")
