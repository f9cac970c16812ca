"""Stage `prepare`: every Q&A file under data/raw (and the bundled sample) -> clean chat-format splits.

    data/processed/{train,val,test}.jsonl   {"id", "source": "file:line", "messages": [...]}
    data/processed/rejects.jsonl            {"source", "reason", "detail", "raw"}
    metrics/data.json                       counts, rejects per reason, length statistics

Same inputs and params give byte-identical outputs, so DVC skips everything downstream.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from vietlegal import base_model, jsonl, records
from vietlegal.config import BaseConfig, ConfigError, PrepareConfig, load_params

SPLITS = ("train", "val", "test")


def record_id(messages: list[dict]) -> str:
    """Content hash of a normalised conversation: equal ids are exact duplicates."""
    text = "\x1e".join(f"{m['role']}\x1f{m['content']}" for m in messages)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def question_key(messages: list[dict]) -> str:
    """The same question (case and spacing aside) must never sit in two splits."""
    first_user = next(m["content"] for m in messages if m["role"] == "user")
    return " ".join(first_user.casefold().split())


def dedupe(recs: list[records.Record]) -> tuple[dict[str, records.Record], int]:
    """Exact duplicates after normalisation, keyed by record id; the first occurrence is kept."""
    out: dict[str, records.Record] = {}
    for r in recs:
        out.setdefault(record_id(r.messages), r)
    return out, len(recs) - len(out)


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def split(recs: dict[str, records.Record], cfg: PrepareConfig) -> dict[str, list[tuple[str, records.Record]]]:
    """Group by question, bin groups by answer length, and cut each bin by the fractions (stratified).
    Returns (id, record) pairs per split, sorted by id so the output is byte-stable."""
    groups: dict[str, list[str]] = defaultdict(list)
    for rid, r in recs.items():
        groups[question_key(r.messages)].append(rid)
    keys = sorted(groups, key=lambda k: _rank(cfg.seed, k))
    lengths = [sum(len(recs[i].messages[-1]["content"]) for i in groups[k]) / len(groups[k]) for k in keys]
    n_bins = max(1, min(cfg.length_bins, len(keys)))
    edges = np.quantile(lengths, np.linspace(0, 1, n_bins + 1)[1:-1]) if keys else []
    bins: dict[int, list[str]] = defaultdict(list)
    for k, b in zip(keys, np.searchsorted(edges, lengths, side="right")):
        bins[int(b)].append(k)
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for members in bins.values():
        for i, k in enumerate(members):
            position = (i + 0.5) / len(members)
            name = "test" if position < cfg.test_fraction else "val" if position < cfg.test_fraction + cfg.val_fraction else "train"
            out[name].extend(groups[k])
    return {name: [(rid, recs[rid]) for rid in sorted(ids)] for name, ids in out.items()}


def _stats(values: list[int] | np.ndarray) -> dict:
    if len(values) == 0:
        return {"p50": 0, "p95": 0, "max": 0}
    a = np.asarray(values)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "max": int(a.max())}


def token_lengths(recs: list[records.Record], tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """(prompt tokens, answer tokens) per record, as `chat.encode_example` would count them.

    Rendering 100k conversations through Jinja is slow, so each distinct message content is
    tokenised once (the system prompt repeats in every record) in one batched call, and the
    template's fixed overhead is measured once per conversation shape."""
    from vietlegal.chat import END_OF_TURN, render

    answers = [r.messages[-1]["content"] + END_OF_TURN for r in recs]
    distinct = list(dict.fromkeys([m["content"] for r in recs for m in r.messages[:-1]] + answers))
    ids = tokenizer.backend_tokenizer.encode_batch(distinct, add_special_tokens=False) if distinct else []
    n_tokens = {text: len(e.ids) for text, e in zip(distinct, ids)}
    overhead: dict[tuple, int] = {}
    prompt_tokens, answer_tokens = [], []
    for r, answer in zip(recs, answers):
        shape = tuple(m["role"] for m in r.messages[:-1])
        if shape not in overhead:
            probe = [{"role": role, "content": ""} for role in shape]
            overhead[shape] = len(tokenizer(render(tokenizer, probe, True), add_special_tokens=False)["input_ids"])
        prompt_tokens.append(overhead[shape] + sum(n_tokens[m["content"]] for m in r.messages[:-1]))
        answer_tokens.append(n_tokens[answer])
    return np.array(prompt_tokens, dtype=int), np.array(answer_tokens, dtype=int)


def length_report(recs: list[records.Record], tokenizer, max_seq_length: int) -> dict:
    prompt_tokens, answer_tokens = token_lengths(recs, tokenizer)
    total = prompt_tokens + answer_tokens
    return {
        "answer_chars": _stats([len(r.messages[-1]["content"]) for r in recs]),
        "prompt_chars": _stats([sum(len(m["content"]) for m in r.messages[:-1]) for r in recs]),
        "answer_tokens": _stats(answer_tokens),
        "prompt_tokens": _stats(prompt_tokens),
        "total_tokens": _stats(total),
        "max_seq_length": max_seq_length,
        "share_over_max_seq_length": float((total > max_seq_length).mean()) if len(recs) else 0.0,
    }


def run(cfg: PrepareConfig, base: BaseConfig, root: Path = Path("."), metrics_path: Path | None = None,
        tokenizer=None) -> dict:
    _check_fractions(cfg)
    files = records.find_files(root / cfg.raw_dir, root / cfg.sample if cfg.sample else None)
    if cfg.sample and not (root / cfg.sample).exists():
        raise ConfigError(f"prepare.sample: {cfg.sample} not found; set it to null to use only {cfg.raw_dir}")
    recs, rejects = records.read_records(files, root, cfg.system_prompt)
    if not recs:
        raise ConfigError(f"no usable records in {', '.join(str(f) for f in files) or cfg.raw_dir}")
    recs, n_dupes = dedupe(recs)
    parts = split(recs, cfg)
    out = root / cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in parts.items():
        jsonl.write(out / f"{name}.jsonl", [{"id": rid, "source": r.source, "messages": r.messages} for rid, r in rows])
    jsonl.write(out / "rejects.jsonl", [vars(r) for r in rejects])

    if tokenizer is None:
        tokenizer = base_model.load_tokenizer(base_model.resolve(base.model, base.revision))
    per_source: dict[str, Counter] = defaultdict(Counter)
    for name, rows in parts.items():
        for _, r in rows:
            per_source[r.source.rsplit(":", 1)[0]][name] += 1
    seen = len(recs) + n_dupes + len(rejects)
    report = {
        "records": {**{s: len(parts[s]) for s in SPLITS}, "total": len(recs)},
        "per_source": {src: dict(c) for src, c in sorted(per_source.items())},
        "rejects": {"total": len(rejects), "share": len(rejects) / seen, "by_reason": dict(sorted(Counter(r.reason for r in rejects).items()))},
        "duplicates_removed": n_dupes,
        "lengths": length_report(list(recs.values()), tokenizer, base.max_seq_length),
    }
    if metrics_path:
        jsonl.write_json(metrics_path, report)
    if report["rejects"]["share"] > cfg.max_reject_fraction:
        raise ConfigError(_too_many_rejects(rejects, report["rejects"]["share"], cfg, out))
    return report


def _check_fractions(cfg: PrepareConfig) -> None:
    for key in ("val_fraction", "test_fraction"):
        value = getattr(cfg, key)
        if not 0 <= value < 1:
            raise ConfigError(f"prepare.{key}: {value} must be in [0, 1)")
    if cfg.val_fraction + cfg.test_fraction >= 1:
        raise ConfigError("prepare.val_fraction + prepare.test_fraction must be below 1 to leave training data")


def _too_many_rejects(rejects: list[records.Reject], share: float, cfg: PrepareConfig, out: Path) -> str:
    by_file: dict[str, Counter] = defaultdict(Counter)
    for r in rejects:
        by_file[r.source.rsplit(":", 1)[0]][r.reason] += 1
    lines = [f"  {f}: " + ", ".join(f"{n} {reason}" for reason, n in c.most_common()) for f, c in sorted(by_file.items())]
    return (
        f"{share:.1%} of records were rejected, above prepare.max_reject_fraction={cfg.max_reject_fraction}:\n"
        + "\n".join(lines)
        + f"\nEach rejected line is listed with its reason in {out / 'rejects.jsonl'}; fix those files or raise the threshold."
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vietlegal prepare", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--metrics", default="metrics/data.json")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    t0 = time.perf_counter()
    report = run(params["prepare"], params["base"], metrics_path=Path(args.metrics))
    r = report["records"]
    print(
        f"prepare: {r['total']} records -> train {r['train']}, val {r['val']}, test {r['test']}; "
        f"{report['duplicates_removed']} duplicates removed; {report['rejects']['total']} rejected "
        f"({time.perf_counter() - t0:.1f}s)",
        file=sys.stderr,
    )
    return 0
