"""Which provisions a text cites, in the retriever's terms: the gold of the retrieval metrics.

Gold = the (instrument, article) pairs a reference answer cites, read by the evaluation's own citation
extractor (`vietlegal.metrics.citation`); a provision counts as found when its own citation ("Điều 139 Bộ
luật Lao động 2019") extracts to the same pair, so clause-level records of one article all find it.
recall@k is micro-averaged over gold pairs: found in the top k / cited.
"""
from __future__ import annotations

from vietlegal.metrics.citation import extract, pairs
from vietlegal.rag.corpus import Provision

Pair = tuple[str, str]


def provision_pair(provision: Provision) -> Pair | None:
    """(instrument key, article) as the citation metric sees this provision; None if it cannot be read."""
    found = extract(provision.citation)
    return found[0].pair if found and found[0].instrument else None


def gold_pairs(reference: str) -> set[Pair]:
    return {p for p in pairs(extract(reference)) if p[0] is not None}


def first_rank(pair: Pair, retrieved: list[Pair | None]) -> int | None:
    return next((i for i, p in enumerate(retrieved, start=1) if p == pair), None)


def method_scores(found_at: list[list[int | None]], total_gold: int, ks: list[int]) -> dict:
    """found_at[q] = for each gold pair of question q, the 1-based rank it was first retrieved at (or None)."""
    ranks = [r for question in found_at for r in question]
    scores = {f"recall@{k}": (sum(1 for r in ranks if r is not None and r <= k) / total_gold if total_gold else 0.0)
              for k in ks}
    firsts = [min((r for r in q if r is not None), default=None) for q in found_at if q]
    scores["mrr"] = sum(1 / r for r in firsts if r) / len(firsts) if firsts else 0.0
    return scores
