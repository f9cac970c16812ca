"""`vietlegal corpus import` at full size: a 60k-article law list (the Zalo AI 2021 shape, pretty-printed JSON)
into provision records, and the wall time and peak memory it takes.

    python benchmarks/bench_corpus_import.py [--articles 60000]
"""
from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from bench_bm25 import corpus_rows  # benchmarks/ is this script's directory

from vietlegal.commands.corpus import run_import


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--articles", type=int, default=60_000)
    args = ap.parse_args()
    laws: dict[str, list] = {}
    for i, row in enumerate(corpus_rows(args.articles)):
        law = f"{i % 3000 + 1}/{row['instrument']['year']}/nđ-cp"
        laws.setdefault(law, []).append({"article_id": str(len(laws.get(law, [])) + 1),
                                         "title": f"Điều {len(laws.get(law, [])) + 1}. {row['title']}", "text": row["text"]})
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "legal_corpus.json"
        src.write_text(json.dumps([{"law_id": k, "articles": v} for k, v in laws.items()], ensure_ascii=False, indent=2),
                       encoding="utf-8")
        size = src.stat().st_size / 1e6
        t0 = time.perf_counter()
        summary = run_import([src], Path(tmp) / "corpus" / "zalo.jsonl")
        wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(f"corpus import: {summary['provisions']} provisions from {summary['laws']} laws ({size:.0f} MB of JSON) in "
          f"{wall:.1f} s, {summary['rejected']} rejected; peak RSS {peak:.2f} GB (the generator's included)")


if __name__ == "__main__":
    main()
