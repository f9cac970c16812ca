"""Stage `evaluate`: score the base and the fine-tuned answers side by side.

    data/generated/answers.jsonl + data/processed/test.jsonl + data/generated/perplexity.json
        -> metrics/eval.json          {"base": {...}, "tuned": {...}, "delta": {tuned - base}, "signatures": {...}}
           metrics/predictions.jsonl  question, reference, both answers, per-example scores
           metrics/eval_plot.json     base vs tuned on a 0-1 scale, for `dvc plots show`

No model is loaded here (perplexity has its own stage), so a scoring param change reruns only this.
Metric names and scales: see `vietlegal.metrics` and docs/evaluation.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vietlegal import jsonl
from vietlegal.answers import SYSTEMS, DataError, read_answers, read_test_split, write_jsonl
from vietlegal.config import EvaluateConfig, load_params
from vietlegal.metrics import METRIC_NAMES, score_all

# Metrics drawn in the plot, each brought to 0-1 (BLEU and chrF++ are reported on 0-100).
PLOTTED = {"rouge1_f1": 1, "rouge2_f1": 1, "rougeL_f1": 1, "bleu_0_100": 100, "chrf_0_100": 100, "citation_f1": 1}


def check_against_split(answers: list[dict], test_path: Path) -> None:
    """Answers generated from another version of the test split would be scored against stale references."""
    references = {c.id: c.reference for c in read_test_split(test_path)}
    for k, row in enumerate(answers, start=1):
        if row["id"] not in references:
            raise DataError(f"answers line {k}: id {row['id']!r} is not in {test_path}; rerun `dvc repro generate`")
        if row["reference"] != references[row["id"]]:
            raise DataError(f"answers line {k}: reference of {row['id']!r} differs from {test_path}; rerun `dvc repro generate`")


def read_perplexity(path: Path) -> dict:
    if not path.exists():
        raise DataError(f"{path}: not found; run `dvc repro perplexity` (or `vietlegal perplexity`)")
    return json.loads(path.read_text(encoding="utf-8"))


def with_perplexity(metrics: dict, ppl: dict) -> dict:
    return {**metrics, "perplexity": ppl["perplexity"], "perplexity_answer_tokens": ppl["answer_tokens"]}


def delta(base: dict, tuned: dict) -> dict:
    skip = {"examples", "perplexity_answer_tokens"}
    return {k: tuned[k] - base[k] for k in tuned if k not in skip and isinstance(tuned[k], (int, float))}


def plot_rows(report: dict) -> list[dict]:
    return [
        {"label": f"{name} ({system})" if scale == 1 else f"{name} / {scale} ({system})", "metric": name,
         "system": system, "value": report[system][name] / scale}
        for name, scale in PLOTTED.items() for system in SYSTEMS
    ]


def prediction_rows(answers: list[dict], scored: dict[str, dict], ppl: dict) -> list[dict]:
    per_example_ppl = ppl.get("per_example", {})
    rows = []
    for k, a in enumerate(answers):
        row = {key: a[key] for key in ("id", "question", "reference", *SYSTEMS)}
        row["scores"] = {s: scored[s]["per_example"][k] for s in SYSTEMS}
        for s in SYSTEMS:
            p = per_example_ppl.get(a["id"], {}).get(s)
            if p and p["answer_tokens"]:
                row["scores"][s]["reference_nll_per_token"] = p["nll_sum"] / p["answer_tokens"]
        rows.append(row)
    return rows


def run(cfg: EvaluateConfig, answers_path: Path, test_path: Path, perplexity_path: Path,
        metrics_path: Path, predictions_path: Path, plot_path: Path) -> dict:
    answers = read_answers(answers_path)
    check_against_split(answers, test_path)
    ppl = read_perplexity(perplexity_path)
    references = [a["reference"] for a in answers]
    scored = {s: score_all([a[s] for a in answers], references, cfg.bleu_tokenize, cfg.chrf_word_order) for s in SYSTEMS}
    report = {s: with_perplexity(scored[s]["metrics"], ppl[s]) for s in SYSTEMS}
    report["delta"] = delta(report["base"], report["tuned"])
    report["signatures"] = scored["tuned"]["signatures"]
    jsonl.write_json(metrics_path, report)
    write_jsonl(predictions_path, prediction_rows(answers, scored, ppl))
    jsonl.write_json(plot_path, plot_rows(report))
    return report


def summary(report: dict) -> str:
    lines = [f"{'metric':<22} {'base':>10} {'tuned':>10} {'delta':>10}"]
    for name in (*METRIC_NAMES, "perplexity", "empty_predictions"):
        lines.append(f"{name:<22} " + " ".join(f"{report[k][name]:>10.4f}" for k in ("base", "tuned", "delta")))
    return "\n".join(lines) + f"\nexamples: {report['tuned']['examples']}; BLEU signature: {report['signatures']['bleu']}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vietlegal evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--answers", type=Path, default=Path("data/generated/answers.jsonl"))
    ap.add_argument("--test", type=Path, default=Path("data/processed/test.jsonl"))
    ap.add_argument("--perplexity", type=Path, default=Path("data/generated/perplexity.json"))
    ap.add_argument("--metrics", type=Path, default=Path("metrics/eval.json"))
    ap.add_argument("--predictions", type=Path, default=Path("metrics/predictions.jsonl"))
    ap.add_argument("--plot", type=Path, default=Path("metrics/eval_plot.json"))
    args = ap.parse_args(argv)
    cfg = load_params(args.params)["evaluate"]
    report = run(cfg, args.answers, args.test, args.perplexity, args.metrics, args.predictions, args.plot)
    print(summary(report), file=sys.stderr)
    return 0
