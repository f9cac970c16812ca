"""Serving on the tiny model: one client's 1-token latency, and generated tokens/s with 16 concurrent clients vs 1.

    python benchmarks/bench_serve.py [--adapter models/adapter] [--requests 48] [--max-tokens 64]

Starts `vietlegal serve` on 127.0.0.1 (a free port) with the project's params.yaml, on
models/adapter when it exists, else on an untrained LoRA adapter over the tiny model (throughput
does not depend on what the adapter learned). Targets: a lone client's 1-token request p50 <= 10 ms (no batch
window to wait out), and ratio >= 4 (a one-at-a-time server gets ~1x). Then prints the blog-style table for 1,
5, 10, 20 users. On a shared 2-core machine the
absolute figures are pessimistic; the ratio is the point.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from vietlegal.commands import bench
from vietlegal.model import untrained
from vietlegal.serve.process import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 4.0
TARGET_P50_MS = 10.0
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


def params_file(tmp: Path, max_batch_size: int | None) -> Path:
    """The project's params.yaml, or a copy with serve.max_batch_size overridden."""
    if max_batch_size is None:
        return ROOT / "params.yaml"
    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["serve"]["max_batch_size"] = max_batch_size
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--adapter", default=str(ROOT / "models" / "adapter"))
    p.add_argument("--requests", type=int, default=48, help="requests for the 16-client run (1 client gets a third)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--table", default="1,5,10,20", help="levels for the latency table ('' to skip)")
    p.add_argument("--max-batch-size", type=int, default=None,
                   help="override serve.max_batch_size (1 shows what a one-at-a-time server gets)")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        adapter = Path(args.adapter)
        if not (adapter / "vietlegal.json").exists():
            adapter = untrained.adapter(Path(tmp) / "adapter", r=16, target_modules=TARGETS)
            print(f"no trained adapter at {args.adapter}: using an untrained one over the tiny model")
        params = params_file(Path(tmp), args.max_batch_size)
        with ServerProcess(adapter, Path(tmp) / "server.log", params=params, cwd=ROOT) as server:
            target = bench.target_from(server.base_url, None, None, args.max_tokens, 300, allow_remote=False)
            bench.one_request(target, bench.QUESTIONS[0])  # warm-up
            one_token = bench.target_from(server.base_url, None, None, 1, 300, allow_remote=False)
            lone = bench.run_level(one_token, 1, 100)
            p50_ms = lone.p50_latency_s * 1000
            print(f"1 client, 1-token requests: p50 {p50_ms:.1f} ms, p95 {lone.p95_latency_s * 1000:.1f} ms "
                  f"({lone.requests} requests; target p50 <= {TARGET_P50_MS:.0f} ms) -> "
                  f"{'OK' if p50_ms <= TARGET_P50_MS else 'ABOVE TARGET'}")
            single = bench.run_level(target, 1, max(args.requests // 3, 4))
            many = bench.run_level(target, 16, args.requests)
            ratio = many.tokens_per_s / single.tokens_per_s if single.tokens_per_s else float("inf")
            print(f"1 client:   {single.tokens_per_s:8.1f} generated tok/s  ({single.requests} requests, "
                  f"avg latency {single.avg_latency_s:.3f}s, errors {single.errors})")
            print(f"16 clients: {many.tokens_per_s:8.1f} generated tok/s  ({many.requests} requests, "
                  f"avg latency {many.avg_latency_s:.3f}s, errors {many.errors})")
            print(f"ratio 16/1: {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x) -> {'OK' if ratio >= TARGET_RATIO else 'BELOW TARGET'}")
            if args.table:
                levels = [bench.run_level(target, c, max(args.requests // 2, c)) for c in bench.parse_levels(args.table)]
                print(bench.table(levels))
    met = ratio >= TARGET_RATIO and p50_ms <= TARGET_P50_MS
    return 0 if met and not (single.errors or many.errors or lone.errors) else 1


if __name__ == "__main__":
    sys.exit(main())
