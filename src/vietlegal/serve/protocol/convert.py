"""A request body -> the jobs the inference worker runs, or an `ApiError` naming the parameter: the one conversion
from the protocol's typed models (protocol/requests.py) to `SamplingRequest`.

Validation runs in the HTTP process, before a request reaches the batching queue, so a bad request is answered on
its own and never shares (and fails) a batch with good ones. Chat prompts are built by `chat.encode_prompt`, the
function training uses, so `usage.prompt_tokens` is exactly the template's token count. `n` choices are n jobs
(ids `<id>-<i>`, seeds `seed + i`): both backends decode them as separate sequences of one batch.
"""
from __future__ import annotations

import functools
import json
import math
import reprlib
import unicodedata
from dataclasses import dataclass, field, replace

from pydantic import ValidationError

from vietlegal.errors import ChatError, GenerationError
from vietlegal.model import chat, structure
from vietlegal.model.decoding import end_token_ids
from vietlegal.model.sampling import INT64, SamplingRequest
from vietlegal.serve.protocol import requests as rq
from vietlegal.serve.protocol.errors import ApiError
from vietlegal.serve.versions.catalog import Catalog, Target

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60
_short = _REPR.repr  # a value in an error message: bounded, at any depth
DEFAULT_TEMPERATURE = 1.0  # OpenAI's defaults: a client that sends nothing gets what it would get there
DEFAULT_TOP_P = 1.0
DEFAULT_COMPLETION_TOKENS = 16  # OpenAI's and vLLM's default max_tokens for /v1/completions


@dataclass
class Job:
    """One request as the worker runs it (one SamplingRequest per choice) plus how to answer."""

    id: str
    sampling: SamplingRequest  # the first choice's (the others differ by seed only)
    stream: bool = False
    include_usage: bool = False
    retrieved_provisions: list[str] | None = None  # serve --rag: ids put into the prompt ([] = no hit); never sent
    target: Target | None = None  # the adapter version that answers (named in the response); never sent
    n: int = 1
    logprobs: int | None = None  # chat: top_logprobs when logprobs is true; completions: logprobs
    echo: bool = False  # completions: the prompt's text (and logprobs) before the answer
    prompt_texts: list = field(default_factory=list)  # completions: what echo prepends, per prompt
    kind: str = "chat"  # "chat" | "completion"
    tool: str | None = None  # chat: the function tool_choice names; the answer is its arguments, as a tool call
    prompts: list = field(default_factory=list)  # completions: one SamplingRequest per prompt (choices n per prompt)

    def choice_ids(self) -> list[str]:
        count = self.n * max(len(self.prompts), 1)
        return [self.id] if count == 1 else [f"{self.id}-{i}" for i in range(count)]

    def payloads(self) -> list[dict]:
        """The queue messages: one per choice, in choice order (prompt by prompt, n each)."""
        requests = self.prompts or [self.sampling]
        out = []
        for request in requests:
            for i in range(self.n):
                seed = None if request.seed is None else (request.seed + i + INT64) % (2 * INT64) - INT64
                out.append(replace(request, seed=seed).as_payload())
        return [{"id": job_id, **payload} for job_id, payload in zip(self.choice_ids(), out)]


ChatJob = Job  # the name the chat path has always used


@dataclass
class Validator:
    tokenizer: object
    context: int  # the model's context window in tokens
    default_max_tokens: int
    catalog: Catalog  # the models a request may name (`model`)
    system_prompt: str | None = None
    grounder: object = None  # serve --rag: messages -> vietlegal.rag.context.Grounded
    vocab_size: int | None = None  # the model's output vocabulary (None: the tokenizer's length)

    def parse(self, raw: bytes, request_id: str, force_stream: bool = False) -> Job:
        """A chat completion job, counted against the version it resolved to (`catalog.release(job.target)`)."""
        request = validated(rq.ChatCompletionRequest, _json_object(raw))
        return self._resolved(request, lambda target: self._chat(request, target, request_id, force_stream))

    def parse_completion(self, raw: bytes, request_id: str) -> Job:
        request = validated(rq.CompletionRequest, _json_object(raw))
        return self._resolved(request, lambda target: self._completion(request, target, request_id))

    def _resolved(self, request, build) -> Job:
        target = self.catalog.acquire(request.model, request.user)
        try:
            return build(target)
        except BaseException:
            self.catalog.release(target)  # refused after all: it never reaches the worker
            raise

    # --- chat ---------------------------------------------------------------------------------------------
    def _chat(self, request: rq.ChatCompletionRequest, target: Target, request_id: str, force_stream: bool) -> Job:
        _refuse_unsupported(request)
        messages = self._messages(request.messages)
        retrieved = None
        if self.grounder is not None:
            grounded = self.grounder(messages)
            messages, retrieved = grounded.messages, grounded.provision_ids
        prompt = chat.encode_prompt(self.tokenizer, messages)
        if request.top_logprobs is not None and not request.logprobs:
            raise ApiError(400, "top_logprobs: needs logprobs: true", "top_logprobs", "invalid_value")
        logprobs = (request.top_logprobs or 0) if request.logprobs else None
        name = "max_completion_tokens" if request.max_completion_tokens is not None else "max_tokens"
        asked = request.max_completion_tokens if request.max_completion_tokens is not None else request.max_tokens
        if asked is not None and asked < 1:
            raise ApiError(400, f"{name}: must be at least 1, got {asked}", name, "invalid_value")
        tool, tool_schema, where = _named_tool(request)
        json_schema, json_object = self._response_format(request.response_format)
        if tool is not None:
            if json_schema or json_object:
                raise ApiError(400, "response_format: a named tool_choice already constrains the answer to the "
                                    "tool's parameters; give one of the two", "response_format", "unsupported_value")
            json_schema = self._schema(where, tool_schema)
        sampling = self._sampling(request, prompt, self._budget(name, asked, len(prompt), self.default_max_tokens),
                                  logprobs=logprobs, json_schema=json_schema, json_object=json_object,
                                  adapter=target.adapter)
        stream = force_stream or bool(request.stream)
        return Job(request_id, sampling, stream, _include_usage(request.stream_options, stream), retrieved, target,
                   n=request.n or 1, logprobs=logprobs, tool=tool)

    def _messages(self, messages: list[rq.Message]) -> list[dict]:
        """The conversation as the chat template takes it: `developer` is the system role, text parts are joined."""
        plain = []
        for i, m in enumerate(messages):
            if m.role in ("tool", "function") or m.tool_calls or m.function_call or m.audio is not None:
                raise ApiError(400, f"messages[{i}]: this server calls no tools or functions and takes text only",
                               f"messages[{i}]", "unsupported_value")
            if m.content is None:
                raise ApiError(400, f"messages[{i}].content: must be text", f"messages[{i}].content", "invalid_value")
            for j, part in enumerate(m.content if isinstance(m.content, list) else ()):
                if part.type != "text":
                    raise ApiError(400, f"messages[{i}].content[{j}]: this server takes text only, not {part.type}",
                                   f"messages[{i}].content[{j}].type", "unsupported_value")
            content = m.content if isinstance(m.content, str) else "\n".join(part.text for part in m.content)
            plain.append({"role": "system" if m.role == "developer" else m.role, "content": content})
        try:
            return chat.with_system(chat.check_messages(plain), self.system_prompt)
        except ChatError as exc:
            # chat's messages are "<field>: <problem>"; the field is OpenAI's `param`.
            raise ApiError(400, str(exc), str(exc).split(":", 1)[0], "invalid_value") from None

    def _response_format(self, value: rq.ResponseFormat | None) -> tuple[str | None, bool]:
        """(JSON schema text, json_object) the answer must follow; enforced by constrained decoding, never ignored.
        A schema the grammar compiler cannot enforce, or one nested deeper than vLLM allows, is a 400 here."""
        if value is None or value.type == "text":
            return None, False
        if value.type == "json_schema" and value.json_schema is None:
            raise ApiError(400, 'response_format.json_schema: must be an object with a "name" (and a "schema")',
                           "response_format.json_schema", "invalid_value")
        if value.type == "json_object" or value.json_schema.schema_ is None:  # the spec's schema is optional:
            self._compiles("response_format", None, True)                    # without one, any JSON object
            return None, True
        return self._schema("response_format", value.json_schema.schema_), False

    def _schema(self, where: str, schema: dict) -> str:
        """A JSON schema the answer must follow (response_format's, or a named tool's parameters), as text."""
        try:
            structure.check_nesting(schema)
        except GenerationError as exc:
            field = "response_format.json_schema.schema" if where == "response_format" else where
            raise ApiError(400, str(exc), field, "invalid_value") from None
        text = structure.schema_text(schema)
        self._compiles(where, text, False)
        return text

    def _compiles(self, where: str, schema: str | None, json_object: bool) -> None:
        try:
            structure.compile_for(self.tokenizer, self.vocab_size or len(self.tokenizer), self.end_ids, schema,
                                  json_object)
        except GenerationError as exc:
            raise ApiError(400, str(exc), where, "invalid_value") from None

    # --- completions --------------------------------------------------------------------------------------
    def _completion(self, request: rq.CompletionRequest, target: Target, request_id: str) -> Job:
        for name in ("logit_bias",):
            if getattr(request, name):
                raise ApiError(400, f"{name}: not supported by this server", name, "unsupported_parameter")
        if request.suffix:
            raise ApiError(400, "suffix: not supported by this server (no fill-in-the-middle)", "suffix",
                           "unsupported_parameter")
        if request.best_of not in (None, 1, request.n or 1):
            raise ApiError(400, "best_of: only best_of equal to n is supported", "best_of", "unsupported_value")
        prompts, texts = self._prompts(request.prompt)
        asked = DEFAULT_COMPLETION_TOKENS if request.max_tokens is None else request.max_tokens
        if asked == 0 and not request.echo:
            raise ApiError(400, "max_tokens: 0 returns nothing without echo: true", "max_tokens", "invalid_value")
        echo_logprobs = request.logprobs if request.echo else None
        samplings = [self._sampling(request, ids, self._budget("max_tokens", asked, len(ids), asked, floor=0),
                                    logprobs=request.logprobs if asked else None, prompt_logprobs=echo_logprobs,
                                    adapter=target.adapter) for ids in prompts]
        stream = bool(request.stream)
        return Job(request_id, samplings[0], stream, _include_usage(request.stream_options, stream), None, target,
                   n=request.n or 1, logprobs=request.logprobs, echo=bool(request.echo), kind="completion",
                   prompts=samplings, prompt_texts=texts)

    def _prompts(self, prompt) -> tuple[list[list[int]], list[str]]:
        """Token ids and text of each prompt: text is NFC-normalised and tokenized with the special tokens the
        tokenizer adds (vLLM's add_special_tokens default); ids are taken as they are."""
        if prompt is None:  # the spec's default, <|endoftext|>, is GPT's document separator: no such token here
            raise ApiError(400, "prompt: missing: give text, a list of texts, token ids or lists of token ids",
                           "prompt", "missing_required_parameter")
        if isinstance(prompt, str):
            prompt = [prompt]
        if not prompt:
            raise ApiError(400, "prompt: must not be empty", "prompt", "invalid_value")
        if all(isinstance(t, int) for t in prompt):
            prompt = [prompt]
        ids, texts = [], []
        for i, item in enumerate(prompt):
            if isinstance(item, str):
                text = unicodedata.normalize("NFC", item)
                tokens = self.tokenizer(text, add_special_tokens=True)["input_ids"]
            else:
                tokens = list(item)
                if any(t >= self.vocab for t in tokens):
                    raise ApiError(400, f"prompt[{i}]: token ids must be below the vocabulary size {self.vocab}",
                                   f"prompt[{i}]", "invalid_value")
                text = self.tokenizer.decode(tokens, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            if not tokens:
                raise ApiError(400, f"prompt[{i}]: empty prompt", f"prompt[{i}]" if len(prompt) > 1 else "prompt",
                               "invalid_value")
            ids.append(tokens)
            texts.append(text)
        return ids, texts

    # --- shared -------------------------------------------------------------------------------------------
    def _sampling(self, request: rq.Sampling, prompt: list[int], budget: int, **extra) -> SamplingRequest:
        if request.logit_bias:
            raise ApiError(400, "logit_bias: not supported by this server", "logit_bias", "unsupported_parameter")
        stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
        if len(stops) > rq.MAX_STOP:
            raise ApiError(400, f"stop: at most {rq.MAX_STOP} sequences, got {len(stops)}", "stop", "invalid_value")
        if request.min_tokens and request.min_tokens > budget:
            raise ApiError(400, f"min_tokens: {request.min_tokens} is above max_tokens {budget}", "min_tokens",
                           "invalid_value")
        if any(t >= self.vocab for t in request.stop_token_ids or ()):
            raise ApiError(400, f"stop_token_ids: ids must be below the vocabulary size {self.vocab}",
                           "stop_token_ids", "invalid_value")

        def given(value, default):
            return default if value is None else value

        return SamplingRequest(
            prompt_ids=prompt, max_new_tokens=budget,
            temperature=given(request.temperature, DEFAULT_TEMPERATURE), top_p=given(request.top_p, DEFAULT_TOP_P),
            stop=[s for s in stops if s], seed=request.seed, top_k=given(request.top_k, 0),
            min_p=given(request.min_p, 0.0), presence_penalty=given(request.presence_penalty, 0.0),
            frequency_penalty=given(request.frequency_penalty, 0.0),
            repetition_penalty=given(request.repetition_penalty, 1.0),
            stop_token_ids=list(request.stop_token_ids or ()), ignore_eos=bool(request.ignore_eos),
            min_tokens=given(request.min_tokens, 0), **extra)

    def _budget(self, name: str, asked: int | None, prompt_tokens: int, default: int, floor: int = 1) -> int:
        room = self.context - prompt_tokens
        if room < floor or (asked and room < 1):
            raise ApiError(400, f"the prompt is {prompt_tokens} tokens, the model's context is {self.context} tokens; "
                                "shorten it", "messages" if name != "max_tokens" or floor else "prompt",
                           "context_length_exceeded")
        if asked is None:
            return min(default, room)
        if asked > room:
            raise ApiError(400, f"{name}: {asked} new tokens plus the {prompt_tokens}-token prompt exceed the model's "
                                f"context of {self.context} tokens; ask for at most {room}", name,
                           "context_length_exceeded")
        return asked

    @functools.cached_property
    def end_ids(self) -> set[int]:
        return end_token_ids(None, self.tokenizer)  # the vocabulary is read once, not per request

    @property
    def vocab(self) -> int:
        return self.vocab_size or len(self.tokenizer)


def validated(model: type, body: dict):
    """The typed request, or a 400 naming the first field that is wrong."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise from_validation(exc) from None


_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
               "list": "an array", "dict": "an object", "model": "an object", "literal": "one of the listed values"}


def from_validation(exc: ValidationError) -> ApiError:
    errors = exc.errors(include_url=False)
    # A union (content: str | parts) reports one error per branch: the deepest names the actual problem, and of
    # equally deep ones a wrong value (a negative token id) says more than a branch of another type.
    first = max((e for e in errors if e["loc"][:1] == errors[0]["loc"][:1]),
                key=lambda e: (len(e["loc"]), not e["type"].endswith("_type")))
    kind = first["type"]
    path = _path(first["loc"], key_last=kind == "extra_forbidden")
    if kind == "extra_forbidden":
        return ApiError(400, f"{path}: unknown field; this server does not know it (docs/serving.md lists every field)",
                        path, "unknown_parameter")
    if kind == "missing":
        return ApiError(400, f"{path}: missing required parameter", path, "missing_required_parameter")
    code = "invalid_type" if kind.endswith("_type") or kind in ("model_attributes_type", "is_instance_of") else "invalid_value"
    message = first["msg"]
    return ApiError(400, f"{path}: {message}, got {_short(first.get('input'))}", path, code)


_PART_TYPES = ("text", "image_url", "input_audio", "file", "refusal")


def _path(loc: tuple, key_last: bool = False) -> str:
    """('messages', 0, 'content') -> messages[0].content; pydantic's union branch tags ('str', 'list[str]') dropped.
    `key_last`: the last part is a key the client sent (an unknown field), kept whatever it looks like, quoted
    when it is not a plain name."""
    out = ""
    for n, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif key_last and n == len(loc) - 1:
            out += (f".{part}" if out else part) if part.isidentifier() else f"[{json.dumps(part)}]"
        elif "[" in part or part in ("str", "int", "float", "bool", "list", "dict", "none", "function-after",
                                     "function-before", "json-or-python") or part[:1].isupper():
            continue
        elif n >= 3 and loc[n - 3] == "content" and isinstance(loc[n - 1], int) and part in _PART_TYPES:
            continue  # a content part's type, as the discriminated union tags it
        else:
            out += f".{part}" if out else part
    return out or "request body"


def _refuse_unsupported(request: rq.ChatCompletionRequest) -> None:
    """What this server cannot honour is refused, never ignored."""
    for name in ("functions", "audio", "prediction", "web_search_options"):
        if getattr(request, name):
            raise ApiError(400, f"{name}: not supported by this server", name, "unsupported_parameter")
    if request.function_call not in (None, "none", "auto"):
        raise ApiError(400, "function_call: this server calls no functions", "function_call", "unsupported_parameter")
    if request.modalities not in (None, ["text"]):
        raise ApiError(400, "modalities: this server answers text only", "modalities", "unsupported_value")


def _named_tool(request: rq.ChatCompletionRequest) -> tuple[str | None, dict | None, str | None]:
    """(name, parameters schema, where the schema is) of the function tool_choice names, as vLLM honours it: the
    answer is that call, its arguments constrained to the schema. With tool_choice "none" the tools are not called
    (OpenAI's meaning); "auto" and "required" would need the model to choose a call (a tool-call parser): refused."""
    choice, tools = request.tool_choice, request.tools or []
    if not tools:
        if choice not in (None, "none", "auto"):
            raise ApiError(400, "tool_choice: names a tool, but the request offers no tools", "tool_choice",
                           "invalid_value")
        return None, None, None
    if choice == "none":
        return None, None, None
    function = choice.get("function") if isinstance(choice, dict) and choice.get("type") == "function" else None
    named = function.get("name") if isinstance(function, dict) else None
    if not isinstance(named, str):
        raise ApiError(400, 'tool_choice: this server calls a tool only when tool_choice names it, {"type": '
                            '"function", "function": {"name": ...}} (it has no parser for "auto" or "required"), '
                            'or "none"', "tool_choice", "unsupported_value")
    for i, tool in enumerate(tools):
        if tool.type != "function" or tool.function is None:
            raise ApiError(400, f"tools[{i}]: only function tools are supported", f"tools[{i}].type",
                           "unsupported_value")
    found = [i for i, tool in enumerate(tools) if tool.function.name == named]
    if not found:
        raise ApiError(400, f"tool_choice: no function named {named!r} in tools", "tool_choice.function.name",
                       "invalid_value")
    parameters = tools[found[0]].function.parameters
    return named, parameters or {"type": "object", "properties": {}}, f"tools[{found[0]}].function.parameters"


def _include_usage(options: rq.StreamOptions | None, stream: bool) -> bool:
    """A stream ends with a usage chunk only when the client asks (stream_options.include_usage), as OpenAI does."""
    if options is None:
        return False
    if not stream:
        raise ApiError(400, "stream_options: only allowed when stream is true", "stream_options", "invalid_value")
    return bool(options.include_usage)


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
