"""generate -> perplexity -> evaluate on the real tiny model and a real (untrained) LoRA adapter."""
from __future__ import annotations

import json

import pytest

from vietlegal.stages import evaluate, generate, perplexity
from vietlegal.commands import score
from vietlegal.errors import DataError
from vietlegal.data.splits import read_test_split
from vietlegal.errors import ConfigError
from vietlegal.params import EvaluateConfig, GenerateConfig
from vietlegal.metrics.scoring import METRIC_NAMES


@pytest.fixture(scope="module")
def stage_dir(tmp_path_factory, tiny_adapter, conversations):
    """generate and perplexity run once; the tests below read what they wrote."""
    root = tmp_path_factory.mktemp("eval")
    test = root / "test.jsonl"
    with open(test, "w", encoding="utf-8") as f:
        for i, msgs in enumerate(conversations[:4]):
            f.write(json.dumps({"id": f"t{i}", "source": f"fixture:{i + 1}", "messages": msgs}, ensure_ascii=False) + "\n")
    rows = generate.run(GenerateConfig(max_new_tokens=12, batch_size=3), test, tiny_adapter, root / "answers.jsonl")
    perplexity.run(test, tiny_adapter, root / "perplexity.json", max_length=512, batch_size=3)
    return root, rows


def test_generate_writes_both_systems_from_the_same_prompts(stage_dir, tiny_adapter, tiny_base):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vietlegal.model import chat

    root, rows = stage_dir
    assert [r["id"] for r in rows] == ["t0", "t1", "t2", "t3"]
    lines = [json.loads(x) for x in (root / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    assert lines == rows
    case = read_test_split(root / "test.jsonl")[0]
    assert rows[0]["question"] == case.question and rows[0]["reference"] == case.reference
    for r in rows:
        assert r["base_finish_reason"] in ("stop", "length") and 1 <= r["tuned_completion_tokens"] <= 12
    # "base" is the adapter's base model, prompted through the chat template, greedy: check it against
    # plain transformers generate on the base weights, one prompt at a time (no padding).
    model = AutoModelForCausalLM.from_pretrained(tiny_base[0]).eval()
    tok = AutoTokenizer.from_pretrained(tiny_adapter)
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    for r, case in zip(rows, read_test_split(root / "test.jsonl")):
        ids = chat.encode_prompt(tok, case.prompt)
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False, eos_token_id=eot,
                                 pad_token_id=tok.pad_token_id)
        expected = tok.decode(out[0, len(ids):], skip_special_tokens=True, clean_up_tokenization_spaces=False)
        assert r["base"] == expected
    assert any(r["base"] != r["tuned"] for r in rows)  # the (random, untrained) LoRA weights do act


def test_bad_decoding_params_name_the_param(stage_dir, tiny_adapter):
    root, _ = stage_dir
    with pytest.raises(ConfigError, match="generate.temperature"):
        generate.run(GenerateConfig(temperature=5.0), root / "test.jsonl", tiny_adapter, root / "x.jsonl")


def test_evaluate_reports_base_and_tuned_side_by_side(stage_dir):
    root, rows = stage_dir
    out = root / "metrics"
    report = evaluate.run(EvaluateConfig(), root / "answers.jsonl", root / "test.jsonl", root / "perplexity.json",
                          out / "eval.json", out / "predictions.jsonl", out / "eval_plot.json")
    on_disk = json.loads((out / "eval.json").read_text(encoding="utf-8"))
    assert on_disk == report
    for system in ("base", "tuned"):
        assert set(METRIC_NAMES) | {"perplexity", "empty_predictions", "examples"} <= set(report[system])
        assert report[system]["examples"] == 4
    assert report["delta"]["rougeL_f1"] == pytest.approx(report["tuned"]["rougeL_f1"] - report["base"]["rougeL_f1"])
    assert report["delta"]["perplexity"] == pytest.approx(report["tuned"]["perplexity"] - report["base"]["perplexity"])
    ppl = json.loads((root / "perplexity.json").read_text(encoding="utf-8"))
    assert report["tuned"]["perplexity"] == ppl["tuned"]["perplexity"] and ppl["tuned"]["examples"] == 4
    assert "tok:13a" in report["signatures"]["bleu"]

    predictions = [json.loads(x) for x in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [p["id"] for p in predictions] == [r["id"] for r in rows]
    assert {"question", "reference", "base", "tuned"} <= set(predictions[0])
    assert {"rougeL_f1", "sentence_bleu_0_100", "citations", "reference_nll_per_token"} <= set(predictions[0]["scores"]["tuned"])

    plot = json.loads((out / "eval_plot.json").read_text(encoding="utf-8"))
    assert len(plot) == 12 and all(0 <= p["value"] <= 1 for p in plot)
    bleu = next(p for p in plot if p["metric"] == "bleu_0_100" and p["system"] == "tuned")
    assert bleu["value"] == pytest.approx(report["tuned"]["bleu_0_100"] / 100)

    # `vietlegal score` on the same answers gives the same numbers under the same names.
    scored = root / "scored.json"
    assert score.main(["--predictions", str(root / "answers.jsonl"), "--prediction-field", "tuned", "--out", str(scored)]) == 0
    tuned = json.loads(scored.read_text(encoding="utf-8"))["tuned"]
    assert tuned == {k: v for k, v in report["tuned"].items() if not k.startswith("perplexity")}


def test_answers_from_another_test_split_are_refused(stage_dir, tmp_path):
    root, rows = stage_dir
    stale = tmp_path / "answers.jsonl"
    changed = [dict(rows[0], reference="Một câu trả lời cũ.")] + rows[1:]
    stale.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in changed), encoding="utf-8")
    with pytest.raises(DataError, match="reference of 't0' differs"):
        evaluate.run(EvaluateConfig(), stale, root / "test.jsonl", root / "perplexity.json",
                     tmp_path / "e.json", tmp_path / "p.jsonl", tmp_path / "plot.json")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"id": "t0", "question": "q", "reference": "r", "base": "b"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{broken}:1: missing field\(s\) tuned"):
        evaluate.run(EvaluateConfig(), broken, root / "test.jsonl", root / "perplexity.json",
                     tmp_path / "e.json", tmp_path / "p.jsonl", tmp_path / "plot.json")


def test_an_aligned_adapter_is_a_third_system_scored_beside_base_and_tuned(stage_dir, tiny_adapter, tmp_path):
    """What stage align wrote: an adapter (answered and scored as "aligned") or a note (nothing changes)."""
    from vietlegal.model import untrained

    root, rows = stage_dir
    cfg = GenerateConfig(max_new_tokens=12, batch_size=3)
    note = tmp_path / "not-trained"
    note.mkdir()
    (note / "NOT_TRAINED.txt").write_text("No aligned adapter: no preference pairs.\n", encoding="utf-8")
    assert generate.run(cfg, root / "test.jsonl", tiny_adapter, tmp_path / "a.jsonl", aligned_dir=note) == rows
    aligned = untrained.adapter(tmp_path / "aligned", seed=5)
    three = generate.run(cfg, root / "test.jsonl", tiny_adapter, tmp_path / "a.jsonl", aligned_dir=aligned)
    alone = generate.run(cfg, root / "test.jsonl", aligned, tmp_path / "b.jsonl")
    assert [{k: r[k] for k in rows[0]} for r in three] == rows, "base and tuned as without it"
    assert [r["aligned"] for r in three] == [r["tuned"] for r in alone], "the aligned adapter's own answers"
    assert all(r["aligned_finish_reason"] in ("stop", "length") for r in three)

    out = tmp_path / "metrics"
    report = evaluate.run(EvaluateConfig(), tmp_path / "a.jsonl", root / "test.jsonl", root / "perplexity.json",
                          out / "eval.json", out / "predictions.jsonl", out / "eval_plot.json")
    assert report["aligned"]["examples"] == 4 and "perplexity" not in report["aligned"]
    assert report["delta_aligned"]["rougeL_f1"] == pytest.approx(report["aligned"]["rougeL_f1"]
                                                                 - report["tuned"]["rougeL_f1"])
    assert {p["system"] for p in json.loads((out / "eval_plot.json").read_text())} == {"base", "tuned", "aligned"}
    predictions = [json.loads(x) for x in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert set(predictions[0]["scores"]) == {"base", "tuned", "aligned"}
    assert "delta_aligned" in evaluate.summary(report)
