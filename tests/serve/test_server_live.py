"""The real server with the real openai client and raw HTTP.

`vietlegal serve` runs as on the serving droplet: in a clean git clone where only the DVC-tracked
adapter was pulled (see the `pulled_adapter` fixture), on 127.0.0.1, Bearer key required.
"""
from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from vietlegal.model import chat
from vietlegal.params import DEFAULT_SYSTEM_PROMPT

KEY = "test-key"
QUESTION = [{"role": "system", "content": "Bạn là luật sư."}, {"role": "user", "content": "Tuổi kết hôn là bao nhiêu?"}]
CONTEXT = 2048  # the tiny model's max_position_embeddings


@pytest.fixture(scope="module")
def client(live_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server.base_url + "/v1", api_key=KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def model_id(pulled_adapter) -> str:
    """The served id names the adapter's DVC hash from dvc.lock (the server runs in a clean clone)."""
    return "vietlegal-" + pulled_adapter[1][:12]


@pytest.fixture(scope="module")
def tokenizer(tiny_adapter):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_adapter)


def post(server, body, path="/v1/chat/completions", key=KEY, **kw) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = body if isinstance(body, (bytes, str)) else json.dumps(body, ensure_ascii=False).encode()
    return requests.post(server.base_url + path, data=data, headers={**headers, "Content-Type": "application/json"},
                         timeout=120, **kw)


def sse_events(resp: requests.Response) -> list[str]:
    return [line[len("data: "):] for line in resp.iter_lines(decode_unicode=True) if line.startswith("data: ")]


# --- the openai client, both modes ------------------------------------------------------------------

def test_openai_client_non_stream_carries_usage_version_and_length(client, model_id, tokenizer):
    r = client.chat.completions.create(model=model_id, messages=QUESTION, max_tokens=5, temperature=0)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.created > 0
    assert r.model == model_id and r.system_fingerprint == "fp_" + model_id.removeprefix("vietlegal-")
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content
    assert r.choices[0].finish_reason == "length"
    assert r.usage.prompt_tokens == len(chat.encode_prompt(tokenizer, QUESTION))
    assert r.usage.completion_tokens == 5
    assert r.usage.total_tokens == r.usage.prompt_tokens + 5


def test_openai_client_stream_matches_non_stream_and_ends_with_usage(client, model_id):
    plain = client.chat.completions.create(model=model_id, messages=QUESTION, max_tokens=8, temperature=0)
    chunks = list(client.chat.completions.create(model=model_id, messages=QUESTION, max_tokens=8, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text == plain.choices[0].message.content
    assert finishes == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8
    assert chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens
    assert all(c.model == model_id and c.id == chunks[0].id for c in chunks)


def test_temperature_zero_is_repeatable(client, model_id):
    answers = {client.chat.completions.create(model=model_id, messages=QUESTION, max_tokens=10, temperature=0)
               .choices[0].message.content for _ in range(3)}
    assert len(answers) == 1


def test_seed_makes_sampling_repeatable(client, model_id):
    def sample(seed):
        return client.chat.completions.create(model=model_id, messages=QUESTION, max_tokens=12, temperature=1.0,
                                              top_p=0.9, seed=seed).choices[0].message.content

    assert sample(11) == sample(11)


def test_stop_string_gives_finish_stop_and_cuts_the_text(client, model_id):
    free = client.chat.completions.create(model=model_id, messages=QUESTION, max_tokens=12, temperature=0)
    text = free.choices[0].message.content
    stop = text[4:7]
    r = client.chat.completions.create(model=model_id, messages=QUESTION, max_tokens=12, temperature=0, stop=[stop])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == text[: text.find(stop)]


def test_max_completion_tokens_is_honoured(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=QUESTION, max_completion_tokens=3, temperature=0)
    assert (r.usage.completion_tokens, r.choices[0].finish_reason) == (3, "length")


def test_default_system_prompt_is_added_like_training(client, tokenizer):
    user_only = QUESTION[1:]
    r = client.chat.completions.create(model="vietlegal", messages=user_only, max_tokens=1, temperature=0)
    expected = chat.encode_prompt(tokenizer, chat.with_system(user_only, DEFAULT_SYSTEM_PROMPT))
    assert r.usage.prompt_tokens == len(expected)


def test_models_lists_the_adapter_at_its_version(client, model_id, live_server):
    models = client.models.list().data
    assert [m.id for m in models] == ["vietlegal"]  # a lone adapter, merged: no base entry
    raw = requests.get(live_server.base_url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    entry = raw.json()["data"][0]
    assert (entry["root"], entry["adapter_version"]) == (model_id, model_id.removeprefix("vietlegal-"))
    assert (entry["version_source"], entry["parent"], entry["max_model_len"]) == ("dvc.lock", "vietlegal/tiny-llama", CONTEXT)


# --- raw HTTP (what curl sends) ---------------------------------------------------------------------

def test_raw_stream_ends_with_usage_then_done(live_server):
    resp = post(live_server, {"messages": QUESTION, "max_tokens": 4, "temperature": 0, "stream": True,
                              "stream_options": {"include_usage": True}}, stream=True)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp)
    assert events[-1] == "[DONE]"
    usage_chunk = json.loads(events[-2])
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 4
    assert json.loads(events[-3])["choices"][0]["finish_reason"] == "length"
    assert json.loads(events[0])["choices"][0]["delta"]["role"] == "assistant"


def test_include_usage_false_drops_the_usage_chunk(live_server):
    body = {"messages": QUESTION, "max_tokens": 3, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": False}}
    events = sse_events(post(live_server, body, stream=True))
    assert events[-1] == "[DONE]"
    assert all(json.loads(e)["choices"] for e in events[:-1])


def test_seed_stream_endpoint_always_streams(live_server):
    resp = post(live_server, {"messages": QUESTION, "max_tokens": 3, "temperature": 0, "stream": False},
                path="/v1/chat/completions/stream", stream=True)
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert sse_events(resp)[-1] == "[DONE]"


def test_health_is_open_everything_else_needs_the_bearer_key(live_server):
    assert requests.get(live_server.base_url + "/health", timeout=10).status_code == 200
    for key in (None, "wrong-key"):
        resp = post(live_server, {"messages": QUESTION}, key=key)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "invalid_api_key"
    assert requests.get(live_server.base_url + "/v1/models", timeout=10).status_code == 401
    # LitServe's own header is not a way around it
    resp = requests.post(live_server.base_url + "/v1/chat/completions", json={"messages": QUESTION},
                         headers={"X-API-Key": KEY}, timeout=10)
    assert resp.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=live_server.base_url + "/v1", api_key="wrong", max_retries=0).models.list()


LONG = "Điều 1, " * 700  # ~2850 tokens (> the 2048 context) in ~8 kB (< the 20 kB body limit)


@pytest.mark.parametrize(
    "body, status, param, code",
    [
        (b"{not json", 400, None, "invalid_json"),
        (b"[1, 2]", 400, None, "invalid_json"),
        ({"max_tokens": 3}, 400, "messages", "missing_required_parameter"),
        ({"messages": []}, 400, "messages", "invalid_value"),
        ({"messages": "hello"}, 400, "messages", "invalid_type"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "messages[0].role", "invalid_value"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, 400,
         "messages[0].content[0].type", "unsupported_value"),
        ({"messages": QUESTION, "max_tokens": 0}, 400, "max_tokens", "invalid_value"),
        ({"messages": QUESTION, "max_tokens": -5}, 400, "max_tokens", "invalid_value"),
        ({"messages": QUESTION, "max_tokens": CONTEXT + 1}, 400, "max_tokens", "context_length_exceeded"),
        ({"messages": QUESTION, "max_tokens": "7"}, 400, "max_tokens", "invalid_type"),
        ({"messages": QUESTION, "temperature": 2.5}, 400, "temperature", "invalid_value"),
        ({"messages": QUESTION, "temperature": -0.1}, 400, "temperature", "invalid_value"),
        ({"messages": QUESTION, "top_p": -0.1}, 400, "top_p", "invalid_value"),
        ({"messages": QUESTION, "top_p": 1.5}, 400, "top_p", "invalid_value"),
        ({"messages": [{"role": "user", "content": LONG}]}, 400, "messages", "context_length_exceeded"),
        ({"messages": [{"role": "user", "content": "x" * 30000}]}, 413, None, "request_too_large"),
        ({"messages": QUESTION, "model": "gpt-4o"}, 404, "model", "model_not_found"),
        ({"messages": QUESTION, "n": 0}, 400, "n", "invalid_value"),
        ({"messages": QUESTION, "tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "tool_choice",
         "unsupported_value"),
        ({"messages": QUESTION, "tools": [{"type": "function", "function": {"name": "f"}}],
          "tool_choice": {"type": "function", "function": {"name": "g"}}}, 400, "tool_choice.function.name",
         "invalid_value"),
        ({"messages": QUESTION, "frobnicate": 1}, 400, "frobnicate", "unknown_parameter"),
    ],
)
def test_bad_input_gets_its_4xx_with_the_openai_error_object(live_server, body, status, param, code):
    resp = post(live_server, body)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["param"], error["code"]) == (param, code)
    assert error["message"]


def test_long_prompt_case_really_exceeds_the_context(tokenizer):
    assert len(chat.encode_prompt(tokenizer, [{"role": "user", "content": LONG}])) > CONTEXT
    assert len(LONG.encode()) < 20000


def test_chunked_body_over_the_limit_gets_413(live_server):
    def chunks():
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"}]}'

    resp = requests.post(live_server.base_url + "/v1/chat/completions", data=chunks(),
                         headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "request_too_large"


def test_bad_requests_batched_with_good_ones_do_not_fail_them(live_server):
    good = {"messages": QUESTION, "max_tokens": 6, "temperature": 0}
    bad = [{"messages": QUESTION, "temperature": 9}, {"messages": [{"role": "x", "content": "y"}]}, b"{", {"messages": []}]
    bodies = [good, bad[0], good, bad[1], good, bad[2], good, bad[3]]
    with ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda b: post(live_server, b), bodies))
    assert [r.status_code for r in responses] == [200, 400] * 4
    contents = {r.json()["choices"][0]["message"]["content"] for r in responses[::2]}
    assert len(contents) == 1 and contents != {""}
    assert live_server.health() == 200


def test_64_concurrent_clients_are_all_answered(client, model_id):
    def ask(i):
        r = client.chat.completions.create(model=model_id, max_tokens=4, temperature=0,
                                           messages=[{"role": "user", "content": f"Câu hỏi số {i}"}])
        return r.usage.completion_tokens, r.choices[0].finish_reason

    with ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(ask, range(64)))
    assert answers == [(4, "length")] * 64


def test_client_disconnect_stops_its_generation(live_server):
    body = {"messages": QUESTION, "max_tokens": 1800, "temperature": 0, "stream": True}
    resp = post(live_server, body, stream=True)
    request_id = resp.headers["x-request-id"]
    for line in resp.iter_lines(decode_unicode=True):
        if line.startswith("data: ") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
            break  # tokens are flowing
    resp.close()  # the client goes away
    line = wait_for_log(live_server, f"cancelled id={request_id}")
    assert 0 < int(line.rsplit("completion_tokens=", 1)[1]) < 1800  # stopped mid-way, not before nor at the end
    assert f"request id={request_id} status=499" in live_server.log_text()
    # and the server goes on serving
    assert post(live_server, {"messages": QUESTION, "max_tokens": 2}).status_code == 200


def test_non_stream_client_disconnect_is_noticed(live_server):
    body = json.dumps({"messages": QUESTION, "max_tokens": 1800, "temperature": 0}).encode()
    before = live_server.log_text().count("status=499 stream=false")
    with socket.create_connection(("127.0.0.1", live_server.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(0.5)
    wait_for_log(live_server, "status=499 stream=false", count=before + 1)
    assert live_server.health() == 200


def test_metrics_expose_requests_latency_ttft_tokens_and_queue(live_server):
    post(live_server, {"messages": QUESTION, "max_tokens": 2})
    text = requests.get(live_server.base_url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).text
    for name in ("vietlegal_requests_total", "vietlegal_request_latency_seconds_bucket",
                 "vietlegal_time_to_first_token_seconds_bucket", "vietlegal_generated_tokens_total",
                 "vietlegal_queue_depth", "vietlegal_requests_in_flight"):
        assert name in text
    assert 'status="200"' in text and 'status="401"' not in text  # auth failures never reach the endpoint


def test_one_log_line_per_request_without_bodies_or_keys(live_server):
    marker = "Mật khẩu bí mật 4242"
    resp = post(live_server, {"messages": [{"role": "user", "content": marker}], "max_tokens": 2})
    request_id = resp.json()["id"]
    log = live_server.log_text()
    lines = [line for line in log.splitlines() if f"id={request_id}" in line]
    assert len(lines) == 1
    assert "status=200" in lines[0] and "completion_tokens=2" in lines[0] and "latency_ms=" in lines[0]
    assert marker not in log and "Mật khẩu" not in log
    assert KEY not in log


def wait_for_log(server, needle: str, count: int = 1, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [line for line in server.log_text().splitlines() if needle in line]
        if len(found) >= count:
            return found[-1]
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} not in the server log:\n{server.log_text()[-3000:]}")
