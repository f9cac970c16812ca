"""OpenAI's published spec is the contract: requests generated from it get a 200 whose body (or every stream chunk)
validates against the spec's response schema, or a deliberate 4xx that docs/serving.md lists, with the spec's
error object. The spec is OpenAI's own file (MIT), cut to the operations served: tests/serve/openai_spec/.

Schemathesis turns the spec's request schemas into Hypothesis strategies (positive data: bodies the spec allows);
each test is bounded (a fixed number of examples, derandomized: CI sees the same bodies every run) and runs against
the real server on the tiny model. Two bounds keep the time fixed, and keep each body one the spec allows:
`max_tokens`/`max_completion_tokens` above 4 and `n` above 2 are folded down (the spec sets no upper bound on
the former; a 2,000-token answer 128 times over would only measure the CPU).
"""
from __future__ import annotations

import http.client
import json
import re
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.serve.openai_spec import spec

pytestmark = pytest.mark.slow

KEY = "test-key"
MODEL = "vietlegal"  # the name the test server serves
# Every 4xx docs/serving.md's error table documents, by status: `code` values.
DOCUMENTED = {
    400: {"invalid_json", "missing_required_parameter", "invalid_value", "invalid_type", "context_length_exceeded",
          "unsupported_value", "unsupported_parameter", "unknown_parameter"},
    404: {"model_not_found"},
    413: {"request_too_large"},
}
# The refusals no schema of the spec expresses, each in docs/serving.md: a system (or developer) message after the
# first turn (Llama-3.1's template has one system slot), top_logprobs without logprobs, stream_options without
# stream, max_tokens below 1 (OpenAI and vLLM refuse these too), and a seed past int64 (the spec writes int64's
# bounds as the floats ±9223372036854776000, 192 past them; the server takes int64, as vLLM does).
SEMANTIC = {("invalid_value", "messages[i]"), ("invalid_value", "top_logprobs"), ("invalid_value", "stream_options"),
            ("invalid_value", "seed"), ("invalid_value", "max_tokens"), ("invalid_value", "max_completion_tokens")}
SEEN: dict[str, Counter] = {kind: Counter() for kind in ("chat", "supported", "completion", "open", "shapes")}
EXAMPLES = {"chat": 150, "supported": 200, "completion": 120}
DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                         suppress_health_check=list(HealthCheck))


def examples(n: int) -> settings:
    return settings(DETERMINISTIC, max_examples=n)


def strategy(path: str, source: dict):
    schema = schemathesis.openapi.from_dict(source)
    return schema[path]["POST"].as_strategy(generation_mode=GenerationMode.POSITIVE)


def bounded(body: dict) -> dict:
    """The same body with the answer's size folded into a few tokens (still a body the spec allows)."""
    body = dict(body)
    for name in ("max_tokens", "max_completion_tokens"):
        if isinstance(body.get(name), (int, float)) and body[name] > 4 and float(body[name]).is_integer():
            body[name] = 1 + int(body[name]) % 4
    if isinstance(body.get("n"), (int, float)) and body["n"] > 2 and float(body["n"]).is_integer():
        body["n"] = 1 + int(body["n"]) % 2
    return body


def last_key(param: str) -> str:
    """The field an error's `param` ends with: `messages[0].name` -> name, `messages[0]["a b"]` -> a b."""
    quoted = re.search(r'\[("(?:[^"\\]|\\.)*")\]$', param)
    return json.loads(quoted.group(1)) if quoted else re.split(r"[.\]]", param)[-1]


def post(server, path: str, body: dict) -> tuple[int, str, bytes]:
    raw = json.dumps(body, ensure_ascii=True).encode()  # a lone surrogate goes out as its \\ud800 escape
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        conn.request("POST", path, raw, {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.getheader("content-type") or "", response.read()
    finally:
        conn.close()


def check(kind: str, body: dict, status: int, content_type: str, data: bytes, tally: str | None = None) -> None:
    """The contract for one answered request; `kind`: chat or completion."""
    SEEN[tally or kind][status] += 1
    if status != 200:
        reply = json.loads(data)
        assert not spec.problems("ErrorResponse", reply), spec.problems("ErrorResponse", reply)
        error = reply["error"]
        assert error["code"] in DOCUMENTED.get(status, ()), f"undocumented {status} {error} for {body!r:.400}"
        if error["code"] == "unknown_parameter":  # only a field the spec does not define may be called unknown
            assert last_key(error["param"]) not in spec.property_names(), error
        return
    response, chunk = (("CreateChatCompletionResponse", "CreateChatCompletionStreamResponse") if kind == "chat"
                       else ("CreateCompletionResponse", "CreateCompletionResponse"))
    if not content_type.startswith("text/event-stream"):
        assert body.get("stream") is not True
        reply = json.loads(data) if kind == "chat" else echo_first_token(json.loads(data))
        assert not spec.problems(response, reply), (spec.problems(response, reply), body)
        return
    assert body.get("stream") is True
    events = [line[len("data: "):] for line in data.decode().splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for c in chunks:
        assert "error" not in c, (c, body)
        shown = c if kind == "chat" else as_completion(echo_first_token(c))
        assert not spec.problems(chunk, shown), (spec.problems(chunk, shown), c, body)
    usage_chunks = [c for c in chunks if c.get("usage")]
    asked = bool((body.get("stream_options") or {}).get("include_usage"))
    assert len(usage_chunks) == int(asked), "a usage chunk when, and only when, include_usage asks for it"
    if asked:
        assert usage_chunks[0] is chunks[-1] and chunks[-1]["choices"] == []


def as_completion(chunk: dict) -> dict:
    """The spec has no chunk schema for /completions: a chunk is a CreateCompletionResponse (its words) whose
    finish_reason is null until the last, as OpenAI streams it; the rest is checked as published."""
    return {**chunk, "choices": [{**c, "finish_reason": c["finish_reason"] or "stop"} for c in chunk["choices"]]}


def echo_first_token(reply: dict) -> dict:
    """With `echo` and `logprobs`, the prompt's first token has no log-probability (nothing precedes it): its
    `token_logprobs` and `top_logprobs` entries are null, as OpenAI's legacy completions and vLLM send them, and
    lm-evaluation-harness reads them (the spec types them as numbers and objects). Only that entry may be null."""
    choices = []
    for c in reply["choices"]:
        lp = c.get("logprobs")
        if lp and lp.get("token_logprobs") and lp["token_logprobs"][0] is None:
            assert lp["top_logprobs"][0] is None and None not in lp["token_logprobs"][1:], lp
            lp = {**lp, "token_logprobs": [0.0, *lp["token_logprobs"][1:]], "top_logprobs": [{}, *lp["top_logprobs"][1:]]}
        choices.append({**c, "logprobs": lp})
    return {**reply, "choices": choices}


@examples(EXAMPLES["chat"])
@given(case=strategy("/chat/completions", spec.closed()))
def test_every_chat_request_the_spec_allows_gets_200_or_a_documented_4xx(live_server, case):
    body = bounded({**case.body, "model": MODEL})
    check("chat", body, *post(live_server, "/v1/chat/completions", body))


@examples(EXAMPLES["supported"])
@given(case=strategy("/chat/completions", spec.supported()))
def test_every_chat_request_within_what_the_server_supports_is_answered(live_server, case):
    """Bodies without what docs/serving.md refuses by design (tools, functions, images, audio, logit_bias): all
    answered, but for the few rules the spec's schema cannot say (SEMANTIC)."""
    body = bounded({**case.body, "model": MODEL})
    status, content_type, data = post(live_server, "/v1/chat/completions", body)
    check("chat", body, status, content_type, data, tally="supported")
    if status != 200:
        error = json.loads(data)["error"]
        rule = re.sub(r"\[\d+\]", "[i]", error["param"] or "")
        assert (error["code"], rule) in SEMANTIC, (error, body)


@examples(EXAMPLES["completion"])
@given(case=strategy("/completions", spec.closed()))
def test_every_completion_request_the_spec_allows_gets_200_or_a_documented_4xx(live_server, case):
    body = bounded({**case.body, "model": MODEL})
    check("completion", body, *post(live_server, "/v1/completions", body))


@examples(60)
@given(case=strategy("/chat/completions", spec.raw()))
def test_fields_the_spec_leaves_open_and_any_model_name_get_documented_answers(live_server, case):
    """The published schemas leave objects open and `model` any string: extra keys get `unknown_parameter` (never
    for a field the spec defines), an unknown model `model_not_found`, and "" the default model (as vLLM)."""
    body = bounded(case.body)
    status, content_type, data = post(live_server, "/v1/chat/completions", body)
    assert status != 200 or body["model"] in (MODEL, "")
    check("chat", body, status, content_type, data, tally="open")


def test_the_generated_requests_reached_both_sides_of_the_line():
    """After the property tests of this module: many bodies were answered, and many refused (a test whose bodies
    all got 400 would test the refusals only)."""
    # The spec's schemas put system and developer messages anywhere, and leave most token ids out of any
    # vocabulary: a share of each kind is refused by the SEMANTIC rules, by design.
    for kind, answered in (("chat", 0.1), ("supported", 0.25), ("completion", 0.05)):
        counts = SEEN[kind]
        if sum(counts.values()) < EXAMPLES[kind]:
            pytest.skip("run with the property tests of this module")
        refused = sum(n for status, n in counts.items() if status != 200)
        assert counts[200] >= answered * EXAMPLES[kind] and refused >= 0.05 * EXAMPLES[kind], (kind, counts)


# --- the reported shapes, each validated against the spec -----------------------------------------------

ASK = [{"role": "user", "content": "Tuổi kết hôn là bao nhiêu?"}]
VERDICT = {"type": "object", "properties": {"hợp_lệ": {"type": "boolean"}, "luật": {"enum": ["BLDS", "BLLĐ"]}},
           "required": ["hợp_lệ", "luật"], "additionalProperties": False}


@pytest.mark.parametrize("extra", [
    {},  # `message.refusal` is required (null)
    {"top_p": 0},
    {"seed": -(2**63)},
    {"max_tokens": 5.0},
    {"n": 2, "temperature": 1, "seed": 3},
    {"logprobs": True, "top_logprobs": 3},
    {"messages": [{"role": "developer", "content": "Trả lời ngắn."}, *ASK]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "Tuổi kết hôn"},
                                               {"type": "text", "text": "là bao nhiêu?"}]}]},
    {"stream": True},
    {"stream": True, "stream_options": {"include_usage": True}},
    {"stream": True, "stream_options": {"include_usage": False}},
    {"stream": True, "n": 2, "logprobs": True, "top_logprobs": 2, "stream_options": {"include_usage": True}},
    {"tools": [{"type": "function", "function": {"name": "verdict", "parameters": VERDICT}}],
     "tool_choice": {"type": "function", "function": {"name": "verdict"}}, "max_tokens": 40},
    {"tools": [{"type": "function", "function": {"name": "verdict", "parameters": VERDICT}}],
     "tool_choice": {"type": "function", "function": {"name": "verdict"}}, "max_tokens": 40, "stream": True},
], ids=lambda extra: ",".join(extra) or "plain")
def test_reported_shapes_are_answered_as_the_spec_says(live_server, extra):
    body = {"model": MODEL, "messages": ASK, "max_tokens": 3, **extra}
    status, content_type, data = post(live_server, "/v1/chat/completions", body)
    assert status == 200, data[:300]
    check("chat", body, status, content_type, data, tally="shapes")


@pytest.mark.parametrize("extra", [{}, {"echo": True, "max_tokens": 0, "logprobs": 1}, {"logprobs": 5},
                                   {"prompt": [[1, 2, 3], [4, 5]], "n": 2}, {"stream": True, "echo": True}],
                         ids=lambda extra: ",".join(extra) or "plain")
def test_completion_shapes_are_answered_as_the_spec_says(live_server, extra):
    body = {"model": MODEL, "prompt": "Điều 139 Bộ luật Lao động", "max_tokens": 3, **extra}
    status, content_type, data = post(live_server, "/v1/completions", body)
    assert status == 200, data[:300]
    check("completion", body, status, content_type, data, tally="shapes")


def test_models_answer_as_the_spec_says(live_server):
    conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=30)
    try:
        for path, name in (("/v1/models", "ListModelsResponse"), (f"/v1/models/{MODEL}", "Model")):
            conn.request("GET", path, headers={"Authorization": f"Bearer {KEY}"})
            response = conn.getresponse()
            reply = json.loads(response.read())
            assert response.status == 200 and not spec.problems(name, reply), spec.problems(name, reply)
    finally:
        conn.close()
