"""Reviewers' verdicts as pipeline data: data/feedback.py reads the lines the server writes, prepare turns
corrections into training records and side-by-side verdicts into preference pairs, evaluate reports the share
marked correct per model version."""
from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from tests.conftest import QA
from vietlegal.data import splitting
from vietlegal.data.feedback import parse_review, read_feedback
from vietlegal.params import BaseConfig, PrepareConfig
from vietlegal.serve.review.feedback import append, stamped
from vietlegal.stages import evaluate, prepare

SYSTEM = "Bạn là chuyên gia pháp luật."
V1, V2 = "vietlegal-111111111111", "vietlegal-222222222222"
NEW_QUESTION = "Người lao động nữ mang thai được nghỉ khám thai mấy lần?"
CORRECTION = "Theo Điều 32 Luật Bảo hiểm xã hội 2014, lao động nữ được nghỉ việc để đi khám thai 05 lần."


def answer(model: str, verdict: str, correction: str | None = None, text: str = "Một câu trả lời.") -> dict:
    return {"model": model, "system_fingerprint": "fp_" + model[-12:], "answer": text,
            "retrieved_provisions": None, "verdict": verdict, "correction": correction}


def body(question: str, answers: list[dict], preferred: int | None = None) -> dict:
    return {"question": question, "messages": [{"role": "user", "content": question}], "answers": answers,
            "preferred": preferred, "reviewer": "LS. Hà"}


def write_reviews(directory: Path, bodies: list[dict]) -> None:
    """Through the server's own writer: the lines are exactly what `vietlegal serve` appends."""
    for b in bodies:
        append(directory, stamped(parse_review(b)))


def test_a_correction_becomes_a_conversation_and_a_preference_a_pair(tmp_path):
    nfd = unicodedata.normalize("NFD", CORRECTION)
    write_reviews(tmp_path / "fb", [
        body(NEW_QUESTION, [answer(V1, "wrong_citation", correction=nfd)]),
        body(QA[0][0], [answer(V1, "incomplete", text="Đáp A"), answer(V2, "correct", text="Đáp B")], preferred=1),
    ])
    got = read_feedback(tmp_path / "fb", tmp_path, SYSTEM)
    assert got.rejects == [] and got.records == 2
    [c] = got.corrections
    assert c.messages == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": NEW_QUESTION},
                          {"role": "assistant", "content": CORRECTION}]  # NFC, the correction as the answer
    assert c.source.startswith("fb/") and c.source.endswith(".jsonl:1")
    assert c.extra["feedback"]["model"] == V1 and c.extra["feedback"]["verdict"] == "wrong_citation"
    pairs = {p["kind"]: p for p in got.preferences}
    assert sorted(pairs) == ["correction", "side_by_side"]
    pair = pairs["side_by_side"]
    assert pair["chosen"] == [{"role": "assistant", "content": "Đáp B"}]
    assert pair["rejected"] == [{"role": "assistant", "content": "Đáp A"}]
    assert (pair["chosen_model"], pair["rejected_model"]) == (V2, V1) and pair["prompt"][0]["role"] == "system"
    # The correction is preferred to the answer it corrects (stage align learns from both kinds).
    fixed = pairs["correction"]
    assert fixed["chosen"] == [{"role": "assistant", "content": CORRECTION}]  # NFC
    assert fixed["rejected"] == [{"role": "assistant", "content": "Một câu trả lời."}]
    assert (fixed["chosen_model"], fixed["rejected_model"]) == ("reviewer", V1)
    assert fixed["prompt"][-1] == {"role": "user", "content": NEW_QUESTION}
    assert [(r["model"], r["verdict"], r["preferred"]) for r in got.reviews] == [
        (V1, "wrong_citation", None), (V1, "incomplete", False), (V2, "correct", True)]
    assert got.counts()["by_verdict"] == {"correct": 1, "wrong_citation": 1, "wrong_law": 0, "incomplete": 1}


def test_bad_lines_are_rejects_naming_file_line_and_field(tmp_path):
    fb = tmp_path / "fb"
    write_reviews(fb, [body(NEW_QUESTION, [answer(V1, "correct")])])
    [path] = fb.glob("*.jsonl")
    good = path.read_text(encoding="utf-8")
    bad_verdict = json.loads(good)
    bad_verdict["answers"][0]["verdict"] = "maybe"
    no_time = {k: v for k, v in json.loads(good).items() if k != "time"}
    cut = good[: len(good) // 2]  # what a crash mid-write would leave: the last line cut short
    path.write_text(good + json.dumps(bad_verdict, ensure_ascii=False) + "\n" + json.dumps(no_time) + "\n" + cut,
                    encoding="utf-8")
    (fb / "notes.txt").write_text("x", encoding="utf-8")
    got = read_feedback(fb, tmp_path, SYSTEM)
    label = f"fb/{path.name}"
    assert [(r.source, r.reason) for r in got.rejects] == [
        (f"{label}:2", "bad_feedback"), (f"{label}:3", "bad_feedback"), (f"{label}:4", "malformed_json"),
        ("fb/notes.txt:0", "unsupported_file")]
    assert "answers[0].verdict" in got.rejects[0].detail and got.rejects[1].detail.startswith("time:")
    assert got.records == 1  # the good line is used, the rest reported


def test_a_missing_directory_is_no_feedback(tmp_path):
    got = read_feedback(tmp_path / "none", tmp_path, SYSTEM)
    assert (got.records, got.corrections, got.preferences, got.rejects) == (0, [], [], [])


def qa_rows() -> list[dict]:
    return [{"question": f"Câu hỏi số {i} về Điều {i} Bộ luật Dân sự 2015?", "answer": f"Theo Điều {i} Bộ luật Dân sự 2015."}
            for i in range(1, 41)]


def run_prepare(root: Path, tokenizer, **kw) -> dict:
    cfg = PrepareConfig(**{**dict(raw_dir="raw", sample=None, out_dir="processed", system_prompt=SYSTEM,
                                  val_fraction=0.2, test_fraction=0.2), **kw})
    return prepare.run(cfg, BaseConfig(), root=root, metrics_path=root / "metrics" / "data.json", tokenizer=tokenizer)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_prepare_trains_on_corrections_keeps_pairs_and_counts_verdicts(tmp_path, tiny_tokenizer):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "qa.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in qa_rows()), encoding="utf-8")
    run_prepare(tmp_path, tiny_tokenizer)
    test_question = read_rows(tmp_path / "processed" / "test.jsonl")[0]["messages"][1]["content"]
    write_reviews(raw / "feedback", [
        body(NEW_QUESTION, [answer(V1, "wrong_law", correction=CORRECTION)]),
        body(test_question, [answer(V1, "incomplete", correction="Câu trả lời đầy đủ hơn."), answer(V2, "correct")],
             preferred=1),
        body(NEW_QUESTION, [answer(V2, "correct")]),
    ])
    report = run_prepare(tmp_path, tiny_tokenizer)
    train = read_rows(tmp_path / "processed" / "train.jsonl")
    test = read_rows(tmp_path / "processed" / "test.jsonl")
    corrected = [r for r in train if r["messages"][-1]["content"] == CORRECTION]
    assert len(corrected) == 1 and corrected[0]["source"].startswith("raw/feedback/")
    # A correction of a test question stays with that question: a question never sits in two splits.
    assert any(r["messages"][-1]["content"] == "Câu trả lời đầy đủ hơn." for r in test)
    assert not any(splitting.question_key(r["messages"]) == splitting.question_key(test[0]["messages"]) for r in train)
    # The feedback lines are reviews, not Q&A records: nothing of them was read as a question/answer pair.
    assert not any(r["source"].startswith("raw/feedback/") and "feedback" not in r for r in train + test)
    pairs = read_rows(tmp_path / "processed" / "preferences.jsonl")
    [pair] = [p for p in pairs if p["kind"] == "side_by_side"]
    assert pair["chosen_model"] == V2 and pair["prompt"][-1]["content"] == test_question
    assert sorted(p["chosen"][0]["content"] for p in pairs if p["kind"] == "correction") == sorted(
        [CORRECTION, "Câu trả lời đầy đủ hơn."])
    reviews = read_rows(tmp_path / "processed" / "reviews.jsonl")
    assert [(r["model"], r["verdict"]) for r in reviews] == [(V1, "wrong_law"), (V1, "incomplete"), (V2, "correct"),
                                                              (V2, "correct")]
    saved = json.loads((tmp_path / "metrics" / "data.json").read_text(encoding="utf-8"))
    assert saved["feedback"]["records"] == 3 and saved["feedback"]["answers_reviewed"] == 4
    assert saved["feedback"]["by_verdict"] == {"correct": 2, "wrong_citation": 0, "wrong_law": 1, "incomplete": 1}
    assert saved["feedback"]["corrections_per_split"] == {"train": 1, "val": 0, "test": 1}
    assert saved["feedback"]["preference_pairs"] == 3  # one side by side, two corrections
    assert report["records"]["total"] == 42

    # Same inputs, same bytes (DVC skips what follows).
    first = {p.name: p.read_bytes() for p in (tmp_path / "processed").glob("*.jsonl")}
    run_prepare(tmp_path, tiny_tokenizer)
    assert first == {p.name: p.read_bytes() for p in (tmp_path / "processed").glob("*.jsonl")}


def test_a_bad_feedback_line_is_a_reject_of_prepare(tmp_path, tiny_tokenizer):
    raw = tmp_path / "raw"
    (raw / "feedback").mkdir(parents=True)
    (raw / "qa.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in qa_rows()), encoding="utf-8")
    (raw / "feedback" / "2026-12-01.jsonl").write_text('{"question": "cut sh', encoding="utf-8")
    report = run_prepare(tmp_path, tiny_tokenizer, max_reject_fraction=0.5)
    rejects = read_rows(tmp_path / "processed" / "rejects.jsonl")
    assert [(r["source"], r["reason"]) for r in rejects] == [("raw/feedback/2026-12-01.jsonl:1", "malformed_json")]
    assert report["feedback"]["rejects"] == {"malformed_json": 1}


def test_without_feedback_prepare_writes_empty_review_files(tmp_path, tiny_tokenizer):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "qa.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in qa_rows()), encoding="utf-8")
    report = run_prepare(tmp_path, tiny_tokenizer)
    assert (tmp_path / "processed" / "preferences.jsonl").read_text() == ""
    assert (tmp_path / "processed" / "reviews.jsonl").read_text() == ""
    assert report["feedback"]["records"] == 0


def test_evaluate_reports_the_share_marked_correct_per_model_version(tmp_path):
    rows = [{"source": "f:1", "review": "fb-1", "model": V1, "system_fingerprint": None, "verdict": "correct",
             "preferred": None},
            {"source": "f:2", "review": "fb-2", "model": V1, "system_fingerprint": None, "verdict": "wrong_law",
             "preferred": False},
            {"source": "f:2", "review": "fb-2", "model": V2, "system_fingerprint": None, "verdict": "correct",
             "preferred": True}]
    reviews = tmp_path / "reviews.jsonl"
    reviews.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = evaluate.review(reviews, tmp_path / "review.json")
    assert json.loads((tmp_path / "review.json").read_text(encoding="utf-8")) == report
    assert report["models"][V1]["reviewed"] == 2 and report["models"][V1]["share_correct"] == pytest.approx(0.5)
    assert report["models"][V2] == {"reviewed": 1, "correct": 1, "share_correct": 1.0,
                                    "by_verdict": {"correct": 1, "wrong_citation": 0, "wrong_law": 0, "incomplete": 0},
                                    "compared": 1, "preferred": 1}
    assert report["total"]["reviewed"] == 3
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    assert evaluate.review(empty, tmp_path / "none.json") == {"models": {}, "total": {
        "reviewed": 0, "correct": 0, "share_correct": 0.0,
        "by_verdict": {"correct": 0, "wrong_citation": 0, "wrong_law": 0, "incomplete": 0},
        "compared": 0, "preferred": 0}}
