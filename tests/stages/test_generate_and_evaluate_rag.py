"""Answers with retrieval (the real tiny adapter through `generate`'s code path) and the side-by-side scores."""
from __future__ import annotations

import json

import pytest
from tests.helpers.rag_corpus import write_corpus

from vietlegal.errors import DataError
from vietlegal.data.splits import read_test_split
from vietlegal import jsonl
from vietlegal.params import EvaluateConfig, GenerateConfig, RagConfig
from vietlegal.metrics.scoring import METRIC_NAMES
from vietlegal.stages import evaluate_rag
from vietlegal.stages import generate_rag
from vietlegal.rag import retriever as rag_index
from vietlegal.rag.context import HEADER
from vietlegal.rag.corpus import load_corpus


@pytest.fixture
def rag_cfg(tmp_path) -> RagConfig:
    cfg = RagConfig(enabled=True, dense=False, in_force_on="2025-07-01", corpus_dir=str(write_corpus(tmp_path / "corpus")),
                    index_dir=str(tmp_path / "index"))
    rag_index.build(load_corpus(cfg.corpus_dir), cfg, tmp_path / "index")
    return cfg


def test_generate_rag_answers_with_the_provisions_in_the_prompt(rag_cfg, processed_dir, tiny_adapter, tmp_path):
    out = tmp_path / "answers_rag.jsonl"
    rows = generate_rag.run(GenerateConfig(max_new_tokens=4, batch_size=2), rag_cfg, processed_dir / "test.jsonl",
                            tiny_adapter, out)
    cases = read_test_split(processed_dir / "test.jsonl")
    assert [r["id"] for r in rows] == [c.id for c in cases]
    assert rows[0]["retrieved_provisions"][0] == "blds-2015-d468" and rows[1]["retrieved_provisions"][0] == "blld-2019-d113"
    assert not any(r["no_hit"] for r in rows)
    assert all(isinstance(r["base"], str) and isinstance(r["tuned"], str) for r in rows)
    assert [r["reference"] for r in rows] == [c.reference for c in cases]  # the evaluation still matches the split
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[0])["retrieved_provisions"] == rows[0]["retrieved_provisions"]


def test_the_grounded_prompt_keeps_the_question_and_the_reference(rag_cfg, processed_dir):
    retriever = rag_index.Retriever.load(rag_cfg.index_dir, rag_cfg.corpus_dir, rag_cfg)
    cases = read_test_split(processed_dir / "test.jsonl")
    grounded, _ = generate_rag.grounded_cases(cases, retriever)
    for before, after in zip(cases, grounded):
        assert after.question == before.question and after.reference == before.reference
        assert HEADER in after.messages[0]["content"] and after.messages[0]["content"].startswith(before.messages[0]["content"])


def answers(test_path, answer_of) -> list[dict]:
    return [{"id": c.id, "source": c.source, "question": c.question, "reference": c.reference,
             "base": answer_of(c), "tuned": answer_of(c)} for c in read_test_split(test_path)]


def test_side_by_side_scores_show_what_retrieval_changed(processed_dir, tmp_path):
    test = processed_dir / "test.jsonl"
    plain, grounded = tmp_path / "plain.jsonl", tmp_path / "grounded.jsonl"
    jsonl.write(plain, answers(test, lambda c: "Tôi không rõ."))
    jsonl.write(grounded, [{**row, "retrieved_provisions": ["x"], "no_hit": False} for row in answers(test, lambda c: c.reference)])
    report = evaluate_rag.run(EvaluateConfig(), plain, grounded, test)
    for system in ("base", "tuned"):
        assert report["without_retrieval"][system]["citation_f1"] == 0.0
        assert report["with_retrieval"][system]["citation_f1"] == 1.0
        assert report["with_retrieval"][system]["rougeL_f1"] == pytest.approx(1.0)
        assert report["delta"][system]["citation_f1"] == 1.0 and set(report["delta"][system]) == set(METRIC_NAMES)
    assert report["examples"] == 2 and report["no_hit_questions"] == 0
    assert "citation_f1" in evaluate_rag.summary(report)


def test_answers_for_other_questions_are_refused(processed_dir, tmp_path):
    test = processed_dir / "test.jsonl"
    plain, grounded = tmp_path / "plain.jsonl", tmp_path / "grounded.jsonl"
    rows = answers(test, lambda c: "x")
    jsonl.write(plain, rows)
    jsonl.write(grounded, rows[:1])
    with pytest.raises(DataError, match="generate_rag"):
        evaluate_rag.run(EvaluateConfig(), plain, grounded, test)


def test_both_stages_are_off_unless_rag_enabled(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("rag:\n  enabled: false\n", encoding="utf-8")
    out, metrics = tmp_path / "answers_rag.jsonl", tmp_path / "rag.json"
    assert generate_rag.main(["--params", str(params), "--out", str(out), "--meta", str(tmp_path / "meta.json")]) == 0
    assert out.read_text(encoding="utf-8") == ""
    assert json.loads((tmp_path / "meta.json").read_text(encoding="utf-8"))["backend"] is None
    assert evaluate_rag.main(["--params", str(params), "--metrics", str(metrics)]) == 0
    assert json.loads(metrics.read_text(encoding="utf-8")) == {"enabled": False}
