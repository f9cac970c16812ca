"""A chat completion request body -> a `ChatJob`, or an `ApiError` naming the parameter: the one method that
turns a request into engine parameters (`Validator.parse`).

Validation runs in the HTTP process, before a request reaches the batching queue, so a bad
request is answered on its own and never shares (and fails) a batch with good ones. The prompt
is built here by `chat.encode_prompt`, the function training uses, so `usage.prompt_tokens` is
exactly the template's token count.
"""
from __future__ import annotations

import functools
import json
import math
import reprlib
from dataclasses import dataclass
from numbers import Real

from vietlegal.errors import ChatError, GenerationError
from vietlegal.model import chat, structure
from vietlegal.model.decoding import end_token_ids
from vietlegal.model.sampling import SamplingRequest
from vietlegal.serve.catalog import Catalog, Target
from vietlegal.serve.protocol import ApiError

MAX_STOP = 4  # OpenAI's limit on stop sequences
MAX_SEED = 2**63 - 1  # what torch's and vLLM's generators take
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60
_short = _REPR.repr  # a value in an error message: bounded, at any depth
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
    target: Target | None = None  # the adapter version that answers (named in the response); never sent to the worker

    def payload(self) -> dict:
        return {"id": self.id, **self.sampling.as_payload()}


@dataclass
class Validator:
    tokenizer: object
    context: int  # the model's context window in tokens
    default_max_tokens: int
    catalog: Catalog  # the models a request may name (`model`)
    system_prompt: str | None = None
    grounder: object = None  # serve --rag: messages -> vietlegal.rag.context.Grounded
    vocab_size: int | None = None  # the model's output vocabulary (None: the tokenizer's length)

    def parse(self, raw: bytes, request_id: str, force_stream: bool = False) -> ChatJob:
        """The job, counted against the version it resolved to (`catalog.release(job.target)` once answered)."""
        body = _json_object(raw)
        target = self._target(body)
        try:
            return self._job(body, target, request_id, force_stream)
        except BaseException:
            self.catalog.release(target)  # refused after all: it never reaches the worker
            raise

    def _job(self, body: dict, target: Target, request_id: str, force_stream: bool) -> ChatJob:
        _check_unsupported(body)
        messages = self._messages(body)
        retrieved = None
        if self.grounder is not None:
            grounded = self.grounder(messages)
            messages, retrieved = grounded.messages, grounded.provision_ids
        prompt = chat.encode_prompt(self.tokenizer, messages)
        stream = force_stream or _optional(body, "stream", bool, False)
        json_schema, json_object = self._response_format(body.get("response_format"))
        sampling = SamplingRequest(
            json_schema=json_schema,
            json_object=json_object,
            prompt_ids=prompt,
            max_new_tokens=self._max_tokens(body, len(prompt)),
            temperature=_number(body, "temperature", DEFAULT_TEMPERATURE, 0.0, 2.0, low_open=False),
            top_p=_number(body, "top_p", DEFAULT_TOP_P, 0.0, 1.0, low_open=True),
            stop=_stop(body.get("stop")),
            seed=_seed(body),
            adapter=target.adapter,
        )
        return ChatJob(
            id=request_id,
            sampling=sampling,
            stream=stream,
            include_usage=_include_usage(body.get("stream_options"), stream),
            retrieved_provisions=retrieved,
            target=target,
        )

    def _target(self, body: dict) -> Target:
        """The model named (none: the server's default, like vLLM); a route picks by `user`, sticky."""
        model, user = body.get("model"), body.get("user")
        if model is not None and not isinstance(model, str):
            raise ApiError(400, "model: must be a string", "model", "invalid_type")
        if user is not None and not isinstance(user, str):
            raise ApiError(400, "user: must be a string", "user", "invalid_type")
        return self.catalog.acquire(model, user)

    def _messages(self, body: dict) -> list[dict]:
        if "messages" not in body:
            raise ApiError(400, "messages: missing required parameter", "messages", "missing_required_parameter")
        try:
            return chat.with_system(chat.check_messages(body["messages"]), self.system_prompt)
        except ChatError as exc:
            # chat's messages are "<field>: <problem>"; the field is OpenAI's `param`.
            raise ApiError(400, str(exc), str(exc).split(":", 1)[0], "invalid_value") from None

    def _response_format(self, value: object) -> tuple[str | None, bool]:
        """(JSON schema text, json_object) the answer must follow; enforced by constrained decoding, never ignored.
        A schema the grammar compiler cannot enforce is a 400 here, before the request is queued."""
        if value is None:
            return None, False
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            raise ApiError(400, 'response_format: must be an object such as {"type": "json_object"}', "response_format",
                           "invalid_type")
        kind = value["type"]
        if kind == "text":
            return None, False
        if kind == "json_object":
            schema, json_object = None, True
        elif kind == "json_schema":
            spec = value.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
                raise ApiError(400, 'response_format.json_schema: must be an object with a "schema" object (and a '
                                    '"name")', "response_format", "invalid_value")
            if not isinstance(spec.get("strict", False), (bool, type(None))):
                raise ApiError(400, "response_format.json_schema.strict: must be true or false", "response_format",
                               "invalid_type")
            schema, json_object = structure.schema_text(spec["schema"]), False
        else:
            raise ApiError(400, f"response_format.type: {_short(kind)} is not one of text, json_object, json_schema",
                           "response_format", "invalid_value")
        try:
            structure.compile_for(self.tokenizer, self.vocab_size or len(self.tokenizer), self.end_ids, schema,
                                  json_object)
        except GenerationError as exc:
            raise ApiError(400, str(exc), "response_format", "invalid_value") from None
        return schema, json_object

    @functools.cached_property
    def end_ids(self) -> set[int]:
        return end_token_ids(None, self.tokenizer)  # the vocabulary is read once, not per request

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
    """The body as a JSON object of finite numbers and valid Unicode text, or a 400 saying what is wrong where."""
    try:
        body = json.loads(raw, parse_constant=_NotANumber, parse_float=_float)
    except RecursionError:
        field = _deep_field(raw)
        raise ApiError(400, f"{field or 'request body'}: nested too deeply to parse", field, "invalid_json") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", None, "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", None, "invalid_json")
    found = _invalid_value(body)
    if found is not None:
        where, problem = found
        raise ApiError(400, f"{where}: {problem}", where, "invalid_value")
    return body


class _NotANumber:
    """What the parser makes of NaN, Infinity and numbers past float range: found and refused by path."""

    def __init__(self, text: str):
        self.text = text


def _float(text: str) -> float | _NotANumber:
    value = float(text)
    return value if math.isfinite(value) else _NotANumber(text)


def _invalid_value(body: dict) -> tuple[str, str] | None:
    """(path such as `messages[0].content`, problem) of the first non-finite number or text that is not valid
    Unicode (a lone surrogate); iterative, so any depth the parser accepted is fine."""
    todo: list[tuple[str, object]] = [("", body)]
    while todo:
        path, value = todo.pop()
        if isinstance(value, _NotANumber):
            return path, f"{value.text[:40]} is not a finite JSON number"
        if isinstance(value, str) and not _encodable(value):
            return path, "not valid Unicode text (it holds a lone surrogate such as \\udcff); send UTF-8 text"
        if isinstance(value, dict):
            for key, item in value.items():
                if not _encodable(key):
                    return f"{path}.<key>" if path else "<key>", "an object key is not valid Unicode text"
                todo.append((f"{path}.{key}" if path else key, item))
        elif isinstance(value, list):
            todo += [(f"{path}[{i}]", item) for i, item in enumerate(value)]
    return None


def _deep_field(raw: bytes) -> str | None:
    """The top-level key whose value nests too deeply (only on that error path: a scan in Python)."""
    text = raw.decode("utf-8", errors="replace")
    depth, in_string, escaped, start, last_key = 0, False, False, 0, None
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                if depth == 1:
                    last_key = text[start:i]
        elif ch == '"':
            in_string, start = True, i + 1
        elif ch in "[{":
            depth += 1
            if depth > 200:
                return last_key
        elif ch in "]}":
            depth -= 1
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _optional(body: dict, name: str, kind: type, default):
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(400, f"{name}: must be {'an integer' if kind is int else 'a boolean'}, got {_short(value)}", name,
                       "invalid_type")
    return value


def _number(body: dict, name: str, default: float, low: float, high: float, low_open: bool) -> float:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, Real) or isinstance(value, bool):
        raise ApiError(400, f"{name}: must be a number, got {_short(value)}", name, "invalid_type")
    if (value <= low if low_open else value < low) or value > high:
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ApiError(400, f"{name}: must be in {bounds}, got {value}", name, "invalid_value")
    return float(value)


def _seed(body: dict) -> int | None:
    seed = _optional(body, "seed", int, None)
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise ApiError(400, f"seed: must be between 0 and {MAX_SEED}, got {_short(seed)}", "seed", "invalid_value")
    return seed


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
    for name in ("tools", "functions", "logit_bias", "top_logprobs", "audio", "prediction"):
        if body.get(name):
            raise ApiError(400, f"{name}: not supported by this server", name, "unsupported_parameter")
    if body.get("tool_choice") not in (None, "none", "auto"):
        raise ApiError(400, "tool_choice: this server calls no tools; leave it out (or \"none\")", "tool_choice",
                       "unsupported_parameter")
    if body.get("function_call") not in (None, "none", "auto"):
        raise ApiError(400, "function_call: this server calls no functions", "function_call", "unsupported_parameter")
    if body.get("modalities") not in (None, ["text"]):
        raise ApiError(400, "modalities: this server answers text only", "modalities", "unsupported_value")



def admin_body(raw: bytes, fields: tuple[str, ...], admin_key: str | None) -> dict[str, str]:
    """The body of /v1/load_lora_adapter or /v1/unload_lora_adapter: exactly these string fields."""
    if not admin_key:
        raise ApiError(403, "adapter loading is off on a server without a key: start it with --api-key (or "
                            "VIETLEGAL_API_KEY) to use the admin endpoints", None, "admin_disabled")
    body = _json_object(raw)
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ApiError(400, f"{unknown[0]}: unknown field (expected {', '.join(fields)})", unknown[0], "unknown_parameter")
    for name in fields:
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ApiError(400, f"{name}: missing or not a non-empty string", name, "missing_required_parameter")
    return {name: body[name].strip() for name in fields}
