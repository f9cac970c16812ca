"""The LLM judge against a real OpenAI-compatible HTTP server on 127.0.0.1, through the real openai client.

The server grades by what the answer says, and misbehaves on cue: "RATE2" is rate-limited twice,
"DOWN" always fails with 503, "GARBAGE" gets prose instead of JSON, "OUTOFRANGE" gets a score of 11.
"""
from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vietlegal.metrics import llm_judge
from vietlegal.stages import judge
from vietlegal.errors import ConfigError
from vietlegal.params import JudgeConfig

KEY = "test-key"
REF = "Theo Điều 2 Luật Người cao tuổi 2009, người cao tuổi là công dân Việt Nam từ đủ 60 tuổi trở lên."


class JudgeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
        self.seen: Counter = Counter()
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: JudgeServer

    def log_message(self, *args):  # keep pytest output clean
        pass

    def reply(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append(body)
        if self.path != "/v1/chat/completions":
            return self.reply(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            return self.reply(401, {"error": {"message": "invalid api key", "type": "invalid_request_error"}})
        answer = body["messages"][-1]["content"].split("## Assistant's answer\n", 1)[1]
        with self.server.lock:
            self.server.seen[answer] += 1
            seen = self.server.seen[answer]
        if "RATE2" in answer and seen <= 2:
            return self.reply(429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"Retry-After": "0.01"})
        if "DOWN" in answer:
            return self.reply(503, {"error": {"message": "overloaded", "type": "server_error"}})
        if "GARBAGE" in answer:
            content = "Câu trả lời khá tốt, tôi cho 8 điểm."
        else:
            score = 9 if answer == REF else 4
            if "OUTOFRANGE" in answer:
                score = 11
            content = "```json\n" + json.dumps({"accuracy": score, "completeness": score, "clarity": 7,
                                                 "practicality": 6, "overall": score, "rationale": "ok"}) + "\n```"
        self.reply(200, {
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        })


@pytest.fixture
def server(monkeypatch):
    srv = JudgeServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{srv.server_address[1]}/v1")
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def answers(tmp_path):
    rows = [
        {"id": "q1", "question": "Ai là người cao tuổi?", "reference": REF, "base": "GARBAGE trả lời", "tuned": REF},
        {"id": "q2", "question": "Ai là người cao tuổi?", "reference": REF, "base": "", "tuned": "RATE2 người từ 60 tuổi"},
        {"id": "q3", "question": "Ai là người cao tuổi?", "reference": REF, "base": "DOWN", "tuned": "OUTOFRANGE"},
    ]
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def run(tmp_path, answers, **cfg):
    config = JudgeConfig(**{"enabled": True, "model": "judge-a", "max_retries": 2, "concurrency": 3, **cfg})
    return judge.run(config, answers, tmp_path / "judge.json", tmp_path / "verdicts.jsonl", tmp_path / "cache.jsonl",
                     backoff_s=0.01)


def test_grades_retries_counts_and_caches(server, tmp_path, answers):
    report = run(tmp_path, answers)
    base, tuned = report["base"], report["tuned"]
    # base: GARBAGE unparseable, "" empty (scores 0, not sent), DOWN failed after 1 + 2 retries
    assert (base["scored"], base["empty"], base["unparseable"], base["failed"]) == (1, 1, 1, 1)
    assert base["overall"] == 0.0
    # tuned: the reference itself (9), RATE2 after two 429s (4), OUTOFRANGE unparseable
    assert (tuned["scored"], tuned["unparseable"], tuned["failed"]) == (2, 1, 0)
    assert tuned["overall"] == pytest.approx((9 + 4) / 2) and tuned["clarity"] == 7
    assert report["delta"]["overall"] == pytest.approx(6.5)
    assert report["api_calls"] == 1 + 3 + 1 + 3 + 1 and report["retries"] == 2 + 2
    assert len(server.requests) == 9
    assert json.loads((tmp_path / "judge.json").read_text())["tuned"]["overall"] == pytest.approx(6.5)

    body = server.requests[0]
    assert body["temperature"] == 0 and body["model"] == "judge-a"
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == [*llm_judge.AXES, "rationale"]
    assert REF in body["messages"][-1]["content"] and "accuracy" in body["messages"][0]["content"]

    verdicts = [json.loads(line) for line in (tmp_path / "verdicts.jsonl").read_text(encoding="utf-8").splitlines()]
    assert verdicts[2]["base"]["status"] == "failed" and "InternalServerError" in verdicts[2]["base"]["error"]
    assert verdicts[0]["base"]["raw"].startswith("Câu trả lời")

    # A rerun pays only for the verdict that failed; parsed and unparseable ones come from the cache.
    server.requests.clear()
    again = run(tmp_path, answers)
    assert again["cache_hits"] == 4 and again["api_calls"] == 3 and len(server.requests) == 3
    assert again["tuned"] == tuned

    # Another judge model is another cache key.
    server.requests.clear()
    other = run(tmp_path, answers, model="judge-b")
    assert other["cache_hits"] == 0 and {b["model"] for b in server.requests} == {"judge-b"}


def test_wrong_key_stops_with_what_to_fix(server, tmp_path, answers, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    with pytest.raises(ConfigError, match="AuthenticationError.*OPENAI_API_KEY"):
        run(tmp_path, answers)


def test_missing_key_and_unknown_rubric(tmp_path, answers, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        run(tmp_path, answers)
    with pytest.raises(ConfigError, match="rubric_version: 'v9'"):
        run(tmp_path, answers, rubric_version="v9")


def test_off_by_default_writes_outputs_without_a_key(tmp_path, answers, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert JudgeConfig().enabled is False
    report = judge.run(JudgeConfig(), answers, tmp_path / "j.json", tmp_path / "v.jsonl", tmp_path / "c.jsonl")
    assert report == {"enabled": False}
    assert (tmp_path / "v.jsonl").exists() and (tmp_path / "c.jsonl").exists()


@pytest.mark.parametrize("text, ok", [
    ('{"accuracy": 8, "completeness": 7, "clarity": 9, "practicality": 8, "overall": 8}', True),
    ('Đây: ```json\n{"accuracy": "8.5", "completeness": 7, "clarity": 9, "practicality": 8, "overall": 8}\n```', True),
    ('{"accuracy": 8, "completeness": 7, "clarity": 9, "practicality": 8}', False),  # no overall
    ('{"accuracy": true, "completeness": 7, "clarity": 9, "practicality": 8, "overall": 8}', False),
    ('{"accuracy": -1, "completeness": 7, "clarity": 9, "practicality": 8, "overall": 8}', False),
    ("8/10", False),
    ("{broken", False),
])
def test_parse_verdict(text, ok):
    assert (llm_judge.parse_verdict(text) is not None) is ok
