"""Human verdicts per model version: the share of reviewed answers a reviewer marked correct (metrics/review.json).

Input: prepare's data/processed/reviews.jsonl, one row per reviewed answer (vietlegal.data.feedback):
{"source", "review", "model", "system_fingerprint", "verdict", "preferred": true | false | null}. The model id
names the adapter version that answered (`vietlegal-<hash>`, or the base model's id), so `dvc metrics diff`
shows, next to ROUGE and citation F1, how the reviewers judged each version.
"""
from __future__ import annotations

from collections import defaultdict

VERDICTS = ("correct", "wrong_citation", "wrong_law", "incomplete")  # what a reviewer can say of an answer


def _scores(rows: list[dict]) -> dict:
    correct = sum(1 for r in rows if r["verdict"] == "correct")
    compared = [r for r in rows if r.get("preferred") is not None]
    return {
        "reviewed": len(rows), "correct": correct, "share_correct": correct / len(rows) if rows else 0.0,
        "by_verdict": {v: sum(1 for r in rows if r["verdict"] == v) for v in VERDICTS},
        "compared": len(compared), "preferred": sum(1 for r in compared if r["preferred"]),
    }


def review_report(rows: list[dict]) -> dict:
    """{"models": {model id: scores}, "total": scores}; models sorted by id, so the file is byte-stable."""
    per_model: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        per_model[r["model"]].append(r)
    return {"models": {m: _scores(per_model[m]) for m in sorted(per_model)}, "total": _scores(rows)}
