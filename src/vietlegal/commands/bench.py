"""Latency and throughput of a running server at several concurrency levels.

    vietlegal bench --base-url http://127.0.0.1:8000 [--api-key K] --concurrency 1,5,10,20 --requests 40 [--out DIR]
                    [--model v12 --model v13 | --model ROUTE]

For each level, `--requests` streamed chat completions are sent by that many concurrent clients.
It prints the seed blog's table (average latency per concurrency) plus p50/p95 latency, time to
first token, generated tokens/s, requests/s and errors, and writes bench.json and bench.png.
Every loop is bounded (fixed request count, per-request timeout); the target must be a loopback
address unless --allow-remote is given (a load generator should not hit a remote host by accident).
With several --model, requests go to each in turn; every level also reports requests, tokens/s and latency per
version that answered (the `model` of each response), so two versions, or the arms of a route, compare on the
same questions and the same server.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from vietlegal import jsonl
from vietlegal.errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_CONCURRENCY = 256
QUESTIONS = [
    "Nam nữ bao nhiêu tuổi thì được kết hôn?",
    "Người lao động nữ được nghỉ thai sản bao lâu?",
    "Thời hiệu khởi kiện tranh chấp hợp đồng là bao lâu?",
    "Lãi suất vay theo thỏa thuận tối đa là bao nhiêu?",
]


@dataclass
class Result:
    ok: bool
    latency: float
    ttft: float | None = None
    completion_tokens: int = 0
    error: str | None = None
    model: str | None = None  # the version that answered (the response's `model`)


@dataclass
class Level:
    concurrency: int
    requests: int
    errors: int
    wall_s: float
    avg_latency_s: float | None
    p50_latency_s: float | None
    p95_latency_s: float | None
    avg_ttft_s: float | None
    p50_ttft_s: float | None
    tokens_per_s: float
    requests_per_s: float
    completion_tokens: int
    first_error: str | None = None
    by_version: dict | None = None  # version -> {requests, tokens_per_s, p50_latency_s}


@dataclass
class Target:
    host: str
    port: int
    path: str
    api_key: str | None
    models: tuple[str, ...]  # sent in turn ((): the server's default)
    max_tokens: int
    timeout: float

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)


def target_from(base_url: str, api_key: str | None, model: str | list[str] | None, max_tokens: int, timeout: float,
                allow_remote: bool) -> Target:
    url = urlsplit(base_url)
    if url.scheme != "http" or not url.hostname:
        raise ConfigError(f"--base-url {base_url!r}: expected http://HOST:PORT (https is not supported)")
    if url.hostname not in LOOPBACK and not allow_remote:
        raise ConfigError(f"--base-url {base_url!r}: not a loopback address; pass --allow-remote to load a remote host")
    prefix = url.path.rstrip("/").removesuffix("/v1")
    models = (model,) if isinstance(model, str) else tuple(model or ())
    return Target(url.hostname, url.port or 80, f"{prefix}/v1/chat/completions", api_key, models, max_tokens, timeout)


def one_request(target: Target, question: str, model: str | None = None) -> Result:
    """One streamed chat completion; TTFT is the arrival of the first non-empty content delta."""
    body = {"messages": [{"role": "user", "content": question}], "max_tokens": target.max_tokens, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    model = model or (target.models[0] if target.models else None)
    if model:
        body["model"] = model
    headers = {"Content-Type": "application/json"}
    if target.api_key:
        headers["Authorization"] = f"Bearer {target.api_key}"
    start = time.perf_counter()
    conn = target.connection()
    try:
        conn.request("POST", target.path, json.dumps(body).encode(), headers)
        resp = conn.getresponse()
        if resp.status != 200:
            return Result(False, time.perf_counter() - start, error=f"HTTP {resp.status}: {resp.read(300)!r}")
        return _read_stream(resp, start)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Result(False, time.perf_counter() - start, error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def _read_stream(resp, start: float) -> Result:
    ttft, tokens, done, model = None, 0, False, None
    for raw in resp:  # lines of the SSE stream; bounded by the server's max_tokens and the socket timeout
        line = raw.decode("utf-8").strip()
        if not line.startswith("data: "):
            continue
        data = line[len("data: "):]
        if data == "[DONE]":
            done = True
            break
        event = json.loads(data)
        if "error" in event:
            return Result(False, time.perf_counter() - start, error=str(event["error"].get("message")))
        model = event.get("model") or model
        if ttft is None and any((c.get("delta") or {}).get("content") for c in event.get("choices") or []):
            ttft = time.perf_counter() - start
        if event.get("usage"):
            tokens = int(event["usage"].get("completion_tokens") or 0)
    latency = time.perf_counter() - start
    if not done:
        return Result(False, latency, ttft, tokens, "stream ended without data: [DONE]", model)
    return Result(True, latency, ttft, tokens, model=model)


def run_level(target: Target, concurrency: int, requests: int) -> Level:
    """`requests` requests from `concurrency` clients, each client sending its next as soon as one returns."""
    counter, lock, results = iter(range(requests)), threading.Lock(), []

    def client() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            model = target.models[i % len(target.models)] if target.models else None
            r = one_request(target, f"{QUESTIONS[i % len(QUESTIONS)]} (#{i})", model)
            with lock:
                results.append(r)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(client) for _ in range(concurrency)]:
            f.result()
    return summarize(concurrency, results, time.perf_counter() - start)


def summarize(concurrency: int, results: list[Result], wall: float) -> Level:
    ok = [r for r in results if r.ok]
    lat = sorted(r.latency for r in ok)
    ttft = sorted(r.ttft for r in ok if r.ttft is not None)
    tokens = sum(r.completion_tokens for r in ok)
    errors = [r for r in results if not r.ok]
    return Level(
        concurrency=concurrency, requests=len(results), errors=len(errors), wall_s=wall,
        avg_latency_s=statistics.fmean(lat) if lat else None, p50_latency_s=percentile(lat, 50),
        p95_latency_s=percentile(lat, 95), avg_ttft_s=statistics.fmean(ttft) if ttft else None,
        p50_ttft_s=percentile(ttft, 50), tokens_per_s=tokens / wall if wall > 0 else 0.0,
        requests_per_s=len(ok) / wall if wall > 0 else 0.0, completion_tokens=tokens,
        first_error=errors[0].error if errors else None, by_version=by_version(ok, wall),
    )


def by_version(ok: list[Result], wall: float) -> dict:
    """Per answering version: requests, its share of the level's generated tokens/s, p50 latency."""
    found = {}
    for model in sorted({r.model or "-" for r in ok}):
        mine = [r for r in ok if (r.model or "-") == model]
        found[model] = {"requests": len(mine),
                        "tokens_per_s": sum(r.completion_tokens for r in mine) / wall if wall > 0 else 0.0,
                        "p50_latency_s": percentile(sorted(r.latency for r in mine), 50)}
    return found


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n * q / 100)
    return sorted_values[int(rank) - 1]


def table(levels: list[Level]) -> str:
    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    rows = [f"{'users':>5} {'avg s':>8} {'p50 s':>8} {'p95 s':>8} {'ttft s':>8} {'tok/s':>9} {'req/s':>7} {'errors':>6}"]
    for lv in levels:
        rows.append(f"{lv.concurrency:>5} {s(lv.avg_latency_s):>8} {s(lv.p50_latency_s):>8} {s(lv.p95_latency_s):>8} "
                    f"{s(lv.avg_ttft_s):>8} {lv.tokens_per_s:>9.1f} {lv.requests_per_s:>7.2f} {lv.errors:>6}")
        if lv.by_version and len(lv.by_version) > 1:
            for model, v in lv.by_version.items():
                rows.append(f"{'':>5}   {model}: {v['requests']} requests, {v['tokens_per_s']:.1f} tok/s, "
                            f"p50 {s(v['p50_latency_s'])} s")
    return "\n".join(rows)


def plot(levels: list[Level], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [lv.concurrency for lv in levels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(xs, [lv.avg_latency_s or 0 for lv in levels], marker="o", label="average")
    left.plot(xs, [lv.p95_latency_s or 0 for lv in levels], marker="s", label="p95")
    left.plot(xs, [lv.avg_ttft_s or 0 for lv in levels], marker="^", label="time to first token")
    left.set(xlabel="concurrent users", ylabel="seconds", title="Latency")
    left.legend()
    right.plot(xs, [lv.tokens_per_s for lv in levels], marker="o", color="tab:green")
    right.set(xlabel="concurrent users", ylabel="generated tokens / s", title="Throughput")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--concurrency {text!r}: expected comma-separated integers such as 1,5,10,20") from None
    if not levels or any(not 1 <= c <= MAX_CONCURRENCY for c in levels):
        raise ConfigError(f"--concurrency {text!r}: each level must be between 1 and {MAX_CONCURRENCY}")
    return levels


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vietlegal bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", default="http://127.0.0.1:8000", help="server root or its /v1 (default: %(default)s)")
    p.add_argument("--api-key", default=os.environ.get("VIETLEGAL_API_KEY"), help="Bearer key (default: $VIETLEGAL_API_KEY)")
    p.add_argument("--concurrency", default="1,5,10,20", help="levels, comma separated (default: %(default)s)")
    p.add_argument("--requests", type=int, default=40, help="requests per level (default: %(default)s)")
    p.add_argument("--max-tokens", type=int, default=64, help="max_tokens per request (default: %(default)s)")
    p.add_argument("--model", action="append", default=None,
                   help="model to send (a name, a version id or a route); repeat to alternate (default: the server's)")
    p.add_argument("--timeout", type=float, default=300, help="per-request socket timeout in seconds")
    p.add_argument("--out", default="benchmarks/out", help="directory for bench.json and bench.png")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --base-url")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    levels_asked = parse_levels(args.concurrency)
    if args.requests < 1:
        raise ConfigError("--requests: must be at least 1")
    target = target_from(args.base_url, args.api_key, args.model, args.max_tokens, args.timeout, args.allow_remote)
    warm = one_request(target, QUESTIONS[0])  # first request pays for lazy set-up; never counted
    if not warm.ok:
        raise ConfigError(f"{args.base_url}: warm-up request failed: {warm.error}")
    levels = []
    for c in levels_asked:
        levels.append(run_level(target, c, max(args.requests, c)))
        print(f"concurrency {c}: done", file=sys.stderr)
    print(table(levels))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"base_url": args.base_url, "max_tokens": args.max_tokens, "requests_per_level": args.requests,
              "levels": [asdict(lv) for lv in levels]}
    jsonl.write_json(out / "bench.json", report)
    plot(levels, out / "bench.png")
    print(f"wrote {out / 'bench.json'} and {out / 'bench.png'}")
    return 0 if all(lv.errors == 0 for lv in levels) else 1
