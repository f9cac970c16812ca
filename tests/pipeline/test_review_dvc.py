"""DVC-level: the review-to-training loop of docs/review.md. Verdicts as `vietlegal serve` writes them are put
under data/raw/feedback and `dvc add`ed; `dvc repro` trains on the correction and metrics/review.json reports the
verdicts per model version next to metrics/eval.json. Runs the real pipeline on the tiny model in a throwaway copy
of the project (tests/helpers/project_copy.py)."""
from __future__ import annotations

import json

import pytest

from tests.conftest import QA
from tests.helpers.project_copy import small_project
from vietlegal.data.feedback import parse_review
from vietlegal.serve.review.feedback import append, stamped

pytestmark = pytest.mark.slow
V1, V2 = "vietlegal-111111111111", "vietlegal-222222222222"
QUESTION = "Người lao động nữ mang thai được nghỉ việc để đi khám thai mấy lần?"
CORRECTION = "Theo Điều 32 Luật Bảo hiểm xã hội 2014, lao động nữ mang thai được nghỉ việc để đi khám thai 05 lần."


def reviewed(model: str, verdict: str, correction: str | None = None) -> dict:
    return {"model": model, "system_fingerprint": "fp_" + model[-12:], "answer": "Một câu trả lời chưa đúng.",
            "retrieved_provisions": None, "verdict": verdict, "correction": correction}


def test_dvc_add_feedback_and_repro_trains_on_the_correction_and_reports_verdicts_per_version(tmp_path):
    project = small_project(tmp_path / "project", tmp_path / "home")

    # What the server appended to serve.feedback_dir, copied under data/raw/feedback.
    feedback = project.path / "data" / "raw" / "feedback"
    for body in ({"question": QUESTION, "answers": [reviewed(V1, "wrong_law", CORRECTION)]},
                 {"question": QA[1][0], "answers": [reviewed(V1, "incomplete"), reviewed(V2, "correct")], "preferred": 1},
                 {"question": QA[2][0], "answers": [reviewed(V2, "correct")]}):
        append(feedback, stamped(parse_review(body)))
    project.dvc("add", "data/raw/feedback")
    log = project.dvc("repro", "evaluate", timeout=900).stdout
    assert "Running stage 'train'" in log and "Running stage 'evaluate'" in log

    training = [json.loads(line) for line in
                (project.path / "data" / "training" / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert any(row["messages"][-1]["content"] == CORRECTION for row in training)  # what `train` learnt from
    pairs = (project.path / "data" / "processed" / "preferences.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted((json.loads(p)["kind"], json.loads(p)["chosen_model"]) for p in pairs) == [
        ("correction", "reviewer"), ("side_by_side", V2)]
    data = json.loads((project.path / "metrics" / "data.json").read_text(encoding="utf-8"))
    assert data["feedback"]["by_verdict"] == {"correct": 2, "wrong_citation": 0, "wrong_law": 1, "incomplete": 1}

    shown = project.dvc_json("metrics", "show")
    review = next(v["data"]["metrics/review.json"]["data"] for v in shown.values())
    assert review["models"][V1]["reviewed"] == 2 and review["models"][V1]["share_correct"] == 0.0
    assert review["models"][V2]["share_correct"] == 1.0
    assert project.dvc_json("status", "evaluate", "--with-deps") == {}  # feedback tracked, outputs recorded
