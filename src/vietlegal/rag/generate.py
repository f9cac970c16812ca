"""Stage `generate_rag`: answer the test split again, with the retrieved provisions in the system message.

    data/processed/test.jsonl + models/adapter + models/index + data/corpus
        -> data/generated/answers_rag.jsonl   the `generate` format (base and tuned, same decoding params),
                                              plus "retrieved_provisions" (ids) and "no_hit" per question

Everything but the prompt is `generate`'s own code path (its request building, batching, base-vs-tuned
switch and row format), so the two answer files differ only by the context. Off unless rag.enabled:
then it writes an empty file and `evaluate_rag` reports {"enabled": false}.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from vietlegal import generate
from vietlegal.answers import TestCase, read_test_split, write_jsonl
from vietlegal.config import GenerateConfig, RagConfig, load_params
from vietlegal.rag.context import Grounded, ground
from vietlegal.rag.index import Retriever


def grounded_cases(cases: list[TestCase], retriever: Retriever) -> tuple[list[TestCase], list[Grounded]]:
    """Each case with the context put into its prompt; the reference answer stays last."""
    out, grounded = [], []
    for case in cases:
        g = ground(retriever, case.prompt)
        out.append(TestCase(case.id, case.source, g.messages + [case.messages[-1]]))
        grounded.append(g)
    return out, grounded


def run(gen: GenerateConfig, rag: RagConfig, test_path: Path, adapter_dir: Path, out_path: Path) -> list[dict]:
    retriever = Retriever.load(rag.index_dir, rag.corpus_dir, rag)
    cases, grounded = grounded_cases(read_test_split(test_path, gen.limit), retriever)
    rows = generate.answer_cases(gen, cases, adapter_dir)
    for row, g in zip(rows, grounded):
        row["retrieved_provisions"], row["no_hit"] = g.provision_ids, g.no_hit
    write_jsonl(out_path, rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vietlegal generate-rag", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--test", type=Path, default=Path("data/processed/test.jsonl"))
    ap.add_argument("--adapter", type=Path, default=Path("models/adapter"))
    ap.add_argument("--out", type=Path, default=Path("data/generated/answers_rag.jsonl"))
    args = ap.parse_args(argv)
    params = load_params(args.params)
    gen, rag = params["generate"], params["rag"]
    if not rag.enabled:
        write_jsonl(args.out, [])
        print("generate-rag: off (set rag.enabled: true to answer with retrieved provisions)", file=sys.stderr)
        return 0
    t0 = time.perf_counter()
    rows = run(gen, rag, args.test, args.adapter, args.out)
    no_hit = sum(r["no_hit"] for r in rows)
    print(f"generate-rag: {len(rows)} test questions x 2 systems with top-{rag.top_k} {rag.method} provisions "
          f"({no_hit} without a hit) in {time.perf_counter() - t0:.1f}s -> {args.out}", file=sys.stderr)
    return 0
