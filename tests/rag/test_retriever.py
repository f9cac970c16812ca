"""The BM25 retriever end to end: index files, in-force filter, no hit, index/corpus mismatch, the context
template through the real chat template, the retrieval stage's recall@k, and the CLI's errors."""
from __future__ import annotations

import json
from datetime import date

import pytest
import yaml
from tests.helpers.rag_corpus import PROVISIONS, provision, write_corpus

from tests.conftest import SYSTEM
from vietlegal.model import chat
from vietlegal import cli
from vietlegal.data.conversation import Conversation
from vietlegal.data.splits import read_test_split
from vietlegal.params import RagConfig
from vietlegal.rag import retriever as rag_index
from vietlegal.rag.context import HEADER, clip, ground, with_context
from vietlegal.errors import DataError
from vietlegal.rag.corpus import load_corpus
from vietlegal.rag.recall import method_scores
from vietlegal.stages.retrieval import run

CFG = RagConfig(dense=False, in_force_on="2025-07-01", top_k=3)
MATERNITY = "Lao động nữ được nghỉ thai sản bao lâu?"


@pytest.fixture
def built(tmp_path):
    corpus_dir = write_corpus(tmp_path / "corpus")
    manifest = rag_index.build(load_corpus(corpus_dir), CFG, tmp_path / "index")
    return corpus_dir, tmp_path / "index", manifest


@pytest.fixture
def retriever(built):
    corpus_dir, index_dir, _ = built
    return rag_index.Retriever.load(index_dir, corpus_dir, CFG)


def test_the_index_records_the_corpus_it_was_built_from(built):
    corpus_dir, index_dir, manifest = built
    assert sorted(p.name for p in index_dir.iterdir()) == ["bm25.json", "bm25s", "manifest.json"]
    on_disk = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk["corpus"] == {"dir": str(corpus_dir), "sha256": load_corpus(corpus_dir).sha256, "provisions": len(PROVISIONS)}
    assert on_disk["dense"] is None and manifest["bm25"]["terms"] > 100


def test_only_the_version_in_force_on_the_date_is_retrieved(retriever):
    now = [h.provision.id for h in retriever.search(MATERNITY)]  # rag.in_force_on: 2025-07-01
    assert now[0] == "blld-2019-d139" and "blld-2012-d157" not in now
    before = [h.provision.id for h in retriever.search(MATERNITY, on=date(2019, 6, 1))]
    assert before[0] == "blld-2012-d157" and "blld-2019-d139" not in before
    assert "nd168-2024-d7" not in [h.provision.id for h in retriever.search("xe mô tô mũ bảo hiểm", on=date(2024, 6, 1))]


def test_hits_are_best_first_with_their_rank_and_at_most_top_k(retriever):
    hits = retriever.search("thời hiệu khởi kiện tranh chấp hợp đồng")
    assert hits[0].provision.id == "blds-2015-d429" and hits[0].ranks == {"bm25": 1}
    assert len(hits) <= CFG.top_k and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(retriever.search("hợp đồng", top_k=1)) == 1


def test_a_query_with_no_hit_returns_nothing(retriever):
    assert retriever.search("hello world") == []


def test_an_index_built_from_another_corpus_is_refused_with_what_to_do(built):
    corpus_dir, index_dir, _ = built
    write_corpus(corpus_dir, PROVISIONS + [provision("x-2020-d1", "Luật Cư trú", "68/2020/QH14", 2020, 1, "", "Phạm vi.", "2021-07-01")])
    with pytest.raises(DataError) as err:
        rag_index.Retriever.load(index_dir, corpus_dir, CFG)
    message = str(err.value)
    assert "built from another corpus" in message and f"{len(PROVISIONS)} provisions" in message
    assert f"{len(PROVISIONS) + 1} provisions" in message and "dvc repro index" in message


def test_a_missing_index_and_a_missing_dense_part_are_refused(built, tmp_path):
    corpus_dir, index_dir, _ = built
    with pytest.raises(DataError, match=r"no retrieval index .*dvc repro index"):
        rag_index.Retriever.load(tmp_path / "nothing", corpus_dir, CFG)
    with pytest.raises(DataError, match=r"no dense index .*rag.dense: false"):
        rag_index.Retriever.load(index_dir, corpus_dir, RagConfig(dense=True))
    retriever = rag_index.Retriever.load(index_dir, corpus_dir, CFG)
    with pytest.raises(DataError, match="method 'dense' is not available"):
        retriever.search(MATERNITY, method="dense")


def test_context_goes_into_the_system_message_before_the_question(retriever):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": MATERNITY}]
    grounded = ground(retriever, messages)
    assert not grounded.no_hit and grounded.provision_ids[0] == "blld-2019-d139"
    system = grounded.messages[0]["content"]
    assert system.startswith(SYSTEM + "\n\n" + HEADER + "\n[1] khoản 1 Điều 139 Bộ luật Lao động 2019 - Nghỉ thai sản\n")
    assert system.count("\n[") == len(grounded.provision_ids)
    assert grounded.messages[1:] == messages[1:]


def test_with_no_hit_the_prompt_is_unchanged_and_flagged(retriever):
    messages = [{"role": "user", "content": "hello world"}]
    grounded = ground(retriever, messages, system_prompt=SYSTEM)
    assert grounded.no_hit and grounded.provision_ids == []
    assert grounded.messages == [{"role": "system", "content": SYSTEM}, messages[0]]


def test_without_a_system_message_the_context_makes_one(retriever):
    hits = retriever.search(MATERNITY)
    alone = with_context([{"role": "user", "content": MATERNITY}], hits)
    assert alone.messages[0]["role"] == "system" and alone.messages[0]["content"].startswith(HEADER)
    prompted = with_context([{"role": "user", "content": MATERNITY}], hits, system_prompt=SYSTEM)
    assert prompted.messages[0]["content"].startswith(SYSTEM + "\n\n" + HEADER)


def test_provision_text_is_cut_at_a_word_boundary():
    assert clip("một hai ba", 100) == "một hai ba"
    assert clip("một hai ba bốn", 9) == "một hai …"


def test_grounded_training_examples_supervise_only_the_answer(retriever, tiny_tokenizer, conversations):
    """The shared chat template renders the context inside the system header, and encode_example labels
    none of it: training with context teaches using the provisions, not reciting them."""
    conversation = conversations[1]  # the maternity-leave question
    grounded = ground(retriever, conversation)
    text = chat.render(tiny_tokenizer, grounded.messages, add_generation_prompt=False)
    assert text.index(HEADER) < text.index("<|start_header_id|>user") < text.index(conversation[1]["content"])
    example = chat.encode_example(tiny_tokenizer, grounded.messages, max_length=4096)
    supervised = tiny_tokenizer.decode([i for i, label in zip(example.input_ids, example.labels) if label != -100])
    assert supervised == conversation[2]["content"] + chat.END_OF_TURN


def test_recall_at_k_and_mrr_by_hand():
    scores = method_scores([[1, None], [4]], total_gold=3, ks=[1, 5])
    assert scores == {"recall@1": pytest.approx(1 / 3), "recall@5": pytest.approx(2 / 3), "mrr": pytest.approx((1 + 1 / 4) / 2)}


def test_retrieval_counts_gold_missing_from_the_corpus_or_out_of_force_as_misses(retriever, processed_dir):
    cases = read_test_split(processed_dir / "test.jsonl")  # cite Điều 468 BLDS 2015 and Điều 113 BLLĐ 2019
    extra = [
        Conversation("gone", "t:1", [{"role": "user", "content": MATERNITY},
                                 {"role": "assistant", "content": "Theo Điều 157 Bộ luật Lao động 2012, 06 tháng."}]),
        Conversation("absent", "t:2", [{"role": "user", "content": "Quyền của người khuyết tật?"},
                                   {"role": "assistant", "content": "Theo Điều 4 Luật Người khuyết tật 2010, ..."}]),
    ]
    report, detail = run(retriever, cases + extra, [1, 3])
    assert report["gold_citations"] == 4 and report["questions_with_gold"] == 4
    assert report["gold_missing_from_corpus"] == 1 and report["gold_not_in_force"] == 1
    assert report["bm25"]["recall@3"] == pytest.approx(2 / 4)
    assert set(report) >= {"bm25", "index", "in_force_on"} and "hybrid" not in report
    assert detail[0]["gold"] == ["bộ luật dân sự 2015 468"] and detail[0]["retrieved"]["bm25"][0] == "blds-2015-d468"


def project_params(tmp_path, corpus_dir, **rag) -> str:
    params = {"rag": {"corpus_dir": str(corpus_dir), "index_dir": str(tmp_path / "index"), "dense": False,
                      "in_force_on": "2025-07-01", **rag}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    return str(path)


def test_the_index_and_retrieval_commands_write_their_files(tmp_path, processed_dir, capsys):
    params = project_params(tmp_path, write_corpus(tmp_path / "corpus"))
    assert cli.main(["index", "--params", params]) == 0
    metrics, per_question = tmp_path / "retrieval.json", tmp_path / "per_question.jsonl"
    assert cli.main(["retrieval", "--params", params, "--test", str(processed_dir / "test.jsonl"),
                     "--metrics", str(metrics), "--per-question", str(per_question)]) == 0
    report = json.loads(metrics.read_text(encoding="utf-8"))
    assert report["bm25"]["recall@1"] == 1.0 and report["questions"] == 2
    assert len(per_question.read_text(encoding="utf-8").splitlines()) == 2
    err = capsys.readouterr().err
    assert f"index: {len(PROVISIONS)} provisions ({len(PROVISIONS) - 1} in force on 2025-07-01)" in err
    assert "recall@1" in err


def test_the_commands_turn_an_empty_corpus_or_a_stale_index_into_one_clear_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["index", "--params", project_params(tmp_path, empty)]) == 2
    assert "vietlegal index: error: rag.corpus_dir" in capsys.readouterr().err
    corpus_dir = write_corpus(tmp_path / "corpus")
    params = project_params(tmp_path, corpus_dir)
    assert cli.main(["index", "--params", params]) == 0
    write_corpus(corpus_dir, PROVISIONS[:-1])
    assert cli.main(["retrieval", "--params", params]) == 2
    assert "vietlegal retrieval: error: " in capsys.readouterr().err
