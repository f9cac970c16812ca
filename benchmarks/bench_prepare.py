"""Prepare 100k (or 1M) distinct Q&A records and print the wall time and the process's peak memory.

    python benchmarks/bench_prepare.py [--records 100000]     # the seed's dataset size
    python benchmarks/bench_prepare.py --records 1000000

Goals on 2 cores: 100k in at most 30 s (issue 2; the seed's own pipeline took ~10 minutes per 100k);
1M in under 2 minutes and under 4 GB peak RSS (issue 13). Peak RSS is the whole process's (ru_maxrss),
tokenizer included; the raw file is streamed, so it is what the records themselves hold.
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path

from vietlegal.model import base as base_model
from vietlegal.params import BaseConfig, PrepareConfig
from vietlegal.stages import prepare

TOPICS = ["hợp đồng", "thừa kế", "kết hôn", "ly hôn", "đất đai", "thai sản", "lãi suất", "giao thông", "khiếu nại", "thử việc"]
LAWS = ["Bộ luật Dân sự 2015", "Bộ luật Lao động 2019", "Luật Hôn nhân và gia đình 2014", "Luật Đất đai 2024"]


def make_raw(raw: Path, n: int) -> None:
    rng = random.Random(0)
    raw.mkdir(parents=True)
    with open(raw / "bench.jsonl", "w", encoding="utf-8") as f:
        for i in range(n):
            topic, law = rng.choice(TOPICS), rng.choice(LAWS)
            answer = f"Theo khoản {rng.randint(1, 5)} Điều {rng.randint(1, 700)} {law}, quy định về {topic} như sau. " * rng.randint(1, 6)
            rec = {"instruction": "Trả lời câu hỏi pháp luật sau:", "input": f"Câu hỏi {i}: quy định về {topic} là gì?", "output": answer}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    args = ap.parse_args()
    base = BaseConfig()
    tokenizer = base_model.load_tokenizer(base_model.resolve(base.model))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_raw(root / "raw", args.records)
        cfg = PrepareConfig(raw_dir="raw", sample=None, out_dir="out")
        t0 = time.perf_counter()
        report = prepare.run(cfg, base, root=root, metrics_path=root / "data.json", tokenizer=tokenizer)
        wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux
    r = report["records"]
    goal = "<= 30 s" if args.records <= 100_000 else "< 120 s, < 4 GB"
    print(f"prepare: {args.records} records -> train {r['train']} / val {r['val']} / test {r['test']} in {wall:.1f} s "
          f"({args.records / wall:,.0f} records/s), peak RSS {peak:.2f} GB (goal {goal})")


if __name__ == "__main__":
    main()
