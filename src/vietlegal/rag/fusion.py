"""Reciprocal rank fusion (Cormack et al., 2009): score(d) = sum over rankings of 1 / (k + rank of d).

It needs no score calibration, which BM25 (unbounded) and cosine similarity (-1..1) lack; k = 60 is
the paper's value and damps the influence of any single ranking's top positions.
"""
from __future__ import annotations


def reciprocal_rank_fusion(rankings: list[list[int]], k: int = 60) -> list[tuple[int, float]]:
    """(item, fused score) best first; ties keep the order of first appearance (so the first ranking wins)."""
    if k < 1:
        raise ValueError(f"rag.rrf_k: must be >= 1, got {k}")
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])
