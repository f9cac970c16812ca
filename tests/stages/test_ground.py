"""Stage `ground`: training examples with their retrieved provisions (rag.train_with_context), or prepare's splits
byte for byte when it is off. The DVC-level behaviour (a rag change does not retrain) is in tests/pipeline/test_rag_dvc.py."""
from __future__ import annotations

import json

import pytest
from tests.helpers.rag_corpus import write_corpus

from vietlegal import cli
from vietlegal.data.conversation import Conversation
from vietlegal.data.splits import read_test_split
from vietlegal.model.chat import IGNORE_INDEX, encode_example
from vietlegal.params import RagConfig
from vietlegal.stages import generate_rag
from vietlegal.stages import ground
from vietlegal.rag import retriever as rag_index
from vietlegal.rag.context import HEADER
from vietlegal.errors import DataError
from vietlegal.rag.corpus import load_corpus


@pytest.fixture
def rag_cfg(tmp_path) -> RagConfig:
    cfg = RagConfig(train_with_context=True, dense=False, top_k=2, in_force_on="2025-07-01",
                    corpus_dir=str(write_corpus(tmp_path / "corpus")), index_dir=str(tmp_path / "index"))
    rag_index.build(load_corpus(cfg.corpus_dir), cfg, tmp_path / "index")
    return cfg


def read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_off_copies_the_splits_byte_for_byte_without_needing_an_index(processed_dir, tmp_path):
    cfg = RagConfig(train_with_context=False, index_dir=str(tmp_path / "no-index"), corpus_dir=str(tmp_path / "no-corpus"))
    report = ground.run(cfg, processed_dir, tmp_path / "training")
    for name in ("train", "val"):
        assert (tmp_path / "training" / f"{name}.jsonl").read_bytes() == (processed_dir / f"{name}.jsonl").read_bytes()
    assert report == {"with_context": False}
    assert json.loads((tmp_path / "training" / "context.json").read_text(encoding="utf-8")) == {"with_context": False}
    assert not (tmp_path / "training" / "test.jsonl").exists()  # the test split is never trained on


def test_on_puts_the_provisions_into_the_system_message_and_keeps_question_and_answer(rag_cfg, processed_dir, tmp_path):
    report = ground.run(rag_cfg, processed_dir, tmp_path / "training")
    before, after = read(processed_dir / "train.jsonl"), read(tmp_path / "training" / "train.jsonl")
    assert [r["id"] for r in after] == [r["id"] for r in before]
    for old, new in zip(before, after):
        system = new["messages"][0]["content"]
        assert system.startswith(old["messages"][0]["content"] + "\n\n" + HEADER)
        assert new["messages"][1:] == old["messages"][1:]  # question and reference answer untouched
        assert 1 <= len(new["retrieved_provisions"]) <= 2 and new["no_hit"] is False
        assert new["source"] == old["source"]  # errors in training still name the raw file:line
    # The conftest questions each have their article in the corpus, and BM25 puts it first.
    assert after[1]["retrieved_provisions"][0] == "blld-2019-d139"
    assert "Điều 139 Bộ luật Lao động 2019" in after[1]["messages"][0]["content"]
    assert report["train"] == {"examples": 8, "no_hit": 0, "cited_provisions": 8, "cited_in_context": 1.0}
    assert report["val"]["examples"] == 2
    settings = json.loads((tmp_path / "training" / "context.json").read_text(encoding="utf-8"))
    assert settings["with_context"] is True and settings["top_k"] == 2 and settings["method"] == "bm25"


def test_training_and_generate_rag_build_the_same_grounded_prompt(rag_cfg, processed_dir, tmp_path):
    ground.run(rag_cfg, processed_dir, tmp_path / "training")
    retriever = rag_index.Retriever.load(rag_cfg.index_dir, rag_cfg.corpus_dir, rag_cfg)
    # The train split read as if it were the test split: what generate_rag (and serve --rag) would prompt with.
    answered, _ = generate_rag.grounded_cases(read_test_split(processed_dir / "train.jsonl"), retriever)
    trained = read(tmp_path / "training" / "train.jsonl")
    assert len(trained) == len(answered) == 8
    assert [t["messages"] for t in trained] == [case.messages for case in answered]


def test_retrieval_reads_only_the_question_never_the_reference_answer(rag_cfg):
    retriever = rag_index.Retriever.load(rag_cfg.index_dir, rag_cfg.corpus_dir, rag_cfg)
    question = {"role": "user", "content": "Người lao động nữ được nghỉ thai sản bao lâu?"}
    rows = [Conversation(f"q{i}", "fixture", [question, {"role": "assistant", "content": answer}])
            for i, answer in enumerate( ("Theo Điều 468 Bộ luật Dân sự 2015, lãi suất tối đa 20%/năm.", "Không rõ."))]
    grounded = [ground.ground_row(retriever, r) for r in rows]
    assert grounded[0]["retrieved_provisions"] == grounded[1]["retrieved_provisions"]
    assert "blds-2015-d468" not in grounded[0]["retrieved_provisions"]


def test_a_question_with_no_hit_keeps_its_prompt_and_is_counted(rag_cfg, tmp_path):
    processed = tmp_path / "processed"
    processed.mkdir()
    row = {"id": "x", "source": "raw.jsonl:1", "messages": [
        {"role": "system", "content": "Hệ thống."}, {"role": "user", "content": "xyzzy qwerty?"},
        {"role": "assistant", "content": "Theo Điều 8 Luật Hôn nhân và gia đình 2014."}]}
    for name in ("train", "val"):
        (processed / f"{name}.jsonl").write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    report = ground.run(rag_cfg, processed, tmp_path / "training")
    out = read(tmp_path / "training" / "train.jsonl")[0]
    assert out["messages"] == row["messages"] and out["no_hit"] is True and out["retrieved_provisions"] == []
    assert report["train"] == {"examples": 1, "no_hit": 1, "cited_provisions": 1, "cited_in_context": 0.0}


def test_a_grounded_example_is_supervised_only_on_its_answer(rag_cfg, processed_dir, tmp_path, tiny_tokenizer):
    ground.run(rag_cfg, processed_dir, tmp_path / "training")
    messages = read(tmp_path / "training" / "train.jsonl")[0]["messages"]
    example = encode_example(tiny_tokenizer, messages, 2048)
    assert not example.truncated
    supervised = [t for t, label in zip(example.input_ids, example.labels) if label != IGNORE_INDEX]
    assert tiny_tokenizer.decode(supervised) == messages[-1]["content"] + "<|eot_id|>"
    assert "Căn cứ pháp lý" in tiny_tokenizer.decode(example.input_ids)


def test_a_bad_row_names_its_file_and_line(rag_cfg, processed_dir, tmp_path):
    lines = (processed_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()
    lines[2] = json.dumps({"id": "bad", "messages": [{"role": "user", "content": "Câu hỏi?"}]})
    (processed_dir / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.jsonl:3: the last message must be the assistant's answer"):
        ground.run(rag_cfg, processed_dir, tmp_path / "training")


def test_the_command_reports_a_missing_index_in_one_line(processed_dir, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(f"rag:\n  train_with_context: true\n  index_dir: {tmp_path / 'none'}\n", encoding="utf-8")
    code = cli.main(["ground", "--params", str(params), "--processed", str(processed_dir),
                     "--out", str(tmp_path / "training"), "--metrics", str(tmp_path / "ground.json")])
    err = capsys.readouterr().err
    assert code == 2 and "no retrieval index" in err and "dvc repro index" in err and "Traceback" not in err
