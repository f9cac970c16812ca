"""Citation F1, ROUGE, BLEU with and without retrieval, side by side.

    data/generated/answers.jsonl (generate) + data/generated/answers_rag.jsonl (generate_rag)
        -> metrics/rag.json   {"enabled": true, "examples", "no_hit_questions",
                               "without_retrieval": {"base": {...}, "tuned": {...}},
                               "with_retrieval":    {"base": {...}, "tuned": {...}},
                               "delta":             {"base": {...}, "tuned": {...}}}   (with - without)

Both files are scored by `vietlegal.metrics.scoring.score_all` with the evaluate stage's params (ROUGE,
BLEU, chrF++, citation precision/recall/F1: the names of metrics/eval.json). Perplexity is not here:
it scores the reference given the prompt, and the prompt is what differs.
"""
from __future__ import annotations

import sys
from pathlib import Path

from vietlegal import jsonl, paths
from vietlegal.data.answers import SYSTEMS, read_answers
from vietlegal.data.splits import check_against_split
from vietlegal.errors import DataError
from vietlegal.metrics.scoring import METRIC_NAMES, score_all
from vietlegal.params import EvaluateConfig
from vietlegal.stage_cli import stage_args

FILES = {"answers": paths.ANSWERS, "answers_rag": paths.ANSWERS_RAG, "test": paths.TEST_SPLIT, "metrics": paths.RAG_METRICS}
SETTINGS = ("without_retrieval", "with_retrieval")


def check_same_questions(plain: list[dict], grounded: list[dict], grounded_path: Path) -> None:
    if [r["id"] for r in plain] != [r["id"] for r in grounded]:
        raise DataError(f"{grounded_path}: its questions differ from {paths.ANSWERS} (another test split "
                        "or generate.limit); rerun `dvc repro generate_rag`")


def scores(rows: list[dict], cfg: EvaluateConfig) -> dict[str, dict]:
    references = [r["reference"] for r in rows]
    return {s: score_all([r[s] for r in rows], references, cfg.bleu_tokenize, cfg.chrf_word_order)["metrics"]
            for s in SYSTEMS}


def run(cfg: EvaluateConfig, plain_path: Path, grounded_path: Path, test_path: Path) -> dict:
    plain, grounded = read_answers(plain_path), read_answers(grounded_path)
    for rows in (plain, grounded):
        check_against_split(rows, test_path)
    check_same_questions(plain, grounded, grounded_path)
    report = {"enabled": True, "examples": len(plain), "no_hit_questions": sum(bool(r.get("no_hit")) for r in grounded),
              "without_retrieval": scores(plain, cfg), "with_retrieval": scores(grounded, cfg)}
    report["delta"] = {s: {m: report["with_retrieval"][s][m] - report["without_retrieval"][s][m] for m in METRIC_NAMES}
                       for s in SYSTEMS}
    return report


def summary(report: dict) -> str:
    head = f"{'metric':<22}" + "".join(f"{s + (' +rag' if w == 'with_retrieval' else ''):>12}" for s in SYSTEMS for w in SETTINGS)
    lines = [head] + [
        f"{name:<22}" + "".join(f"{report[w][s][name]:>12.4f}" for s in SYSTEMS for w in SETTINGS) for name in METRIC_NAMES
    ]
    return "\n".join(lines) + f"\n{report['examples']} questions, {report['no_hit_questions']} without a retrieval hit"


def main(argv: list[str] | None = None) -> int:
    params, args = stage_args(__name__, __doc__, argv, FILES)
    if not params.rag.enabled:
        report = {"enabled": False}
        print("evaluate-rag: off (set rag.enabled: true to score answers with and without retrieval)", file=sys.stderr)
    else:
        report = run(params.evaluate, args.answers, args.answers_rag, args.test)
        print(summary(report), file=sys.stderr)
    jsonl.write_json(args.metrics, report)
    return 0
