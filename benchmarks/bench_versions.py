"""Several adapter versions behind one server, on the tiny model.

    python benchmarks/bench_versions.py [--requests 96] [--max-tokens 48]

1. Generated tokens/s with 16 concurrent clients on one adapter (merged into the base: the fast path) vs the same
   clients spread over two adapters in one process (one batch, each row through its adapter: model/mixed_lora.py). Target: ratio >= 0.7.
2. With `--watch`, the time from a new version landing in a served directory (the copy finished) to the first
   answer that names it, over a few landings (serve.watch_seconds bounds the wait; the load itself is the rest).

Untrained adapters (r=16 on q/k/v/o) stand in for trained ones: speed does not depend on what they learned.
On a shared 2-core machine the absolute figures are pessimistic; the ratio is the point.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

from vietlegal.commands import bench
from vietlegal.model import untrained
from vietlegal.serve.process import ServerProcess
from vietlegal.serve.versions.version import adapter_version

TARGET_RATIO = 0.7
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
PARAMS = "serve:\n  max_batch_size: 16\n  max_new_tokens: 64\n  cpu_threads: 1\n  watch_seconds: {watch}\n"


def throughput(server: ServerProcess, models: list[str] | None, requests_: int, max_tokens: int) -> bench.Level:
    target = bench.target_from(server.base_url, None, models, max_tokens, 300, allow_remote=False)
    bench.run_level(target, 4, 8)  # warm-up
    return bench.run_level(target, 16, requests_)


def landing_times(server: ServerProcess, served: Path, versions: list[Path]) -> list[float]:
    """Copy each version over `served` (as `cp -r` does, file by file), then ask until an answer names it."""
    found = []
    for new in versions:
        want = adapter_version(new).model_id
        for f in new.iterdir():
            shutil.copy2(f, served / f.name)
        landed = time.perf_counter()
        while True:
            r = requests.post(server.base_url + "/v1/chat/completions", timeout=60, json={
                "model": "v2", "messages": [{"role": "user", "content": "Tuổi kết hôn?"}], "max_tokens": 1})
            if r.json().get("model") == want:
                found.append(time.perf_counter() - landed)
                break
            time.sleep(0.02)
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=96)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--watch-seconds", type=float, default=2.0, help="serve.watch_seconds for part 2 (params default)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, seed in (("v1", 1), ("v2", 2), ("v3", 3), ("v4", 4), ("v5", 5)):
            untrained.adapter(root / name, seed=seed, r=16, target_modules=TARGETS)
        (root / "params.yaml").write_text(PARAMS.format(watch=args.watch_seconds), encoding="utf-8")
        with ServerProcess([f"v1={root / 'v1'}"], root / "one.log", params=root / "params.yaml", cwd=root) as server:
            one = throughput(server, None, args.requests, args.max_tokens)
        served = root / "served-v2"
        shutil.copytree(root / "v2", served)
        with ServerProcess([f"v1={root / 'v1'}", f"v2={served}"], root / "two.log", params=root / "params.yaml",
                           cwd=root, extra_args=("--watch",)) as server:
            two = throughput(server, ["v1", "v2"], args.requests, args.max_tokens)
            landings = landing_times(server, served, [root / "v3", root / "v4", root / "v5"])
    ratio = two.tokens_per_s / one.tokens_per_s if one.tokens_per_s else 0.0
    print(f"16 clients, 1 adapter (merged):      {one.tokens_per_s:8.1f} generated tok/s, p50 {one.p50_latency_s:.3f} s, "
          f"errors {one.errors}")
    print(f"16 clients, 2 adapters (mixed batch): {two.tokens_per_s:8.1f} generated tok/s, p50 {two.p50_latency_s:.3f} s, "
          f"errors {two.errors}")
    for model, v in (two.by_version or {}).items():
        print(f"    {model}: {v['requests']} requests, {v['tokens_per_s']:.1f} tok/s")
    print(f"ratio 2 adapters / 1 merged: {ratio:.2f}x (target >= {TARGET_RATIO}x) -> "
          f"{'OK' if ratio >= TARGET_RATIO else 'BELOW TARGET'}")
    print(f"new version on disk -> first answer naming it (serve.watch_seconds {args.watch_seconds:g}): "
          f"{', '.join(f'{t:.2f}' for t in landings)} s (median {statistics.median(landings):.2f} s)")
    return 0 if ratio >= TARGET_RATIO and not (one.errors or two.errors) else 1


if __name__ == "__main__":
    sys.exit(main())
