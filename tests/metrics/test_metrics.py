"""ROUGE, BLEU, chrF and perplexity on Vietnamese text, against hand-computed expectations."""
from __future__ import annotations

import math
import unicodedata

import pytest

from vietlegal.errors import ConfigError
from vietlegal.metrics.scoring import METRIC_NAMES, score_all
from vietlegal.metrics.bleu import corpus_scores
from vietlegal.metrics.rouge import VietnameseTokenizer, rouge_f1

ANSWER = "Theo khoản 1 Điều 139 Bộ luật Lao động 2019, lao động nữ được nghỉ thai sản trước và sau khi sinh con là 06 tháng."
# Six syllables; the second line changes every tone mark and keeps the letters: only "lao" is shared.
TONED = "Người lao động được nghỉ phép"
RETONED = "Ngươi lao đông đươc nghi phep"


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def test_tokenizer_keeps_diacritics_as_letters():
    assert VietnameseTokenizer().tokenize("Điều 139 BỘ LUẬT, người-lao động") == ["điều", "139", "bộ", "luật", "người", "lao", "động"]
    assert VietnameseTokenizer().tokenize(nfd("Điều khoản")) == ["điều", "khoản"]


def test_identical_answers_score_rouge_1_and_bleu_100():
    m = score_all([ANSWER], [ANSWER])["metrics"]
    assert m["rouge1_f1"] == m["rouge2_f1"] == m["rougeL_f1"] == 1.0
    assert m["bleu_0_100"] == pytest.approx(100.0)
    assert m["chrf_0_100"] == pytest.approx(100.0)


def test_tone_marks_only_difference_scores_far_below_1():
    # Hand-computed: 1 of 6 unigrams shared -> P = R = F1 = 1/6; no shared bigram; LCS 1 -> 1/6.
    [r] = rouge_f1([RETONED], [TONED])
    assert r["rouge1_f1"] == pytest.approx(1 / 6)
    assert r["rouge2_f1"] == 0.0
    assert r["rougeL_f1"] == pytest.approx(1 / 6)
    m = score_all([RETONED], [TONED])["metrics"]
    assert m["bleu_0_100"] < 10


def test_default_rouge_tokenizer_is_blind_to_diacritics():
    """Why the custom tokenizer exists: rouge-score's default drops every accented letter."""
    from rouge_score import rouge_scorer

    default = rouge_scorer.RougeScorer(["rougeL"]).score(TONED, RETONED)["rougeL"].fmeasure
    assert default >= 0.5  # "người" and "ngươi" both become "ng i"; "động" and "đông" both "ng"
    assert rouge_f1([RETONED], [TONED])[0]["rougeL_f1"] < 0.2


def test_nfd_and_nfc_score_the_same():
    as_nfc = score_all([ANSWER, TONED], [ANSWER, RETONED])
    as_nfd = score_all([nfd(ANSWER), nfd(TONED)], [ANSWER, nfd(RETONED)])
    assert as_nfd["metrics"] == as_nfc["metrics"]
    assert as_nfd["per_example"] == as_nfc["per_example"]
    assert score_all([nfd(ANSWER)], [ANSWER])["metrics"]["bleu_0_100"] == pytest.approx(100.0)


def test_partial_overlap_hand_computed():
    # prediction 4 syllables, reference 6, 3 shared in order: P 3/4, R 3/6, F1 = 0.6; bigrams: 2 of 3 vs 5 -> 0.5
    [r] = rouge_f1(["được nghỉ phép năm"], ["người lao động được nghỉ phép"])
    assert r["rouge1_f1"] == pytest.approx(0.6)
    assert r["rouge2_f1"] == pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5))
    assert r["rougeL_f1"] == pytest.approx(0.6)


def test_bleu_is_corpus_level_with_signature():
    s = corpus_scores([ANSWER, "không"], [ANSWER, "có"], tokenize="13a")
    assert "tok:13a" in s.bleu_signature and "nrefs:1" in s.bleu_signature
    assert "nw:2" in s.chrf_signature  # chrF++
    # corpus BLEU pools n-gram counts: not the mean of sentence scores
    mean_sentence = sum(e["sentence_bleu_0_100"] for e in s.per_example) / 2
    assert 0 < s.bleu < 100 and s.bleu != pytest.approx(mean_sentence)
    assert corpus_scores([ANSWER], [ANSWER], tokenize="intl").bleu_signature.count("tok:intl") == 1


@pytest.mark.parametrize("tokenize", ["flores200", "spm", "nonsense"])
def test_bleu_tokenizers_that_download_or_do_not_exist_are_refused(tokenize):
    with pytest.raises(ConfigError, match="evaluate.bleu_tokenize"):
        corpus_scores([ANSWER], [ANSWER], tokenize=tokenize)


def test_empty_predictions_are_counted_and_scored_zero():
    out = score_all(["", "   ", ANSWER], [ANSWER, ANSWER, ANSWER])
    assert out["metrics"]["empty_predictions"] == 2
    assert out["metrics"]["examples"] == 3
    assert [e["empty"] for e in out["per_example"]] == [True, True, False]
    assert out["per_example"][0]["rougeL_f1"] == 0.0
    assert out["metrics"]["rougeL_f1"] == pytest.approx(1 / 3)
    assert set(METRIC_NAMES) <= set(out["metrics"])


def test_mismatched_lengths_refused():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        score_all(["a", "b"], ["a"])


# ---- perplexity ------------------------------------------------------------------------------

def independent_perplexity(model, tokenizer, conversations) -> tuple[float, list[float]]:
    """Plain torch, one conversation at a time, answer tokens found as "full minus the generation prompt"."""
    import torch

    total_nll, total_tokens, per_example = 0.0, 0, []
    for messages in conversations:
        prompt_text = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        full_text = tokenizer.apply_chat_template(messages, tokenize=False)
        prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        full = tokenizer(full_text, add_special_tokens=False)["input_ids"]
        assert full[: len(prompt)] == prompt
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([full])).logits[0].double(), dim=-1)
        nll = -sum(float(logprobs[t - 1, full[t]]) for t in range(len(prompt), len(full)))
        n = len(full) - len(prompt)
        total_nll, total_tokens = total_nll + nll, total_tokens + n
        per_example.append(math.exp(nll / n))
    return math.exp(total_nll / total_tokens), per_example


def test_perplexity_equals_independent_token_weighted_computation(tiny_base, tiny_tokenizer, conversations):
    from transformers import AutoModelForCausalLM

    from vietlegal.metrics.likelihood import perplexity

    model = AutoModelForCausalLM.from_pretrained(tiny_base[0]).eval()
    # Answers of different lengths, so token weighting and padding both matter.
    convs = conversations[:5]
    expected, _ = independent_perplexity(model, tiny_tokenizer, convs)
    got = perplexity(model, tiny_tokenizer, convs, max_length=2048, batch_size=3)
    assert got.perplexity == pytest.approx(expected, rel=1e-5)
    assert perplexity(model, tiny_tokenizer, convs, max_length=2048, batch_size=1).perplexity == pytest.approx(expected, rel=1e-5)
    assert got.examples == 5 and got.truncated == 0
    # answers of different lengths: a mean of per-example perplexities would weight them differently
    assert len({e["answer_tokens"] for e in got.per_example}) > 1


def test_perplexity_with_nothing_to_score_says_what_to_do(tiny_base, tiny_tokenizer, conversations):
    from transformers import AutoModelForCausalLM

    from vietlegal.errors import DataError
    from vietlegal.metrics.likelihood import perplexity

    model = AutoModelForCausalLM.from_pretrained(tiny_base[0]).eval()
    with pytest.raises(DataError, match="max_seq_length"):
        perplexity(model, tiny_tokenizer, conversations[:2], max_length=8)
