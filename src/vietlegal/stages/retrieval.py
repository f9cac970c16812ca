"""Retrieval recall@k on the test split (gold: the provisions the reference answers cite).

    data/processed/test.jsonl + models/index + data/corpus
        -> metrics/retrieval.json                 recall@k and MRR per method (bm25, dense, hybrid)
           metrics/retrieval_per_question.jsonl   gold and retrieved provisions per test question

Gold and recall@k as `vietlegal.rag.recall` defines them. A cited article that is not in the corpus (or not
in force on rag.in_force_on) is a miss, and counted apart.
"""
from __future__ import annotations

import sys

from vietlegal import jsonl, paths
from vietlegal.data.conversation import Conversation
from vietlegal.data.splits import read_test_split
from vietlegal.rag.recall import first_rank, gold_pairs, method_scores, provision_pair
from vietlegal.rag.retriever import Retriever, query_date
from vietlegal.stage_cli import stage_args

FILES = {"test": paths.TEST_SPLIT, "metrics": paths.RETRIEVAL_METRICS, "per_question": paths.RETRIEVAL_PER_QUESTION}
PARAM_FILES = ("rag.corpus_dir", "rag.index_dir")


def run(retriever: Retriever, cases: list[Conversation], ks: list[int]) -> tuple[dict, list[dict]]:
    cfg = retriever.cfg
    depth = max(ks)
    on = query_date(cfg)
    pair_of = {p.id: provision_pair(p) for p in retriever.corpus.provisions}
    in_corpus = set(pair_of.values())
    in_force = {pair_of[p.id] for p, ok in zip(retriever.corpus.provisions, retriever.in_force(on)) if ok}
    questions = [c.question for c in cases]
    gold = [sorted(gold_pairs(c.reference)) for c in cases]
    vectors = retriever.embed_queries(questions)
    found_at: dict[str, list[list[int | None]]] = {m: [] for m in retriever.methods}
    detail = [{"id": c.id, "question": c.question, "gold": [" ".join(p) for p in g], "retrieved": {}}
              for c, g in zip(cases, gold)]
    for method in retriever.methods:
        for q, (question, want) in enumerate(zip(questions, gold)):
            vector = vectors[q] if vectors is not None else None
            hits = retriever.search(question, depth, on, method, vector)
            retrieved = [pair_of[h.provision.id] for h in hits]
            found_at[method].append([first_rank(p, retrieved) for p in want])
            detail[q]["retrieved"][method] = [h.provision.id for h in hits]
    total = sum(len(g) for g in gold)
    flat = [p for g in gold for p in g]
    report = {
        "questions": len(cases),
        "questions_with_gold": sum(1 for g in gold if g),
        "gold_citations": total,
        "gold_missing_from_corpus": sum(1 for p in flat if p not in in_corpus),
        "gold_not_in_force": sum(1 for p in flat if p in in_corpus and p not in in_force),
        "in_force_on": on.isoformat(),
        "index": {"provisions": len(retriever.corpus), "dense": retriever.manifest["dense"]},
        **{m: method_scores(found_at[m], total, ks) for m in retriever.methods},
    }
    return report, detail


def summary(report: dict, ks: list[int]) -> str:
    methods = [m for m in ("bm25", "dense", "hybrid") if m in report]
    names = [f"recall@{k}" for k in ks] + ["mrr"]
    lines = [f"{'method':<8} " + " ".join(f"{n:>10}" for n in names)]
    lines += [f"{m:<8} " + " ".join(f"{report[m][n]:>10.4f}" for n in names) for m in methods]
    return "\n".join(lines) + (
        f"\n{report['questions']} questions, {report['gold_citations']} cited provisions "
        f"({report['gold_missing_from_corpus']} not in the corpus, {report['gold_not_in_force']} not in force on "
        f"{report['in_force_on']})"
    )


def main(argv: list[str] | None = None) -> int:
    params, args = stage_args(__name__, __doc__, argv, FILES)
    cfg = params.rag
    retriever = Retriever.load(cfg.index_dir, cfg.corpus_dir, cfg)
    ks = sorted(set(cfg.recall_k))
    report, detail = run(retriever, read_test_split(args.test), ks)
    jsonl.write_json(args.metrics, report)
    jsonl.write(args.per_question, detail)
    print(summary(report, ks), file=sys.stderr)
    return 0
