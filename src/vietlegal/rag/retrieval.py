"""Stage `retrieval`: does the retriever find the provisions the reference answers cite?

    data/processed/test.jsonl + models/index + data/corpus
        -> metrics/retrieval.json                 recall@k and MRR per method (bm25, dense, hybrid)
           metrics/retrieval_per_question.jsonl   gold and retrieved provisions per test question

Gold = the (instrument, article) pairs the reference answer cites, read by the evaluation's own
citation extractor (`vietlegal.metrics.citation`); a provision counts as found when its own citation
("Điều 139 Bộ luật Lao động 2019") extracts to the same pair, so clause-level records of one article
all find it. recall@k is micro-averaged over gold pairs: found in the top k / cited. A cited article
that is not in the corpus (or not in force on rag.in_force_on) is a miss, and counted apart.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vietlegal import jsonl
from vietlegal.answers import TestCase, read_test_split, write_jsonl
from vietlegal.config import RagConfig, load_params
from vietlegal.metrics.citation import extract, pairs
from vietlegal.rag.corpus import Provision
from vietlegal.rag.index import Retriever, query_date

Pair = tuple[str, str]


def provision_pair(provision: Provision) -> Pair | None:
    """(instrument key, article) as the citation metric sees this provision; None if it cannot be read."""
    found = extract(provision.citation)
    return found[0].pair if found and found[0].instrument else None


def gold_pairs(reference: str) -> set[Pair]:
    return {p for p in pairs(extract(reference)) if p[0] is not None}


def ranked_pairs(hits, pair_of: dict[str, Pair | None]) -> list[Pair | None]:
    return [pair_of[h.provision.id] for h in hits]


def method_scores(found_at: list[list[int | None]], total_gold: int, ks: list[int]) -> dict:
    """found_at[q] = for each gold pair of question q, the 1-based rank it was first retrieved at (or None)."""
    ranks = [r for question in found_at for r in question]
    scores = {f"recall@{k}": (sum(1 for r in ranks if r is not None and r <= k) / total_gold if total_gold else 0.0)
              for k in ks}
    firsts = [min((r for r in q if r is not None), default=None) for q in found_at if q]
    scores["mrr"] = sum(1 / r for r in firsts if r) / len(firsts) if firsts else 0.0
    return scores


def first_rank(pair: Pair, retrieved: list[Pair | None]) -> int | None:
    return next((i for i, p in enumerate(retrieved, start=1) if p == pair), None)


def run(retriever: Retriever, cases: list[TestCase], ks: list[int]) -> tuple[dict, list[dict]]:
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
            retrieved = ranked_pairs(hits, pair_of)
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
    ap = argparse.ArgumentParser(prog="vietlegal retrieval", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--test", type=Path, default=Path("data/processed/test.jsonl"))
    ap.add_argument("--metrics", type=Path, default=Path("metrics/retrieval.json"))
    ap.add_argument("--per-question", type=Path, default=Path("metrics/retrieval_per_question.jsonl"))
    args = ap.parse_args(argv)
    cfg: RagConfig = load_params(args.params)["rag"]
    retriever = Retriever.load(cfg.index_dir, cfg.corpus_dir, cfg)
    ks = sorted(set(cfg.recall_k))
    report, detail = run(retriever, read_test_split(args.test), ks)
    jsonl.write_json(args.metrics, report)
    write_jsonl(args.per_question, detail)
    print(summary(report, ks), file=sys.stderr)
    return 0
