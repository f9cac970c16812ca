"""Perplexity asked of a vLLM-shaped server: vLLM cannot run here (no GPU), so a local HTTP server answers
/v1/completions in its layout (OpenAI's parallel lists, tokens as "token_id:N" when return_tokens_as_token_ids),
from a fixed table of log-probabilities; the real llama.cpp server is tested in test_asking_live.py."""
from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from vietlegal.errors import ConfigError
from vietlegal.metrics.asking import token_logprob


def logprob_of(prefix: list[int], token: int) -> float:
    return -0.1 * (1 + (sum(prefix) + token) % 7)  # any fixed function of the position and the token


class VllmShaped(ThreadingHTTPServer):
    honour_bias = True
    bodies: list[dict]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        forced = int(next(iter(body["logit_bias"]))) if self.server.honour_bias else 0
        token = f"token_id:{forced}" if body.get("return_tokens_as_token_ids") else "?"
        reply = {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": body["model"], "choices": [{
            "index": 0, "text": "x", "finish_reason": "length", "logprobs": {
                "tokens": [token], "token_logprobs": [logprob_of(body["prompt"], forced)],
                "top_logprobs": [{token: logprob_of(body["prompt"], forced)}], "text_offset": [0]}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = VllmShaped(("127.0.0.1", 0), Handler)
    srv.bodies = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()


def client_of(srv) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{srv.server_address[1]}/v1", api_key="none", max_retries=0)


@pytest.mark.parametrize("prefix,token", [([0, 6, 100], 300), ([0], 9), (list(range(50)), 2999)])
def test_the_forced_tokens_log_probability_is_read_from_the_openai_layout(server, tiny_tokenizer, prefix, token):
    got = token_logprob(client_of(server), "m", prefix, token, tiny_tokenizer)
    assert math.isclose(got, logprob_of(prefix, token))
    body = server.bodies[-1]
    assert (body["prompt"], body["max_tokens"], body["logprobs"], body["logit_bias"]) == (prefix, 1, 1, {str(token): 100.0})


def test_a_server_that_ignores_the_bias_is_named(server, tiny_tokenizer):
    server.honour_bias = False
    with pytest.raises(ConfigError, match="asked to score token 300, the server generated 0: it ignores logit_bias"):
        token_logprob(client_of(server), "m", [0, 6], 300, tiny_tokenizer)
