"""The record reader: every shape in every format it can be stored in, generated, read back to the same
conversations with the right file:line, and every field the shape does not read counted."""
from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, DatasetDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vietlegal.data import records, sources
from vietlegal.params import DEFAULT_CONTEXT_TEMPLATE
from vietlegal.text import nfc

SYSTEM = "Bạn là chuyên gia pháp luật."
TEMPLATE = DEFAULT_CONTEXT_TEMPLATE
ALPHABET = list("aăâbcdđeêghiklmnoôơpqrstuưvxyáàảãạếềểễệọộớờữỳ ,.;:\"'{}\n-0123456789") + ["\u0301", "\u0302"]  # combining marks: NFD input
text = st.text(alphabet=st.sampled_from(ALPHABET), min_size=1, max_size=40).filter(lambda s: s.strip())
EXTRA_NAMES = ("source_url", "category", "domain", "năm_ban_hành", "id_goc")
extras = st.dictionaries(st.sampled_from(EXTRA_NAMES), text, max_size=3)


def expect(user: str, answer: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": nfc(user)},
            {"role": "assistant", "content": nfc(answer)}]


# shape -> strategy of (record without extras, expected messages)
SHAPES = {
    "alpaca": st.tuples(text, text, text).map(lambda t: (
        {"instruction": t[0], "input": t[1], "output": t[2]}, expect(t[0].strip() + "\n" + t[1].strip(), t[2]))),
    "qa": st.tuples(text, text).map(lambda t: ({"question": t[0], "answer": t[1]}, expect(t[0], t[1]))),
    "context": st.tuples(text, text, text, st.sampled_from(["answer", "output"])).map(lambda t: (
        {"context": t[0], "question": t[1], t[3]: t[2]},
        expect(TEMPLATE.format(context=t[0].strip(), question=t[1].strip()), t[2]))),
    "prompt_completion": st.tuples(text, text).map(lambda t: ({"prompt": t[0], "completion": t[1]}, expect(t[0], t[1]))),
    "messages": st.tuples(text, text).map(lambda t: (
        {"messages": [{"role": "user", "content": t[0]}, {"role": "assistant", "content": t[1]}]}, expect(t[0], t[1]))),
    "sharegpt": st.tuples(text, text, st.sampled_from(["human", "user"]), st.sampled_from(["gpt", "assistant"])).map(
        lambda t: ({"conversations": [{"from": t[2], "value": t[0]}, {"from": t[3], "value": t[1]}]}, expect(t[0], t[1]))),
}
NESTED = {"messages", "sharegpt"}
FORMATS = ("jsonl", "jsonl.gz", "json", "csv", "parquet", "save_to_disk")


def write(directory: Path, fmt: str, rows: list[dict]) -> tuple[Path, list[int]]:
    """Write rows in `fmt`; return the source and the line (or row) each record starts at."""
    if fmt in ("jsonl", "jsonl.gz"):
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
        path = directory / f"qa.{fmt}"
        path.write_bytes(gzip.compress(body) if fmt == "jsonl.gz" else body)
        return path, [i + 1 for i in range(len(rows))]
    if fmt == "json":
        path = directory / "qa.json"
        path.write_text("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n]\n", encoding="utf-8")
        return path, [i + 2 for i in range(len(rows))]
    if fmt == "csv":
        path, buf = directory / "qa.csv", io.StringIO(newline="")
        columns = sorted({k for r in rows for k in r})
        writer = csv.DictWriter(buf, columns)
        writer.writeheader()
        starts = []
        for r in rows:
            starts.append(buf.getvalue().count("\n") + 1)
            writer.writerow(r)
        path.write_text(buf.getvalue(), encoding="utf-8", newline="")
        return path, starts
    columns = sorted({k for r in rows for k in r})  # from_pylist would take the first row's keys only
    table = pa.Table.from_pylist([{k: r.get(k) for k in columns} for r in rows])
    if fmt == "parquet":
        pq.write_table(table, directory / "qa.parquet", row_group_size=3)  # several row groups, read in order
        return directory / "qa.parquet", [i + 1 for i in range(len(rows))]
    Dataset(table).save_to_disk(str(directory / "qa_dataset"))
    return directory / "qa_dataset", [i + 1 for i in range(len(rows))]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_in_every_format_reads_back(shape, fmt):
    if fmt == "csv" and shape in NESTED:
        pytest.skip("a CSV cell holds text, not a list of turns")

    @settings(max_examples=15, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(SHAPES[shape], extras), min_size=1, max_size=6))
    def check(generated):
        # one schema per file, as a parquet or arrow file has: every record carries the same extra fields
        names = sorted({k for _, e in generated for k in e})
        rows = [{**rec, **{k: e.get(k, "giá trị") for k in names}} for (rec, _), e in generated]
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            raw = root / "raw"
            raw.mkdir()
            path, starts = write(raw, fmt, rows)
            assert records.find_files(raw, None) == [path]
            got = records.read_records(records.find_files(raw, None), root, SYSTEM, TEMPLATE)
        label = path.relative_to(root).as_posix()
        assert got.rejects == []
        assert [r.source for r in got.records] == [f"{label}:{n}" for n in starts]
        assert [r.messages for r in got.records] == [messages for (_, messages), _ in generated]
        assert got.ignored_fields == ({label: Counter({k: len(rows) for k in names})} if names else {})

    check()


@settings(max_examples=25, derandomize=True, deadline=None, database=None)
@given(st.lists(st.tuples(text, text, text), min_size=1, max_size=5), st.sampled_from(["\n", "\r\n"]))
def test_csv_with_multi_line_quoted_contexts_keeps_them_whole(rows, newline):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "raw").mkdir()
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, lineterminator=newline)
        writer.writerow(["context", "question", "answer"])
        starts = []
        for context, question, answer in rows:
            starts.append(buf.getvalue().count("\n") + 1)
            writer.writerow([context.replace("\n", newline), question, answer])
        (root / "raw" / "rc.csv").write_text(buf.getvalue(), encoding="utf-8", newline="")
        got = records.read_records(records.find_files(root / "raw", None), root, SYSTEM, TEMPLATE)
    assert [r.source for r in got.records] == [f"raw/rc.csv:{n}" for n in starts]
    for r, (context, question, answer) in zip(got.records, rows):
        assert r.messages[1]["content"] == nfc(TEMPLATE.format(context=context.strip(), question=question.strip()))
        assert r.messages[1]["content"].index(nfc(context)) < r.messages[1]["content"].rindex(nfc(question))


def read(tmp_path: Path, **kw) -> records.Reading:
    return records.read_records(records.find_files(tmp_path / "raw", None), tmp_path, SYSTEM, TEMPLATE, **kw)


def write_jsonl(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_kept_fields_become_meta_and_the_rest_is_counted(tmp_path):
    write_jsonl(tmp_path / "raw" / "a.jsonl", [
        {"question": "Hỏi 1?", "answer": "Đáp 1.", "domain": "lao_dong", "source_url": "https://x", "extra": None},
        {"question": "Hỏi 2?", "answer": "Đáp 2.", "domain": "dan\u0301_su", "category": "FAQ"},
        {"question": "Hỏi 3?", "answer": "Đáp 3."},
    ])
    got = read(tmp_path, keep_fields=("domain",))
    assert [r.extra for r in got.records] == [{"meta": {"domain": "lao_dong"}}, {"meta": {"domain": nfc("dan\u0301_su")}}, {}]
    assert got.ignored_fields == {"raw/a.jsonl": Counter({"source_url": 1, "category": 1})}  # a null field is absent
    assert got.records[0].row()["meta"] == {"domain": "lao_dong"}


def test_sharegpt_multi_turn_roles_and_a_record_system_prompt(tmp_path):
    turns = [{"from": "system", "value": "Hệ thống riêng."}, {"from": "human", "value": "Hỏi 1"}, {"from": "gpt", "value": "Đáp 1"},
             {"from": "user", "value": "Hỏi 2"}, {"from": "assistant", "value": "Đáp 2"}]
    write_jsonl(tmp_path / "raw" / "sg.jsonl", [
        {"conversations": turns},
        {"conversations": [{"role": "user", "content": "Hỏi"}, {"role": "assistant", "content": "Đáp"}], "system": "Riêng."},
        {"conversations": [{"from": "human", "value": "Hỏi"}, {"from": "function_call", "value": "{}"}]},
        {"conversations": [{"from": "human", "value": "Hỏi"}]},
        {"prompt": [{"role": "user", "content": "Hỏi P"}], "completion": [{"role": "assistant", "content": "Đáp P"}]},
        {"prompt": "Hỏi không đáp"},
        {"context": "   ", "question": "Hỏi?", "answer": "Đáp."},
        {"context": ["Đoạn 1.", "Đoạn 2."], "question": "Hỏi?", "answer": "Đáp."},
    ])
    got = read(tmp_path)
    assert [m["role"] for m in got.records[0].messages] == ["system", "user", "assistant", "user", "assistant"]
    assert got.records[0].messages[0]["content"] == "Hệ thống riêng."
    assert got.records[1].messages[0] == {"role": "system", "content": "Riêng."}
    assert got.records[2].messages[1:] == [{"role": "user", "content": "Hỏi P"}, {"role": "assistant", "content": "Đáp P"}]
    assert got.records[3].messages[1]["content"] == TEMPLATE.format(context="Đoạn 1.\n\nĐoạn 2.", question="Hỏi?")
    assert {(r.source, r.reason) for r in got.rejects} == {
        ("raw/sg.jsonl:3", "bad_conversations"), ("raw/sg.jsonl:4", "missing_answer"),
        ("raw/sg.jsonl:6", "missing_answer"), ("raw/sg.jsonl:7", "empty_context")}
    assert "function_call" in next(r.detail for r in got.rejects if r.reason == "bad_conversations")
    assert got.ignored_fields == {}


def test_a_saved_dataset_is_one_source_and_feedback_is_not_read(tmp_path):
    raw = tmp_path / "raw"
    qa = [{"question": f"Hỏi {i}?", "answer": f"Đáp {i}."} for i in range(5)]
    Dataset.from_list(qa).save_to_disk(str(raw / "one"), num_shards=3)  # several arrow files
    DatasetDict({"train": Dataset.from_list(qa[:3]), "test": Dataset.from_list(qa[3:])}).save_to_disk(str(raw / "dd"))
    write_jsonl(raw / "feedback" / "verdicts.jsonl", [{"id": "x", "verdict": "good"}])
    write_jsonl(raw / "nested" / "feedback" / "qa.jsonl", qa[:1])  # only data/raw/feedback/ is the review page's
    assert len(list((raw / "one").glob("*.arrow"))) > 1
    got = read(tmp_path)
    assert got.rejects == []
    assert sorted({r.source.rsplit(":", 1)[0] for r in got.records}) == [
        "raw/dd/test", "raw/dd/train", "raw/nested/feedback/qa.jsonl", "raw/one"]
    assert [r.source for r in got.records if r.source.startswith("raw/one")] == [f"raw/one:{i}" for i in range(1, 6)]
    assert [r.question for r in got.records if r.source.startswith("raw/one")] == [q["question"] for q in qa]


def test_unreadable_sources_are_named(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "cut.jsonl.gz").write_bytes(gzip.compress(b'{"question": "a", "answer": "b"}\n' * 50)[:-12])
    (raw / "latin.jsonl.gz").write_bytes(gzip.compress(b'{"question": "a", "answer": "b"}\n' + '{"question": "Đi"}\n'.encode("cp1258")))
    (raw / "fake.parquet").write_bytes(b"not parquet")
    (raw / "notes.txt").write_text("ghi chú", encoding="utf-8")
    got = read(tmp_path)
    assert got.records == []
    assert {(r.source, r.reason) for r in got.rejects} == {
        ("raw/cut.jsonl.gz:0", "unreadable_file"), ("raw/latin.jsonl.gz:2", "not_utf8"),
        ("raw/fake.parquet:0", "unreadable_file"), ("raw/notes.txt:0", "unsupported_file")}


def test_parquet_nulls_are_absent_fields_and_rejects_keep_the_row(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    pq.write_table(pa.Table.from_pylist([
        {"question": "Hỏi?", "answer": "Đáp.", "category": None},
        {"question": "Hỏi 2?", "answer": None, "category": "x"},
    ]), raw / "p.parquet")
    got = read(tmp_path)
    assert [r.source for r in got.records] == ["raw/p.parquet:1"]
    assert [(r.source, r.reason) for r in got.rejects] == [("raw/p.parquet:2", "missing_answer")]
    assert json.loads(got.rejects[0].raw) == {"question": "Hỏi 2?", "category": "x"}
    assert got.ignored_fields == {}  # a rejected record is reported whole, its fields are not counted again


def test_extension_is_read_from_the_whole_name():
    assert sources.extension(Path("a/B.JSONL.GZ")) == ".jsonl.gz" and sources.extension(Path("x.tar.gz")) == ".gz"
