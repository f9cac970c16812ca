"""Deduplication and the train/val/test split: by question group, stratified by answer length, byte-stable.

The same question (case and spacing aside) never sits in two splits; groups are ranked by a seeded hash, binned
by mean answer length and each bin is cut by the fractions, so every split gets short and long answers alike.
A group holding a record whose source fixed its split (`"split"` on the record: the generated statute Q&A,
split by article) goes there whole, the split of its first such record by id, and is not counted in the bins.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np

from vietlegal.data.conversation import Conversation
from vietlegal.data.records import SPLITS
from vietlegal.params import PrepareConfig


def question_key(messages: list[dict]) -> str:
    """The same question (case and spacing aside) must never sit in two splits."""
    first_user = next(m["content"] for m in messages if m["role"] == "user")
    return " ".join(first_user.casefold().split())


def dedupe(recs: list[Conversation]) -> tuple[dict[str, Conversation], int]:
    """Exact duplicates after normalisation, keyed by record id; the first occurrence is kept."""
    out: dict[str, Conversation] = {}
    for r in recs:
        out.setdefault(r.id, r)
    return out, len(recs) - len(out)


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def split(recs: dict[str, Conversation], cfg: PrepareConfig) -> dict[str, list[Conversation]]:
    """Group by question, bin groups by answer length, and cut each bin by the fractions (stratified).
    Returns the conversations of each split, sorted by id so the output is byte-stable."""
    groups: dict[str, list[str]] = defaultdict(list)
    for rid, r in recs.items():
        groups[question_key(r.messages)].append(rid)
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for k, members in list(groups.items()):
        fixed = next((recs[i].extra["split"] for i in sorted(members) if recs[i].extra.get("split")), None)
        if fixed:
            out[fixed].extend(groups.pop(k))
    keys = sorted(groups, key=lambda k: _rank(cfg.seed, k))
    lengths = [sum(len(recs[i].messages[-1]["content"]) for i in groups[k]) / len(groups[k]) for k in keys]
    n_bins = max(1, min(cfg.length_bins, len(keys)))
    edges = np.quantile(lengths, np.linspace(0, 1, n_bins + 1)[1:-1]) if keys else []
    bins: dict[int, list[str]] = defaultdict(list)
    for k, b in zip(keys, np.searchsorted(edges, lengths, side="right")):
        bins[int(b)].append(k)
    for members in bins.values():
        for i, k in enumerate(members):
            position = (i + 0.5) / len(members)
            name = "test" if position < cfg.test_fraction else "val" if position < cfg.test_fraction + cfg.val_fraction else "train"
            out[name].extend(groups[k])
    return {name: [recs[rid] for rid in sorted(ids)] for name, ids in out.items()}
