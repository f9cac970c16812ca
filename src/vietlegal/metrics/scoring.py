"""Every text metric of an answer against its reference, under one set of names (`evaluate`, `evaluate_rag`, `score`).

    rouge1_f1, rouge2_f1, rougeL_f1    ROUGE F1 on NFC lower-cased syllables, 0-1 (mean over examples)
    bleu_0_100                         sacrebleu corpus BLEU, 0-100 (the seed's "0.25-0.35" is 0-1)
    chrf_0_100                         sacrebleu chrF, 0-100; chrF++ with evaluate.chrf_word_order=2 (default)
    citation_precision/recall/f1       (instrument, article) pairs, micro-averaged, 0-1
    citation_none_share                share of predictions that cite no provision
    empty_predictions                  predictions that are empty after NFC and trimming (scored as "")
    examples                           number of (prediction, reference) pairs

Perplexity needs the model and lives in `metrics.likelihood`; the evaluate stage adds it.
"""
from __future__ import annotations

from vietlegal.metrics.bleu import corpus_scores
from vietlegal.metrics.citation import citation_scores
from vietlegal.metrics.rouge import rouge_f1
from vietlegal.text import nfc

# What `vietlegal score` prints and what eval.json holds per system, in this order.
METRIC_NAMES = (
    "rouge1_f1", "rouge2_f1", "rougeL_f1", "bleu_0_100", "chrf_0_100",
    "citation_precision", "citation_recall", "citation_f1", "citation_none_share",
)


def score_all(predictions: list[str], references: list[str], bleu_tokenize: str = "13a", chrf_word_order: int = 2) -> dict:
    """{"metrics": {name: value}, "signatures": {"bleu", "chrf"}, "per_example": [{name: value}, ...]}."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("nothing to score: no predictions")
    predictions = [nfc(p) for p in predictions]
    references = [nfc(r) for r in references]
    rouge = rouge_f1(predictions, references)
    corpus = corpus_scores(predictions, references, bleu_tokenize, chrf_word_order)
    citations, citation_detail = citation_scores(predictions, references)
    n = len(predictions)
    metrics = {
        **{name: sum(r[name] for r in rouge) / n for name in ("rouge1_f1", "rouge2_f1", "rougeL_f1")},
        "bleu_0_100": corpus.bleu,
        "chrf_0_100": corpus.chrf,
        **citations,
        "empty_predictions": sum(1 for p in predictions if not p),
        "examples": n,
    }
    per_example = [
        {**r, **b, **c, "empty": not p}
        for p, r, b, c in zip(predictions, rouge, corpus.per_example, citation_detail)
    ]
    return {
        "metrics": metrics,
        "signatures": {"bleu": corpus.bleu_signature, "chrf": corpus.chrf_signature},
        "per_example": per_example,
    }
