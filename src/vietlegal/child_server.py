"""A server this project starts as a child process on 127.0.0.1 (`vietlegal serve` in tests and benchmarks,
llama.cpp's server in the export stage): a free port to start it on, and its /health status to wait for.

Below serve/ and export/, which both start one, so neither imports the other.
"""
from __future__ import annotations

import http.client
import socket

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def health(port: int) -> int | None:
    """GET /health's status (200 once the model is loaded; 503 while it loads), None while nothing answers."""
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=2)
        conn.request("GET", "/health")
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None
