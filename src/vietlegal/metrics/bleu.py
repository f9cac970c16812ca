"""Corpus BLEU (0-100) and chrF++ (0-100) through sacrebleu, with their signatures.

sacrebleu reports BLEU on 0-100 (HF `evaluate` and the seed's "0.25-0.35" use 0-1) and does no
Unicode normalisation, so both sides are NFC-normalised here. The signature (tokenizer, smoothing,
version) is recorded beside every score so two numbers are only compared when they are comparable.
"""
from __future__ import annotations

from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF

from vietlegal.errors import ConfigError
from vietlegal.text import nfc

# These download a SentencePiece model at first use; nothing may reach the network here.
NEEDS_DOWNLOAD = ("flores101", "flores200", "spm", "spBLEU-1K")


@dataclass
class CorpusScores:
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    per_example: list[dict[str, float]]


def check_tokenize(tokenize: str) -> None:
    from sacrebleu.metrics.bleu import _TOKENIZERS

    if tokenize in NEEDS_DOWNLOAD:
        raise ConfigError(f"evaluate.bleu_tokenize={tokenize!r} downloads a model at first use; use 13a or intl")
    if tokenize not in _TOKENIZERS:
        raise ConfigError(f"evaluate.bleu_tokenize={tokenize!r} is not a sacrebleu tokenizer; one of {sorted(_TOKENIZERS)}")


def corpus_scores(predictions: list[str], references: list[str], tokenize: str = "13a", chrf_word_order: int = 2) -> CorpusScores:
    check_tokenize(tokenize)
    hyps = [nfc(p) for p in predictions]
    refs = [nfc(r) for r in references]
    bleu = BLEU(tokenize=tokenize)
    chrf = CHRF(word_order=chrf_word_order)
    # Sentence BLEU needs effective order: a short answer would otherwise score 0 for lacking 4-grams.
    sentence_bleu = BLEU(tokenize=tokenize, effective_order=True)
    per_example = [
        {"sentence_bleu_0_100": sentence_bleu.sentence_score(h, [r]).score, "chrf_0_100": chrf.sentence_score(h, [r]).score}
        for h, r in zip(hyps, refs, strict=True)
    ]
    return CorpusScores(
        bleu=bleu.corpus_score(hyps, [refs]).score,
        chrf=chrf.corpus_score(hyps, [refs]).score,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        per_example=per_example,
    )
