"""ROUGE-1/2/L F1 (0-1) on Vietnamese syllables.

rouge-score's default tokenizer keeps only [a-z0-9], so "điều" becomes "i u" and answers that
differ in every tone mark score 1.0. The tokenizer here NFC-normalises, lowercases and keeps
Unicode word characters: diacritics are letters, each syllable is a token, no stemming.
"""
from __future__ import annotations

import re

from rouge_score import rouge_scorer

from vietlegal.text import nfc

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
_WORD = re.compile(r"\w+")


class VietnameseTokenizer:
    """The object rouge-score calls as `tokenizer.tokenize(text)`."""

    def tokenize(self, text: str) -> list[str]:
        # NFC first: in NFD the combining marks are not \w and would split every accented syllable.
        return _WORD.findall(nfc(text).lower())


def scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False, tokenizer=VietnameseTokenizer())


def rouge_f1(predictions: list[str], references: list[str]) -> list[dict[str, float]]:
    """Per-example F1 for each ROUGE type, keyed `rouge1_f1`, `rouge2_f1`, `rougeL_f1`."""
    s = scorer()
    out = []
    for prediction, reference in zip(predictions, references, strict=True):
        scores = s.score(reference, prediction)  # rouge-score's order is (target, prediction)
        out.append({f"{t}_f1": scores[t].fmeasure for t in ROUGE_TYPES})
    return out
