"""`vietlegal score`: any predictions JSONL, the same metric names as eval.json, errors naming file:line."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vietlegal import cli
from vietlegal.metrics.scoring import METRIC_NAMES
from vietlegal.errors import PredictionsError
from vietlegal.commands.score import pair_up

A = "Theo Điều 429 Bộ luật Dân sự 2015, thời hiệu khởi kiện tranh chấp hợp đồng là 03 năm."
B = "Theo Điều 2 Luật Người cao tuổi 2009, người cao tuổi là công dân từ đủ 60 tuổi trở lên."


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_scores_a_file_prints_a_table_and_writes_json(tmp_path, capsys):
    preds = write(tmp_path / "p.jsonl", [{"prediction": A, "reference": A}, {"prediction": "", "reference": B}])
    out = tmp_path / "out" / "scores.json"
    assert cli.main(["score", "--predictions", str(preds), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "bleu_0_100" in table and "rougeL_f1" in table and "tok:13a" in table
    report = json.loads(out.read_text(encoding="utf-8"))
    m = report["prediction"]
    assert set(METRIC_NAMES) <= set(m)
    # hand-computed: one perfect answer, one empty -> ROUGE-L mean 0.5, citation P 1/1, R 1/2
    assert m["rougeL_f1"] == pytest.approx(0.5)
    assert m["citation_precision"] == 1.0 and m["citation_recall"] == 0.5
    assert m["empty_predictions"] == 1 and m["citation_none_share"] == 0.5
    assert "tok:13a" in report["signatures"]["bleu"]


def test_missing_field_names_file_and_line(tmp_path, capsys):
    preds = write(tmp_path / "p.jsonl", [{"prediction": A, "reference": A}, "", {"answer": B, "reference": B}])
    assert cli.main(["score", "--predictions", str(preds)]) == 2
    err = capsys.readouterr().err
    assert f"{preds}:3: missing field 'prediction'" in err
    assert "answer, reference" in err  # says what the line has instead


@pytest.mark.parametrize("line, message", [
    ("{not json", ":1: not valid JSON"),
    ('["a list"]', ":1: expected a JSON object"),
    ('{"prediction": 3, "reference": "x"}', ":1: field 'prediction' must be a string"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    preds = write(tmp_path / "p.jsonl", [line])
    with pytest.raises(PredictionsError, match=message):
        pair_up(preds, None, "prediction", "reference")


def test_empty_file(tmp_path):
    with pytest.raises(PredictionsError, match="no predictions"):
        pair_up(write(tmp_path / "p.jsonl", [""]), None, "prediction", "reference")


def test_mismatched_lengths_name_the_line_without_counterpart(tmp_path):
    preds = write(tmp_path / "p.jsonl", [{"prediction": A}, {"prediction": B}, {"prediction": B}])
    refs = write(tmp_path / "r.jsonl", [{"reference": A}, {"reference": B}])
    with pytest.raises(PredictionsError, match=rf"{preds}:3: has no counterpart: {refs} has 2 rows"):
        pair_up(preds, refs, "prediction", "reference")


def test_two_files_with_ids_must_line_up(tmp_path):
    preds = write(tmp_path / "p.jsonl", [{"id": "a", "prediction": A}, {"id": "c", "prediction": B}])
    refs = write(tmp_path / "r.jsonl", [{"id": "a", "reference": A}, {"id": "b", "reference": B}])
    with pytest.raises(PredictionsError, match=rf"{preds}:2: id 'c' does not match {refs}:2"):
        pair_up(preds, refs, "prediction", "reference")
    ok = write(tmp_path / "r2.jsonl", [{"id": "a", "reference": A}, {"id": "c", "reference": B}])
    assert pair_up(preds, ok, "prediction", "reference") == ([A, B], [A, B])


def test_console_script_exit_code(tmp_path):
    preds = write(tmp_path / "p.jsonl", [{"reference": A}])
    done = subprocess.run([sys.executable, "-m", "vietlegal.cli", "score", "--predictions", str(preds)],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert f"{preds}:1: missing field 'prediction'" in done.stderr
    assert "Traceback" not in done.stderr


def test_structured_legal_answers_are_scored_by_their_citations(tmp_path):
    """A prediction in the legal-answer schema (what a client gets with it as its response_format) is read as
    its answer plus its citations: the right provisions as data score the same citation F1 as in prose."""
    from vietlegal.metrics import structured_answer

    reference = "Theo khoản 1 Điều 139 Bộ luật Lao động 2019 và Điều 5 Nghị định 145/2020/NĐ-CP, nghỉ 6 tháng."
    good = {"answer": "Lao động nữ được nghỉ thai sản 6 tháng.", "citations": [
        {"instrument": "Bộ luật Lao động", "number": "45/2019/QH14", "year": 2019, "article": 139, "clause": 1},
        {"instrument": "Nghị định", "number": "145/2020/NĐ-CP", "year": 2020, "article": 5, "clause": None}]}
    wrong = {"answer": "Nghỉ 6 tháng.", "citations": [
        {"instrument": "Bộ luật Lao động", "number": None, "year": 2012, "article": 157, "clause": None}]}
    assert structured_answer.as_text(json.dumps(good, ensure_ascii=False)).endswith(
        "Căn cứ: khoản 1 Điều 139 Bộ luật Lao động 2019; Điều 5 Nghị định 145/2020/NĐ-CP.")
    assert structured_answer.as_text("Theo Điều 139 ...") is None and structured_answer.as_text('{"answer": 1}') is None
    preds = tmp_path / "p.jsonl"
    preds.write_text("\n".join(json.dumps({"prediction": json.dumps(p, ensure_ascii=False), "reference": reference},
                                          ensure_ascii=False) for p in (good, wrong)) + "\n", encoding="utf-8")
    out = tmp_path / "s.json"
    assert cli.main(["score", "--predictions", str(preds), "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["structured_answers"] == 2
    metrics = report["prediction"]
    assert (metrics["citations_correct"], metrics["citations_cited"], metrics["citations_expected"]) == (2, 3, 4)
