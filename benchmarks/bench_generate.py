"""Batched vs one-at-a-time generation on the test split, through `vietlegal.model.decoding` (what `generate` uses).

    python benchmarks/bench_generate.py [--test data/processed/test.jsonl] [--max-new-tokens 64] [--batch-size 16]

Without --test it prepares the bundled sample (data/sample/legal_qa.jsonl) into a temp directory
and uses its test split. The model is the built-in tiny Llama on this 2-core CPU (--threads: torch intra-op threads);
pass --adapter models/adapter to time the fine-tuned model instead. Prints the fastest of --repeat
alternating runs per mode (the cores are shared), generated tokens per second and the speed-up;
greedy outputs of both modes are compared token for token.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from vietlegal.data.splits import read_test_split
from vietlegal.model import base as base_model
from vietlegal.model import chat, decoding
from vietlegal.model.sampling import SamplingRequest
from vietlegal.params import TINY_MODEL_ID, BaseConfig, PrepareConfig

ROOT = Path(__file__).resolve().parents[1]


def sample_test_split(tmp: Path) -> Path:
    from vietlegal.stages import prepare

    sample = ROOT / "data" / "sample" / "legal_qa.jsonl"
    if not sample.exists():
        sys.exit(f"{sample} not found: pass --test <test.jsonl> (e.g. data/processed/test.jsonl after `dvc repro prepare`)")
    cfg = PrepareConfig(raw_dir=str(tmp / "no-raw"), sample=str(sample), out_dir=str(tmp / "processed"))
    prepare.run(cfg, BaseConfig(), root=Path("/"))
    return tmp / "processed" / "test.jsonl"


def load(adapter: Path | None):
    from transformers import AutoModelForCausalLM

    if adapter:
        from vietlegal.model.adapter import load_for_inference

        model, tokenizer, _ = load_for_inference(adapter)
        return model, tokenizer
    base = base_model.resolve(TINY_MODEL_ID)
    return AutoModelForCausalLM.from_pretrained(base.path).eval(), base_model.load_tokenizer(base)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test", type=Path)
    ap.add_argument("--adapter", type=Path)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    # One intra-op thread: the tiny model's matmuls are too small to split, and on a 2-core machine shared with
    # other processes, 2 threads mostly wait for each other (measured 7-20x slower per step, batched worst).
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--repeat", type=int, default=3, help="runs per mode, alternating; the fastest is reported")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        test = args.test or sample_test_split(Path(tmp))
        cases = read_test_split(test)
    model, tokenizer = load(args.adapter)
    requests = [SamplingRequest(chat.encode_prompt(tokenizer, c.prompt), args.max_new_tokens) for c in cases]
    decoding.generate(model, tokenizer, requests[:2])  # warm-up: first-call allocations

    one_at_a_time = lambda: [decoding.generate(model, tokenizer, [r])[0] for r in requests]  # noqa: E731
    as_batches = lambda: decoding.generate(model, tokenizer, requests, args.batch_size)  # noqa: E731
    runs_single, runs_batched = [], []
    # Alternate, so both modes see the same background load; the fastest run is the least disturbed.
    for _ in range(args.repeat):
        single, t = timed(one_at_a_time)
        runs_single.append(t)
        batched, t = timed(as_batches)
        runs_batched.append(t)
    t_single, t_batched = min(runs_single), min(runs_batched)

    tokens = sum(c.completion_tokens for c in batched)
    same = sum(a.token_ids == b.token_ids for a, b in zip(single, batched))
    prompt_tokens = [len(r.prompt_ids) for r in requests]
    print(f"test split: {test} ({len(requests)} prompts, {min(prompt_tokens)}-{max(prompt_tokens)} prompt tokens), "
          f"max_new_tokens={args.max_new_tokens}, {torch.get_num_threads()} CPU threads, "
          f"model={'adapter ' + str(args.adapter) if args.adapter else TINY_MODEL_ID}")
    print(f"one at a time : {t_single:7.2f} s  {sum(c.completion_tokens for c in single) / t_single:8.1f} tok/s"
          f"  (runs: {', '.join(f'{t:.2f}' for t in runs_single)} s)")
    print(f"batched (bs={args.batch_size:>2}): {t_batched:7.2f} s  {tokens / t_batched:8.1f} tok/s"
          f"  (runs: {', '.join(f'{t:.2f}' for t in runs_batched)} s)")
    print(f"speed-up      : {t_single / t_batched:7.2f}x")
    print(f"identical greedy outputs: {same}/{len(requests)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
