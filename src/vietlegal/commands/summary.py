"""Print the headline metrics of the last run, readable in a terminal.

`dvc metrics show` puts every metrics file into one table with a column per key (150+ here);
this prints base vs tuned side by side and one short block per other stage.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from vietlegal import paths

EVAL_ROWS = ("rouge1_f1", "rouge2_f1", "rougeL_f1", "bleu_0_100", "chrf_0_100", "perplexity",
             "citation_precision", "citation_recall", "citation_f1", "citation_none_share")
TRAIN_ROWS = ("backend", "global_step", "train_seconds", "train_tokens_per_second", "peak_memory_gb",
              "base_eval_loss", "eval_loss", "label_audit.share_ending_in_eot", "label_audit.padding_efficiency",
              "label_audit.truncated")
DATA_ROWS = ("records.train", "records.val", "records.test", "rejects.total", "duplicates_removed",
             "lengths.total_tokens.p95", "lengths.share_over_max_seq_length")

ALIGN_ROWS = ("trained", "reason", "pairs.train", "pairs.held_out", "held_out.sft.preference_accuracy",
              "held_out.aligned.preference_accuracy", "held_out.aligned.reward_margin",
              "held_out.aligned.kl_to_reference", "train.global_step", "wall_seconds")
GROUND_ROWS = ("with_context", "top_k", "method", "train.no_hit", "train.cited_in_context", "val.cited_in_context")
RAG_ROWS = ("rougeL_f1", "chrf_0_100", "citation_precision", "citation_recall", "citation_f1", "citation_none_share")
RAG_COLUMNS = (("base", "without_retrieval"), ("base", "with_retrieval"), ("tuned", "without_retrieval"),
               ("tuned", "with_retrieval"))


def _get(data: dict, dotted: str):
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def eval_table(data: dict) -> list[str]:
    parts = ("base", "tuned", "delta") + (("aligned",) if "aligned" in data else ())  # stage align trained one
    lines = [f"  {'metric':<22}" + "".join(f"{p:>12}" for p in parts)]
    for name in EVAL_ROWS:
        row = [_get(data, f"{part}.{name}") for part in parts]
        lines.append(f"  {name:<22}" + "".join(f"{_fmt(v):>12}" for v in row))
    return lines


def rag_table(data: dict) -> list[str]:
    """Closed-book against retrieval, base and tuned (metrics/rag.json)."""
    if not data.get("enabled"):
        return ["  off (rag.enabled: false)"]
    lines = [f"  {'metric':<22}" + "".join(f"{s + (' +rag' if w == 'with_retrieval' else ''):>12}" for s, w in RAG_COLUMNS)]
    for name in RAG_ROWS:
        lines.append(f"  {name:<22}" + "".join(f"{_fmt(_get(data, f'{w}.{s}.{name}')):>12}" for s, w in RAG_COLUMNS))
    return lines + [f"  {data.get('examples')} questions, {data.get('no_hit_questions')} without a retrieval hit"]


def pretrain_block(data: dict) -> list[str]:
    """The pre-trained base: size, time and its held-out perplexity from first to last step (metrics/pretrain.json)."""
    if not data.get("enabled"):
        return ["  off (pretrain.enabled: false): base.model names another base"]
    curve = data.get("curve") or [{}]
    cpu = f" ({data['cpu_seconds']:.0f}s CPU)" if data.get("cpu_seconds") is not None else ""
    return [f"  {data['parameters'] / 1e6:.2f}M parameters, {data['steps']} steps, {data['seconds']:.0f}s{cpu}; held-out "
            f"perplexity {_fmt(curve[0].get('eval_perplexity'))} -> {_fmt(curve[-1].get('eval_perplexity'))}"]


def block(data: dict, rows: tuple[str, ...]) -> list[str]:
    return [f"  {name:<36}{_fmt(_get(data, name)):>14}" for name in rows if _get(data, name) is not None]


def review_table(data: dict) -> list[str]:
    """Reviewers' verdicts per model version (metrics/review.json)."""
    models = data.get("models") or {}
    if not models:
        return ["  no reviewed answers (put the review page's feedback under data/raw/feedback/)"]
    lines = [f"  {'model':<28}{'reviewed':>10}{'correct':>10}{'share':>10}{'preferred':>12}"]
    for model, s in models.items():
        lines.append(f"  {model:<28}{s['reviewed']:>10}{s['correct']:>10}{_fmt(s['share_correct']):>10}"
                     f"{str(s['preferred']) + '/' + str(s['compared']):>12}")
    return lines


def render(metrics_dir: Path) -> str:
    out: list[str] = []
    sections = [
        ("pre-trained base (metrics/pretrain.json)", "pretrain.json", pretrain_block),
        ("data (metrics/data.json)", "data.json", lambda d: block(d, DATA_ROWS)),
        ("training context (metrics/ground.json)", "ground.json", lambda d: block(d, GROUND_ROWS)),
        ("training (metrics/train.json)", "train.json", lambda d: block(d, TRAIN_ROWS)),
        ("preference tuning on held-out pairs (metrics/align.json)", "align.json", lambda d: block(d, ALIGN_ROWS)),
        ("evaluation on the test split (metrics/eval.json; BLEU and chrF++ on 0-100)", "eval.json", eval_table),
        ("closed-book vs retrieval on the test split (metrics/rag.json)", "rag.json", rag_table),
        ("retrieval (metrics/retrieval.json)", "retrieval.json",
         lambda d: block(d, tuple(f"{m}.recall@{k}" for m in ("bm25", "dense", "hybrid") for k in (1, 3, 5)))),
        ("reviewers' verdicts per version (metrics/review.json)", "review.json", review_table),
    ]
    for title, name, show in sections:
        data = _load(metrics_dir / name)
        if data is not None:
            out += [title, *show(data), ""]
    return "\n".join(out) if out else f"no metrics under {metrics_dir}/ yet: run `dvc repro`"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vietlegal summary", description=__doc__.splitlines()[0])
    ap.add_argument("--metrics-dir", type=Path, default=Path(paths.METRICS_DIR))
    print(render(ap.parse_args(argv).metrics_dir))
    return 0
