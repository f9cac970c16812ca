"""Answer the test split with retrieved provisions in the prompt.

    data/processed/test.jsonl + models/adapter + models/index + data/corpus
        -> data/generated/answers_rag.jsonl   the `generate` format (base and tuned, same decoding params),
                                              plus "retrieved_provisions" (ids) and "no_hit" per question

Everything but the prompt is `generate`'s own code path (`vietlegal.answering`), so the two answer
files differ only by the context. Off unless rag.enabled: then it writes an empty file and `evaluate_rag`
reports {"enabled": false}.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from vietlegal import paths
from vietlegal.data.answers import write_answers
from vietlegal.data.conversation import Conversation
from vietlegal.data.splits import read_test_split
from vietlegal.answering import answer_cases, select_backend
from vietlegal.params import GenerateConfig, RagConfig
from vietlegal.rag.context import Grounded, ground
from vietlegal.rag.retriever import Retriever
from vietlegal.stage_cli import stage_args

FILES = {"test": paths.TEST_SPLIT, "adapter": paths.ADAPTER, "out": paths.ANSWERS_RAG, "meta": paths.ANSWERS_RAG_META}
PARAM_FILES = ("rag.corpus_dir", "rag.index_dir")


def grounded_cases(cases: list[Conversation], retriever: Retriever) -> tuple[list[Conversation], list[Grounded]]:
    """Each case with the context put into its prompt; the reference answer stays last."""
    out, grounded = [], []
    for case in cases:
        g = ground(retriever, case.prompt)
        out.append(Conversation(case.id, case.source, g.messages + [case.messages[-1]]))
        grounded.append(g)
    return out, grounded


def run(gen: GenerateConfig, rag: RagConfig, test_path: Path, adapter_dir: Path, out_path: Path,
        meta_path: Path | None = None) -> list[dict]:
    backend = select_backend(gen.backend)
    retriever = Retriever.load(rag.index_dir, rag.corpus_dir, rag)
    cases, grounded = grounded_cases(read_test_split(test_path, gen.limit), retriever)
    rows = answer_cases(gen, cases, adapter_dir, backend)
    for row, g in zip(rows, grounded):
        row["retrieved_provisions"], row["no_hit"] = g.provision_ids, g.no_hit
    write_answers(rows, out_path, meta_path, backend, gen.tensor_parallel_size)
    return rows


def main(argv: list[str] | None = None) -> int:
    params, args = stage_args(__name__, __doc__, argv, FILES)
    gen, rag = params.generate, params.rag
    if not rag.enabled:
        write_answers([], args.out, args.meta, None, gen.tensor_parallel_size)
        print("generate-rag: off (set rag.enabled: true to answer with retrieved provisions)", file=sys.stderr)
        return 0
    t0 = time.perf_counter()
    rows = run(gen, rag, args.test, args.adapter, args.out, args.meta)
    no_hit = sum(r["no_hit"] for r in rows)
    print(f"generate-rag: {len(rows)} test questions x 2 systems with top-{rag.top_k} {rag.method} provisions "
          f"({no_hit} without a hit) in {time.perf_counter() - t0:.1f}s -> {args.out}", file=sys.stderr)
    return 0
