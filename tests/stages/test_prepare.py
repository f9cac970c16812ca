"""The prepare stage: shapes in, clean chat-format splits out, every reject named by file:line."""
from __future__ import annotations

import csv
import json
import unicodedata
from pathlib import Path

import pytest

from vietlegal.stages import prepare
from vietlegal.data import splitting
from vietlegal.model import lengths
from vietlegal.data.conversation import Conversation
from vietlegal.model.chat import encode_example
from vietlegal.cli import main as cli_main
from vietlegal.params import BaseConfig, PrepareConfig
from vietlegal.errors import ConfigError

SYSTEM = "Bạn là chuyên gia pháp luật."


def cfg(**kw) -> PrepareConfig:
    base = dict(raw_dir="raw", sample=None, out_dir="processed", system_prompt=SYSTEM, val_fraction=0.2, test_fraction=0.2)
    return PrepareConfig(**{**base, **kw})


def write_jsonl(path: Path, rows: list, raw_lines: list[str] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r, ensure_ascii=False) for r in rows] + list(raw_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def qa(i: int, answer_len: int = 1) -> dict:
    return {"question": f"Câu hỏi số {i} về Điều {i} Bộ luật Dân sự 2015?", "answer": f"Theo Điều {i} Bộ luật Dân sự 2015. " * answer_len}


def read_split(root: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (root / "processed" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


def all_rows(root: Path) -> list[dict]:
    return [row for name in splitting.SPLITS for row in read_split(root, name)]


def run(root: Path, tokenizer, **kw) -> dict:
    return prepare.run(cfg(**kw), BaseConfig(), root=root, metrics_path=root / "metrics" / "data.json", tokenizer=tokenizer)


def test_every_input_shape_becomes_a_conversation(tmp_path, tiny_tokenizer):
    raw = tmp_path / "raw"
    write_jsonl(raw / "alpaca.jsonl", [{"instruction": "Trả lời câu hỏi pháp luật sau:", "input": "Tuổi kết hôn?", "output": "Điều 8 Luật Hôn nhân và gia đình 2014."}])
    write_jsonl(raw / "chat.jsonl", [{"messages": [
        {"role": "system", "content": "Hệ thống riêng."}, {"role": "user", "content": "Hỏi 1"},
        {"role": "assistant", "content": "Đáp 1"}, {"role": "user", "content": "Hỏi 2"}, {"role": "assistant", "content": "Đáp 2"}],
        "type": "faq", "source": "web"}])
    (raw / "faq.json").write_text(json.dumps([{"question": "Hỏi FAQ?", "answer": "Đáp FAQ."}, {"instruction": "Lệnh?", "answer": "Đáp lệnh."}], ensure_ascii=False, indent=2), encoding="utf-8")
    with open(raw / "pairs.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question", "answer"])
        w.writerow(["Câu hỏi CSV, có dấu phẩy?", "Trả lời\nhai dòng."])
    run(tmp_path, tiny_tokenizer, val_fraction=0, test_fraction=0)
    rows = {r["source"]: r["messages"] for r in all_rows(tmp_path)}
    assert set(rows) == {"raw/alpaca.jsonl:1", "raw/chat.jsonl:1", "raw/faq.json:2", "raw/faq.json:6", "raw/pairs.csv:2"}
    assert rows["raw/alpaca.jsonl:1"][1] == {"role": "user", "content": "Trả lời câu hỏi pháp luật sau:\nTuổi kết hôn?"}
    assert rows["raw/alpaca.jsonl:1"][0] == {"role": "system", "content": SYSTEM}
    assert rows["raw/chat.jsonl:1"][0]["content"] == "Hệ thống riêng."  # a record's own system prompt is kept
    assert [m["role"] for m in rows["raw/chat.jsonl:1"]] == ["system", "user", "assistant", "user", "assistant"]
    assert rows["raw/pairs.csv:2"][2]["content"] == "Trả lời\nhai dòng."
    assert rows["raw/faq.json:6"][1]["content"] == "Lệnh?"


def test_text_hygiene_nfc_bom_crlf_and_duplicates(tmp_path, tiny_tokenizer):
    raw = tmp_path / "raw"
    raw.mkdir()
    nfc_q, ans = "Thời hiệu khởi kiện là bao lâu?", "Ba năm theo Điều 429 Bộ luật Dân sự 2015."
    nfd = {"question": unicodedata.normalize("NFD", nfc_q), "answer": "  " + unicodedata.normalize("NFD", ans) + "  "}
    body = json.dumps(nfd, ensure_ascii=False) + "\r\n" + json.dumps({"question": nfc_q, "answer": ans}, ensure_ascii=False) + "\r\n"
    (raw / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    write_jsonl(raw / "more.jsonl", [qa(i) for i in range(1, 4)])
    report = run(tmp_path, tiny_tokenizer, val_fraction=0, test_fraction=0)
    rows = all_rows(tmp_path)
    assert report["duplicates_removed"] == 1 and report["rejects"]["total"] == 0
    kept = next(r for r in rows if r["source"].startswith("raw/bom.jsonl"))
    assert kept["messages"][1]["content"] == nfc_q and kept["messages"][2]["content"] == ans
    for r in rows:
        for m in r["messages"]:
            assert unicodedata.is_normalized("NFC", m["content"]) and m["content"] == m["content"].strip()


def test_bad_input_is_rejected_by_file_and_line_and_counted(tmp_path, tiny_tokenizer):
    raw = tmp_path / "raw"
    good = [qa(i) for i in range(1, 40)]
    write_jsonl(raw / "mixed.jsonl", good[:3], raw_lines=[
        '{"question": "thiếu dấu ngoặc"',                        # line 4: malformed
        json.dumps({"question": "Không có trả lời?"}),           # line 5: missing answer
        json.dumps({"question": "Trả lời rỗng?", "answer": "  "}),  # line 6: empty answer
        json.dumps({"title": "x", "body": "y"}),                  # line 7: unknown shape
    ])
    write_jsonl(raw / "ok.jsonl", good[3:])
    (raw / "latin1.jsonl").write_bytes(json.dumps({"question": "ok", "answer": "ok"}).encode() + b"\n" + '{"question": "Đi đâu"}'.encode("cp1258"))
    (raw / "notes.txt").write_text("không phải dữ liệu", encoding="utf-8")
    report = run(tmp_path, tiny_tokenizer, max_reject_fraction=0.5)
    rejects = [json.loads(line) for line in (tmp_path / "processed" / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    got = {(r["source"], r["reason"]) for r in rejects}
    assert got == {
        ("raw/mixed.jsonl:4", "malformed_json"), ("raw/mixed.jsonl:5", "missing_answer"),
        ("raw/mixed.jsonl:6", "empty_answer"), ("raw/mixed.jsonl:7", "unknown_shape"),
        ("raw/latin1.jsonl:2", "not_utf8"), ("raw/notes.txt:0", "unsupported_file"),
    }
    assert next(r for r in rejects if r["reason"] == "malformed_json")["raw"] == '{"question": "thiếu dấu ngoặc"'
    assert report["rejects"]["by_reason"] == {"empty_answer": 1, "malformed_json": 1, "missing_answer": 1, "not_utf8": 1, "unknown_shape": 1, "unsupported_file": 1}
    assert report["records"]["total"] == 39
    saved = json.loads((tmp_path / "metrics" / "data.json").read_text(encoding="utf-8"))
    assert saved["rejects"] == report["rejects"]


def test_too_many_rejects_fails_naming_files_and_reasons(tmp_path, tiny_tokenizer):
    raw = tmp_path / "raw"
    write_jsonl(raw / "good.jsonl", [qa(1), qa(2)])
    write_jsonl(raw / "broken.jsonl", [], raw_lines=["{not json"] * 3)
    with pytest.raises(ConfigError) as err:
        run(tmp_path, tiny_tokenizer, max_reject_fraction=0.1)
    msg = str(err.value)
    assert "raw/broken.jsonl: 3 malformed_json" in msg and "max_reject_fraction=0.1" in msg
    assert (tmp_path / "processed" / "rejects.jsonl").exists()  # the evidence is kept for inspection


def test_split_is_deterministic_grouped_and_stratified(tmp_path, tiny_tokenizer):
    raw = tmp_path / "raw"
    rows = [qa(i, answer_len=1 + i % 8) for i in range(200)]
    # The same question with another answer: must land in the same split as its twin.
    rows += [{"question": qa(i)["question"].upper(), "answer": f"Một câu trả lời khác {i}."} for i in range(0, 200, 10)]
    write_jsonl(raw / "a.jsonl", rows)
    run(tmp_path, tiny_tokenizer)
    first = {n: (tmp_path / "processed" / f"{n}.jsonl").read_bytes() for n in splitting.SPLITS}
    run(tmp_path, tiny_tokenizer)
    assert first == {n: (tmp_path / "processed" / f"{n}.jsonl").read_bytes() for n in splitting.SPLITS}
    where: dict[str, set] = {}
    for name in splitting.SPLITS:
        for r in read_split(tmp_path, name):
            where.setdefault(splitting.question_key(r["messages"]), set()).add(name)
    assert all(len(s) == 1 for s in where.values())
    sizes = {n: len(read_split(tmp_path, n)) for n in splitting.SPLITS}
    assert sizes["test"] == pytest.approx(44, abs=6) and sizes["val"] == pytest.approx(44, abs=6)
    # Stratified: long and short answers both reach the test split.
    test_lengths = sorted(len(r["messages"][-1]["content"]) for r in read_split(tmp_path, "test"))
    all_lengths = sorted(len(r["messages"][-1]["content"]) for r in all_rows(tmp_path))
    assert test_lengths[0] <= all_lengths[len(all_lengths) // 4] and test_lengths[-1] >= all_lengths[3 * len(all_lengths) // 4]


def test_a_records_own_split_is_kept_and_the_rest_is_split_as_before(tmp_path, tiny_tokenizer):
    """The generated statute Q&A carry their article's split: prepare keeps it, and the records without one split
    exactly as they would alone (the fixed ones take no place in the length bins)."""
    free = [qa(i, answer_len=1 + i % 5) for i in range(60)]
    write_jsonl(tmp_path / "raw" / "free.jsonl", free)
    run(tmp_path, tiny_tokenizer)
    alone = {n: read_split(tmp_path, n) for n in splitting.SPLITS}
    fixed = [{**qa(100 + i), "split": splitting.SPLITS[i % 3]} for i in range(30)]
    twin = {"question": fixed[2]["question"].lower(), "answer": "Cùng câu hỏi, không có split."}  # its group's split
    write_jsonl(tmp_path / "raw" / "fixed.jsonl", fixed + [twin, {**qa(200), "split": "dev"}])
    report = run(tmp_path, tiny_tokenizer, max_reject_fraction=0.5)
    for name in splitting.SPLITS:
        rows = read_split(tmp_path, name)
        from_fixed = [r for r in rows if r["source"].startswith("raw/fixed.jsonl")]
        assert {r["split"] for r in from_fixed if "split" in r} <= {name}
        assert [r for r in rows if r["source"].startswith("raw/free.jsonl")] == alone[name]
    assert any(r["messages"][-1]["content"] == twin["answer"] for r in read_split(tmp_path, fixed[2]["split"]))
    assert report["rejects"]["by_reason"] == {"bad_split": 1} and "split" not in str(report["ignored_fields"])


def test_token_lengths_match_the_training_encoding(tiny_tokenizer, conversations):
    recs = [Conversation(str(i), f"f:{i}", m) for i, m in enumerate(conversations)]
    prompt_tokens, answer_tokens = lengths.token_lengths(recs, tiny_tokenizer)
    exact = [len(encode_example(tiny_tokenizer, m, 10_000).input_ids) for m in conversations]
    assert list(prompt_tokens + answer_tokens) == exact
    supervised = [sum(label != -100 for label in encode_example(tiny_tokenizer, m, 10_000).labels) for m in conversations]
    assert list(answer_tokens) == supervised


def test_cli_reports_user_errors_in_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "params.yaml").write_text("prepare:\n  val_fraction: 0.6\n  test_fraction: 0.5\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert cli_main(["prepare"]) == 2
    err = capsys.readouterr().err
    assert "prepare.val_fraction + prepare.test_fraction must be below 1" in err and "Traceback" not in err
