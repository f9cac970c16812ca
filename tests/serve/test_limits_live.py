"""What a browser and a burst get from the real server: CORS preflight without a key, real requests still
needing it; a full queue answered at once with 429 and Retry-After, counted in /metrics."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import time

import pytest

from tests.conftest import SERVE_TEST_PARAMS
from tests.helpers.droplet import droplet_server

pytestmark = pytest.mark.slow
ORIGIN = "http://localhost:3000"  # in the live server's serve.cors_origins
BODY = json.dumps({"messages": [{"role": "user", "content": "Tuổi kết hôn?"}], "max_tokens": 2}).encode()


def request(port: int, method: str, path: str, body: bytes | None = None, **headers) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body, {k.replace("_", "-"): v for k, v in headers.items()})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_a_browser_preflight_is_answered_without_a_key(live_server):
    status, headers, _ = request(live_server.port, "OPTIONS", "/v1/chat/completions", Origin=ORIGIN,
                                 Access_Control_Request_Method="POST",
                                 Access_Control_Request_Headers="authorization, content-type")
    assert status == 200 and headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in headers["access-control-allow-methods"]
    assert "authorization" in headers["access-control-allow-headers"].lower()


def test_the_request_after_the_preflight_still_needs_the_key(live_server):
    status, headers, body = request(live_server.port, "POST", "/v1/chat/completions", BODY, Origin=ORIGIN,
                                    Content_Type="application/json")
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
    assert headers["access-control-allow-origin"] == ORIGIN, "the browser can read the error"
    status, headers, _ = request(live_server.port, "POST", "/v1/chat/completions", BODY, Origin=ORIGIN,
                                 Content_Type="application/json", Authorization="Bearer test-key")
    assert status == 200 and headers["access-control-allow-origin"] == ORIGIN


def test_an_origin_not_configured_gets_no_cors_grant(live_server):
    status, headers, _ = request(live_server.port, "OPTIONS", "/v1/chat/completions", Origin="http://evil.example",
                                 Access_Control_Request_Method="POST")
    assert status == 400 and "access-control-allow-origin" not in headers


@pytest.fixture
def one_slot_server(tmp_path, pulled_adapter):
    """A server that takes one request at a time and lets one more wait."""
    clone, _ = pulled_adapter
    params = tmp_path / "params.yaml"
    params.write_text(SERVE_TEST_PARAMS.replace("max_batch_size: 8", "max_batch_size: 1") + "  max_queued: 1\n",
                      encoding="utf-8")
    with droplet_server(clone, tmp_path / "server.log", params) as server:
        yield server


def metric(port: int, name: str) -> float:
    _, _, body = request(port, "GET", "/metrics", Authorization="Bearer test-key")
    found = re.search(rf"^{re.escape(name)} (\S+)$", body.decode(), flags=re.M)
    return float(found[1]) if found else 0.0


def test_a_burst_past_max_queued_gets_429_with_retry_after_and_is_counted(one_slot_server):
    """Deterministic: the inference worker is frozen (SIGSTOP), so what is sent waits. A frozen worker may already
    be inside its blocking get, which then takes the first request off the queue; so requests are sent one by one
    until one waits in the queue (at most two), and the next must be refused."""
    server = one_slot_server
    worker = int(re.search(r"inference worker pid=(\d+)", server.log_text())[1])
    os.kill(worker, signal.SIGSTOP)
    waiting = []
    try:
        while metric(server.port, "vietlegal_queue_depth") < 1 and len(waiting) < 2:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            conn.request("POST", "/v1/chat/completions", BODY,
                         {"Authorization": "Bearer test-key", "Content-Type": "application/json"})
            waiting.append(conn)
            deadline = time.monotonic() + 3
            while metric(server.port, "vietlegal_queue_depth") < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
        assert metric(server.port, "vietlegal_queue_depth") == 1, "a request waits for the frozen worker"
        status, headers, body = request(server.port, "POST", "/v1/chat/completions", BODY,
                                        Authorization="Bearer test-key", Content_Type="application/json")
        error = json.loads(body)["error"]
        assert status == 429 and headers["retry-after"] == "1" and error["code"] == "queue_full"
        assert "serve.max_queued" in error["message"]
        assert metric(server.port, 'vietlegal_requests_rejected_total{reason="queue_full"}') == 1
    finally:
        os.kill(worker, signal.SIGCONT)
    for conn in waiting:
        assert conn.getresponse().status == 200, "the waiting requests are answered once the worker runs again"
        conn.close()


@pytest.fixture
def draining_server(tmp_path, pulled_adapter):
    clone, _ = pulled_adapter
    params = tmp_path / "params.yaml"
    params.write_text(SERVE_TEST_PARAMS + "  drain_seconds: 30\n", encoding="utf-8")
    with droplet_server(clone, tmp_path / "server.log", params) as server:
        yield server


STOPS = {  # how a stop reaches the server -> (signal, whole process group?, the stream's request is decoding?)
    "docker stop / kill PID (SIGTERM to the main process)": (signal.SIGTERM, False, True),
    "systemctl stop, KillMode=control-group (SIGTERM to the group)": (signal.SIGTERM, True, True),
    "Ctrl-C in a terminal (SIGINT to the group)": (signal.SIGINT, True, True),
    # The worker has not taken the request from the queue yet when the group signal lands: it answers it first.
    "systemctl stop, the request still queued (SIGTERM to the group)": (signal.SIGTERM, True, False),
}


@pytest.mark.parametrize("how", list(STOPS))
def test_any_stop_lets_a_stream_finish_refuses_new_requests_with_503_and_exits_0(draining_server, how):
    """Deterministic: the worker is frozen while the stream is in flight (decoding: after its first content
    piece; queued: before the request is sent), so the stream is still open when the server is told to stop and
    when the next request arrives; thawed, it finishes, and the server exits."""
    server = draining_server
    sig, group, decoding = STOPS[how]
    worker = int(re.search(r"inference worker pid=(\d+)", server.log_text())[1])
    if not decoding:
        os.kill(worker, signal.SIGSTOP)
    stream = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    stream.request("POST", "/v1/chat/completions", json.dumps(
        {"messages": [{"role": "user", "content": "Tuổi kết hôn?"}], "max_tokens": 40, "stream": True}).encode(),
        {"Authorization": "Bearer test-key", "Content-Type": "application/json"})
    response = stream.getresponse()
    assert response.status == 200 and response.readline().startswith(b"data: ")  # the stream has started
    if decoding:
        while b'"content": "' not in (line := response.readline()) or b'"role"' in line:
            assert line, "the stream ended before its first content piece"
        os.kill(worker, signal.SIGSTOP)  # the worker has produced a piece: the request is in its batch
    try:
        if group:
            os.killpg(server.proc.pid, sig)  # every process: main, LitServe's manager and broker, HTTP, worker
        else:
            os.kill(server.proc.pid, sig)
        deadline = time.monotonic() + 20
        while f"{sig.name}: no new requests" not in server.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)  # the HTTP process has it once it logs so; a request sent before would wait
        status, headers, body = request(server.port, "POST", "/v1/chat/completions", BODY,
                                        Authorization="Bearer test-key", Content_Type="application/json")
        assert status == 503 and headers["retry-after"] == "5"
        assert json.loads(body)["error"]["code"] == "shutting_down"
    finally:
        os.kill(worker, signal.SIGCONT)
    rest = response.read().decode()
    stream.close()
    assert rest.rstrip().endswith("data: [DONE]") and '"finish_reason": "' in rest, "the stream in flight finished"
    assert server.proc.wait(timeout=60) == 0
    assert "draining 1 in flight" in server.log_text()


def test_a_worker_that_dies_fails_only_what_it_held_and_is_restarted(draining_server):
    """SIGKILL the inference worker mid-stream: that stream ends with an in-band 503 and [DONE] (not a hang),
    /health says 503 until a new worker has loaded the model, and then requests are answered again."""
    server = draining_server
    worker = int(re.search(r"inference worker pid=(\d+)", server.log_text())[1])
    stream = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    stream.request("POST", "/v1/chat/completions", json.dumps(
        {"messages": [{"role": "user", "content": "Tuổi kết hôn?"}], "max_tokens": 1500, "stream": True}).encode(),
        {"Authorization": "Bearer test-key", "Content-Type": "application/json"})
    response = stream.getresponse()
    assert response.status == 200 and response.readline().startswith(b"data: ")
    os.kill(worker, signal.SIGKILL)
    rest = response.read().decode()
    stream.close()
    events = [line[6:] for line in rest.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and json.loads(events[-2])["error"]["code"] == "service_unavailable"
    deadline = time.monotonic() + 120
    while server.health() != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.health() == 200 and len(re.findall(r"inference worker pid=", server.log_text())) == 2
    status, _, body = request(server.port, "POST", "/v1/chat/completions", BODY, Authorization="Bearer test-key",
                              Content_Type="application/json")
    assert status == 200 and json.loads(body)["choices"][0]["finish_reason"] in ("stop", "length")
