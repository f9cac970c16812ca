"""The request bodies as typed models: the one place a field, its type, its bounds and its default live.

OpenAI's spec (shared/openai-openapi.yaml) is the contract: every field it defines for chat completions and
completions is here, typed as the spec types it (integers may be sent as integral floats, 5.0, as JSON Schema
allows), and each is either honoured, accepted with no effect on the answer (IGNORED: listed in docs/serving.md),
or refused with a 400 naming it. vLLM's sampling extensions (top_k, min_p, repetition_penalty, stop_token_ids,
ignore_eos, min_tokens) are honoured. Any other field is a 400 `unknown_parameter` naming it (vLLM logs and drops
unknown fields; a dropped field here would be an answer the client did not ask for, unreported).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_STOP = 4  # OpenAI's limit on stop sequences
MAX_N = 128
MAX_TOP_LOGPROBS = 20  # chat; completions allow 5 (OpenAI), vLLM more: this server allows 20 on both


def _integral(value: Any) -> Any:
    """JSON Schema's integer: 5.0 is 5; 5.5 stays a float and is refused as not an integer."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(_integral)]
Seed = Annotated[int, BeforeValidator(_integral), Field(ge=INT64_MIN, le=INT64_MAX)]
TokenId = Annotated[int, BeforeValidator(_integral), Field(ge=0)]


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class Loose(BaseModel):
    """Objects whose extra keys carry nothing this server reads (metadata-like): accepted as they are."""

    model_config = ConfigDict(strict=True, extra="allow")


class TextPart(Strict):
    type: Literal["text"]
    text: str
    prompt_cache_breakpoint: Any = None  # OpenAI's cache hint: no effect here


class OtherPart(Loose):
    """A part the spec defines that this server cannot read (images, audio, files, a refusal): refused by type in
    convert.py (400 unsupported_value), so its own fields are not checked here."""

    type: Literal["image_url", "input_audio", "file", "refusal"]


ContentPart = Annotated[TextPart | OtherPart, Field(discriminator="type")]


class Message(Strict):
    role: Literal["developer", "system", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None  # Llama-3.1's template has no speaker names: accepted, no effect (docs/serving.md)
    refusal: str | None = None  # an earlier assistant turn's refusal: accepted, no effect
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None
    function_call: Any = None
    audio: Any = None


class StreamOptions(Strict):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None  # no obfuscation field is ever sent: no effect


class JsonSchemaSpec(Strict):
    name: str
    description: str | None = None
    schema_: dict | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class FunctionDef(Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None  # not shown to the model (the grammar, not the prompt, makes the call)
    parameters: dict | None = None  # a JSON schema: the arguments are constrained to it
    strict: bool | None = None  # arguments always follow the schema here: no effect


class Tool(Strict):
    """A tool the request offers: `function` tools can be called (by name, below); `custom` ones are refused."""

    type: Literal["function", "custom"]
    function: FunctionDef | None = None
    custom: Any = None


class Sampling(Strict):
    """The fields both endpoints share: sampling (OpenAI's, then vLLM's extensions), stops, streaming, model."""

    model: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: Int | None = Field(default=None, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    seed: Seed | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    user: str | None = None  # a route's choice is sticky per user (serve.routes)
    # vLLM's extensions
    top_k: Int | None = Field(default=None, ge=-1)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repetition_penalty: float | None = Field(default=None, gt=0, le=2**24)
    stop_token_ids: list[TokenId] | None = None
    ignore_eos: bool | None = None
    min_tokens: Int | None = Field(default=None, ge=0)


class ChatCompletionRequest(Sampling):
    messages: list[Message] = Field(min_length=1)
    max_tokens: Int | None = None
    max_completion_tokens: Int | None = None
    logprobs: bool | None = None
    top_logprobs: Int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Any = None  # "none", or {"type": "function", "function": {"name"}}: convert.py reads it
    parallel_tool_calls: bool | None = None  # one named tool is called once: no effect
    functions: list[Any] | None = None
    function_call: Any = None
    modalities: list[str] | None = None
    audio: Any = None
    prediction: Any = None
    web_search_options: Any = None
    # Accepted with no effect on the answer (docs/serving.md lists them):
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: Any = None
    safety_identifier: str | None = None
    moderation: Any = None


class CompletionRequest(Sampling):
    prompt: str | list[str] | list[TokenId] | list[list[TokenId]] | None = None  # required: convert.py says so
    max_tokens: Int | None = Field(default=None, ge=0)
    echo: bool | None = None
    logprobs: Int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    suffix: str | None = None
    best_of: Int | None = Field(default=None, ge=1, le=20)


class TokenizeRequest(Strict):
    """vLLM's POST /tokenize: a text prompt, or chat messages rendered with the chat template."""

    model: str | None = None
    prompt: str | None = None
    messages: list[Message] | None = None
    add_special_tokens: bool | None = None
    add_generation_prompt: bool | None = None
    return_token_strs: bool | None = None


class DetokenizeRequest(Strict):
    model: str | None = None
    tokens: list[TokenId]


IGNORED = ("metadata", "store", "service_tier", "reasoning_effort", "verbosity", "prompt_cache_key",
           "prompt_cache_retention", "prompt_cache_options", "safety_identifier", "moderation", "parallel_tool_calls",
           "messages[].name", "messages[].content[].prompt_cache_breakpoint", "stream_options.include_obfuscation",
           "tools[].function.description", "tools[].function.strict")
