"""Score generated answers: ROUGE, BLEU, chrF++, perplexity, citations, base and tuned side by side.

    data/generated/answers.jsonl + data/processed/test.jsonl + data/generated/perplexity.json
        -> metrics/eval.json          {"base": {...}, "tuned": {...}, "delta": {tuned - base}, "signatures": {...},
                                       "by_field": {field: {value: {...}}} where prepare.keep_fields kept a field;
                                       "aligned": {...}, "delta_aligned": {aligned - tuned} when stage align trained
                                       an adapter (no perplexity: that stage scores base and tuned)}
           metrics/predictions.jsonl  question, reference, both answers, per-example scores
           metrics/eval_plot.json     base vs tuned on a 0-1 scale, for `dvc plots show`
    data/processed/reviews.jsonl (reviewers' verdicts, docs/review.md)
        -> metrics/review.json        per model version: reviewed, correct, share_correct

No model is loaded here (perplexity has its own stage), so a scoring param change reruns only this.
Metric names and scales: see `vietlegal.metrics.scoring` and docs/evaluation.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

from vietlegal import jsonl, paths
from vietlegal.data.answers import ALIGNED, read_answers, read_perplexity, systems_of
from vietlegal.data.splits import check_against_split, read_test_split
from vietlegal.errors import DataError
from vietlegal.metrics.groups import by_field
from vietlegal.metrics.review import review_report
from vietlegal.metrics.scoring import METRIC_NAMES, score_all
from vietlegal.params import EvaluateConfig
from vietlegal.stage_cli import stage_args

FILES = {"answers": paths.ANSWERS, "test": paths.TEST_SPLIT, "perplexity": paths.PERPLEXITY,
         "metrics": paths.EVAL_METRICS, "predictions": paths.PREDICTIONS, "plot": paths.EVAL_PLOT,
         "reviews": paths.REVIEWS, "review": paths.REVIEW_METRICS}

# Metrics drawn in the plot, each brought to 0-1 (BLEU and chrF++ are reported on 0-100).
PLOTTED = {"rouge1_f1": 1, "rouge2_f1": 1, "rougeL_f1": 1, "bleu_0_100": 100, "chrf_0_100": 100, "citation_f1": 1}


def with_perplexity(metrics: dict, ppl: dict) -> dict:
    return {**metrics, "perplexity": ppl["perplexity"], "perplexity_answer_tokens": ppl["answer_tokens"]}


def delta(base: dict, tuned: dict) -> dict:
    skip = {"examples", "perplexity_answer_tokens"}
    return {k: tuned[k] - base[k] for k in tuned if k not in skip and isinstance(tuned[k], (int, float))}


def plot_rows(report: dict, systems: tuple[str, ...]) -> list[dict]:
    return [
        {"label": f"{name} ({system})" if scale == 1 else f"{name} / {scale} ({system})", "metric": name,
         "system": system, "value": report[system][name] / scale}
        for name, scale in PLOTTED.items() for system in systems
    ]


def prediction_rows(answers: list[dict], scored: dict[str, dict], ppl: dict) -> list[dict]:
    per_example_ppl = ppl.get("per_example", {})
    systems = tuple(scored)
    rows = []
    for k, a in enumerate(answers):
        row = {key: a[key] for key in ("id", "question", "reference", *systems)}
        row["scores"] = {s: scored[s]["per_example"][k] for s in systems}
        for s in systems:
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
    systems = systems_of(answers)
    scored = {s: score_all([a[s] for a in answers], references, cfg.bleu_tokenize, cfg.chrf_word_order) for s in systems}
    report = {s: with_perplexity(scored[s]["metrics"], ppl[s]) if s in ppl else scored[s]["metrics"] for s in systems}
    report["delta"] = delta(report["base"], report["tuned"])
    if ALIGNED in report:
        report["delta_aligned"] = delta(report["tuned"], report[ALIGNED])
    report["signatures"] = scored["tuned"]["signatures"]
    meta = {c.id: c.extra.get("meta") or {} for c in read_test_split(test_path)}
    metas = [meta.get(a["id"], {}) for a in answers]
    if any(metas):  # prepare.keep_fields kept fields (a domain): scores per value of each
        report["by_field"] = by_field(metas, {s: [a[s] for a in answers] for s in systems}, references,
                                      cfg.bleu_tokenize, cfg.chrf_word_order)
    jsonl.write_json(metrics_path, report)
    jsonl.write(predictions_path, prediction_rows(answers, scored, ppl))
    jsonl.write_json(plot_path, plot_rows(report, systems))
    return report


def review(reviews_path: Path, review_path: Path) -> dict:
    """metrics/review.json from prepare's reviews.jsonl (an empty report when nothing was reviewed)."""
    rows = [row for _, row in jsonl.read_objects(reviews_path, DataError, "run `vietlegal prepare`")]
    for k, row in enumerate(rows, start=1):
        if not isinstance(row.get("model"), str) or not isinstance(row.get("verdict"), str):
            raise DataError(f"{reviews_path}:{k}: expected model and verdict; re-run `vietlegal prepare`")
    report = review_report(rows)
    jsonl.write_json(review_path, report)
    return report


def summary(report: dict) -> str:
    columns = ("base", "tuned", "delta") + ((ALIGNED, "delta_aligned") if ALIGNED in report else ())
    w = 13 if ALIGNED in report else 10
    lines = [f"{'metric':<22} " + " ".join(f"{c:>{w}}" for c in columns)]
    for name in (*METRIC_NAMES, "perplexity", "empty_predictions"):
        lines.append(f"{name:<22} " + " ".join(f"{report[k][name]:>{w}.4f}" if name in report[k] else f"{'n/a':>{w}}"
                                                for k in columns))
    return "\n".join(lines) + f"\nexamples: {report['tuned']['examples']}; BLEU signature: {report['signatures']['bleu']}"


def main(argv: list[str] | None = None) -> int:
    params, args = stage_args(__name__, __doc__, argv, FILES)
    report = run(params.evaluate, args.answers, args.test, args.perplexity, args.metrics, args.predictions, args.plot)
    print(summary(report), file=sys.stderr)
    reviewed = review(args.reviews, args.review)
    for model, scores in reviewed["models"].items():
        print(f"review {model}: {scores['correct']}/{scores['reviewed']} marked correct", file=sys.stderr)
    return 0
