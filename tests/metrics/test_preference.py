"""metrics/align.json's held-out numbers: the report from per-pair scores, and the scores from a real model with
two adapters (identical adapters: no KL, no reward; log-probs as the perplexity stage computes them)."""
from __future__ import annotations

import math
import shutil

import pytest

from vietlegal.metrics.preference import pair_scores, report
from vietlegal.train.pairs import EncodedPair


def test_report_counts_preferences_margins_and_kl():
    scores = [{"reference": (-10.0, -12.0), "policy": (-9.0, -14.0), "kl_sum": 0.2, "tokens": 10},   # both right
              {"reference": (-10.0, -9.0), "policy": (-8.0, -8.5), "kl_sum": 0.6, "tokens": 10},     # SFT wrong
              {"reference": (-5.0, -6.0), "policy": (-7.0, -6.0), "kl_sum": 0.2, "tokens": 20}]      # aligned wrong
    got = report(scores, beta=0.1)
    assert got["pairs"] == 3 and got["sft"]["preference_accuracy"] == pytest.approx(2 / 3)
    assert got["aligned"]["preference_accuracy"] == pytest.approx(2 / 3) and got["accuracy_gain"] == pytest.approx(0)
    assert got["sft"]["mean_logp_margin"] == pytest.approx((2 - 1 + 1) / 3)
    assert got["aligned"]["reward_chosen"] == pytest.approx(0.1 * (1 + 2 - 2) / 3)
    assert got["aligned"]["reward_margin"] == pytest.approx(0.1 * ((1 + 2) + (2 - 0.5) + (-2 - 0)) / 3)
    assert got["aligned"]["reward_accuracy"] == pytest.approx(2 / 3)
    assert got["aligned"]["kl_to_reference"] == pytest.approx(1.0 / 40)
    assert report([], 0.1) == {"pairs": 0, "sft": None, "aligned": None, "accuracy_gain": None}


def test_two_identical_adapters_score_alike_and_as_the_perplexity_stage(tmp_path, tiny_adapter, tiny_tokenizer,
                                                                       conversations):
    import torch

    from vietlegal.metrics.likelihood import perplexity
    from vietlegal.model.adapter import load_adapters
    from vietlegal.model.base import ensure_pad_token
    from vietlegal.model.chat import encode_example, encode_prompt

    tokenizer = ensure_pad_token(tiny_tokenizer, "vietlegal/tiny-llama")
    shutil.copytree(tiny_adapter, tmp_path / "copy")
    model = load_adapters({"sft": tiny_adapter, "aligned": tmp_path / "copy"})
    rows = []
    for first, second in zip(conversations[:3], conversations[3:6]):
        prompt = encode_prompt(tokenizer, first[:-1])
        answer = lambda conv: encode_example(tokenizer, first[:-1] + conv[-1:], 512).input_ids[len(prompt):]  # noqa
        rows.append(EncodedPair(prompt, answer(first), answer(second)))
    scores = pair_scores(model, rows, tokenizer.pad_token_id, reference="sft", policy="aligned", batch_size=2)
    got = report(scores, beta=0.1)
    assert got["aligned"]["kl_to_reference"] == pytest.approx(0, abs=1e-6) and got["accuracy_gain"] == 0
    assert all(math.isclose(s["reference"][0], s["policy"][0], rel_tol=1e-5) for s in scores)
    model.set_adapter("sft")
    with torch.no_grad():
        ppl = perplexity(model, tokenizer, [c[:-1] + c[-1:] for c in conversations[:3]], 512)
    assert [-s["reference"][0] for s in scores] == pytest.approx([e["nll_sum"] for e in ppl.per_example], rel=1e-4)
