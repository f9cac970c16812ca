"""Prometheus metrics and the one log line per request (id, version, status, tokens, latency; never bodies or keys).

Requests, tokens and latency carry the `model` label: the version that answered (`vietlegal-<hash>`, or the
base), so two versions behind one route can be compared on live traffic.

Lives in the HTTP process (LitServe forks it after the metrics are created), on a private
registry so several servers in one test process never clash.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from vietlegal.serve.log import logger

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)


class Metrics:
    def __init__(self, queue_depth: Callable[[], float]):
        self.registry = CollectorRegistry()
        r = self.registry
        by = ["model"]  # the version that answered ("none" for a request refused before it named one)
        self.requests = Counter("vietlegal_requests", "Chat completion requests by outcome", by + ["status", "stream"],
                                registry=r)
        self.latency = Histogram("vietlegal_request_latency_seconds", "Time from request to last byte", by,
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("vietlegal_time_to_first_token_seconds", "Time from request to the first generated text",
                              by, buckets=TTFT_BUCKETS, registry=r)
        self.tokens = Counter("vietlegal_generated_tokens", "Completion tokens generated", by, registry=r)
        self.prompt_tokens = Counter("vietlegal_prompt_tokens", "Prompt tokens processed", by, registry=r)
        self.rejected = Counter("vietlegal_requests_rejected", "Requests refused before reaching the model, by reason",
                                ["reason"], registry=r)
        self.in_flight = Gauge("vietlegal_requests_in_flight", "Chat requests accepted and not yet answered", registry=r)
        self.queue = Gauge("vietlegal_queue_depth", "Requests waiting for a batch slot in the inference queue", registry=r)
        self.queue.set_function(queue_depth)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class RequestRecord:
    """What one request did; `close` feeds the metrics and writes its single log line."""

    id: str
    stream: bool = False
    status: int = 200
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    retrieved: list[str] | None = None  # serve --rag: provision ids in the prompt ([] = no hit)
    model: str = "none"  # the version that answered
    route: str | None = None  # serve.routes: the public name the version was picked for

    def mark_first_token(self) -> None:
        if self.first_token is None:
            self.first_token = time.monotonic()

    def close(self, metrics: Metrics | None) -> None:
        latency = time.monotonic() - self.started
        ttft = None if self.first_token is None else self.first_token - self.started
        if metrics is not None:
            metrics.requests.labels(self.model, str(self.status), str(self.stream).lower()).inc()
            metrics.latency.labels(self.model).observe(latency)
            if ttft is not None:
                metrics.ttft.labels(self.model).observe(ttft)
            metrics.tokens.labels(self.model).inc(self.completion_tokens)
            metrics.prompt_tokens.labels(self.model).inc(self.prompt_tokens)
        logger.info(
            "request id=%s status=%d stream=%s model=%s%s prompt_tokens=%d completion_tokens=%d finish=%s latency_ms=%.1f "
            "ttft_ms=%s%s",
            self.id, self.status, str(self.stream).lower(), self.model, f" route={self.route}" if self.route else "",
            self.prompt_tokens, self.completion_tokens,
            self.finish_reason or "-", latency * 1000, "-" if ttft is None else f"{ttft * 1000:.1f}",
            "" if self.retrieved is None else f" retrieved={','.join(self.retrieved) or 'none(no_hit)'}",
        )
