"""Memory and speed of each exported GGUF format under llama.cpp's server on this CPU (docs/export.md).

    python benchmarks/bench_export.py [--gguf-dir models/export/gguf] [--test data/processed/test.jsonl]
                                      [--threads 2] [--max-tokens 64] [--questions 8]

For every vietlegal-*.gguf: the file size, llama-server's resident memory once loaded and at its peak, and the
prompt and generation speed it reports (its `timings`: tokens per second, one request at a time, greedy) over the
first --questions test questions. Run it after `dvc repro export` (export.enabled: true). The cores are shared on
a busy machine: figures vary by a few tens of percent between runs.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import requests

from vietlegal import paths
from vietlegal.data.splits import read_test_split
from vietlegal.export.llama_cpp import ensure_built
from vietlegal.export.llama_server import ALIAS, LlamaServer


def rss(pid: int, field: str) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def measure(llama, gguf: Path, cases, threads: int, max_tokens: int, log: Path) -> dict:
    with LlamaServer(llama, gguf, log, threads=threads) as server:
        loaded = rss(server.proc.pid, "VmRSS")
        prompt_tokens = predicted = 0
        prompt_ms = predicted_ms = 0.0
        for case in cases:
            r = requests.post(server.url + "/v1/chat/completions", timeout=600, json={
                "model": ALIAS, "messages": case.prompt, "temperature": 0, "max_tokens": max_tokens,
                "cache_prompt": False}).json()
            t = r["timings"]
            prompt_tokens, prompt_ms = prompt_tokens + t["prompt_n"], prompt_ms + t["prompt_ms"]
            predicted, predicted_ms = predicted + t["predicted_n"], predicted_ms + t["predicted_ms"]
        peak = rss(server.proc.pid, "VmHWM")
    return {"file": gguf.name, "mib": gguf.stat().st_size / 2**20, "rss_loaded_mib": loaded / 2**20,
            "rss_peak_mib": peak / 2**20, "prompt_tok_s": 1000 * prompt_tokens / prompt_ms,
            "gen_tok_s": 1000 * predicted / predicted_ms, "generated": predicted}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf-dir", type=Path, default=Path(paths.EXPORT_GGUF))
    ap.add_argument("--test", type=Path, default=Path(paths.TEST_SPLIT))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--questions", type=int, default=8)
    args = ap.parse_args()
    files = sorted(args.gguf_dir.glob("vietlegal-*.gguf"))
    if not files:
        sys.exit(f"{args.gguf_dir}: no vietlegal-*.gguf; run `dvc repro export` with export.enabled: true")
    llama, cases = ensure_built(), read_test_split(args.test, args.questions)
    print(f"{len(cases)} questions, max_tokens {args.max_tokens}, {args.threads} thread(s), one request at a time")
    print(f"{'file':<24} {'file MiB':>9} {'RSS MiB':>8} {'peak MiB':>9} {'prompt tok/s':>13} {'gen tok/s':>10}")
    logs = Path(tempfile.mkdtemp(prefix="bench-export-"))  # not beside the files: models/export is a DVC output
    for gguf in files:
        m = measure(llama, gguf, cases, args.threads, args.max_tokens, logs / f"{gguf.stem}.log")
        print(f"{m['file']:<24} {m['mib']:>9.2f} {m['rss_loaded_mib']:>8.1f} {m['rss_peak_mib']:>9.1f} "
              f"{m['prompt_tok_s']:>13.0f} {m['gen_tok_s']:>10.0f}")


if __name__ == "__main__":
    main()
