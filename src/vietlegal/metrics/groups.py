"""Scores per group of the test split: per value of each metadata field that prepare.keep_fields kept
(`meta` of the processed rows), so a `domain` field gives ROUGE-L and citation F1 per legal domain.

    {"domain": {"lao_dong": {"examples": 37, "base": {"rougeL_f1": ..., "citation_f1": ...}, "tuned": {...}}, ...}}

Each group is scored as a test split of its own (citations micro-averaged within it). A field with more than
MAX_GROUPS values (an id, a URL) is not a grouping: it is listed with its count of values instead.
"""
from __future__ import annotations

import json
from collections import defaultdict

from vietlegal.metrics.scoring import score_all

GROUP_METRICS = ("rougeL_f1", "bleu_0_100", "citation_precision", "citation_recall", "citation_f1")
MAX_GROUPS = 50
MISSING = "(none)"


def _value(v: object) -> str:
    return MISSING if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True)


def by_field(metas: list[dict], predictions: dict[str, list[str]], references: list[str],
             bleu_tokenize: str = "13a", chrf_word_order: int = 2) -> dict:
    """{field: {value: {"examples", system: {metric: value}}}} for every field of `metas` (one dict per example)."""
    out: dict[str, dict] = {}
    for name in sorted({k for m in metas for k in m}):
        groups: dict[str, list[int]] = defaultdict(list)
        for i, m in enumerate(metas):
            groups[_value(m.get(name))].append(i)
        if len(groups) > MAX_GROUPS:
            out[name] = {"not_grouped": f"{len(groups)} distinct values (more than {MAX_GROUPS})"}
            continue
        out[name] = {
            value: {"examples": len(rows), **{
                system: {k: v for k, v in score_all([texts[i] for i in rows], [references[i] for i in rows],
                                                    bleu_tokenize, chrf_word_order)["metrics"].items() if k in GROUP_METRICS}
                for system, texts in predictions.items()}}
            for value, rows in sorted(groups.items())
        }
    return out
