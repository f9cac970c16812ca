"""BM25 over Vietnamese syllables, and reciprocal rank fusion: values by hand, diacritics, save/load."""
from __future__ import annotations

import math
import unicodedata

import numpy as np
import pytest

from vietlegal.rag.bm25 import BM25, terms, tokenize
from vietlegal.rag.fusion import reciprocal_rank_fusion


def test_scores_match_the_okapi_formula_by_hand():
    index = BM25.build(["a b", "a c c"], k1=1.5, b=0.75, pairs=False)
    scores = index.scores("c")
    norm = 1.5 * (1 - 0.75 + 0.75 * 3 / 2.5)
    assert scores[0] == 0.0
    assert scores[1] == pytest.approx(math.log(2) * 2 * 2.5 / (2 + norm), rel=1e-6)
    a = index.scores("a")
    idf_a = math.log(1 + 0.5 / 2.5)
    assert a[0] == pytest.approx(idf_a * 2.5 / (1 + 1.5 * (0.25 + 0.75 * 2 / 2.5)), rel=1e-6)
    assert a[0] > a[1]  # same term frequency, shorter document


def test_syllables_keep_their_diacritics_and_nfd_equals_nfc():
    assert tokenize("Điều 139 BỘ LUẬT Lao động") == ["điều", "139", "bộ", "luật", "lao", "động"]
    nfd = unicodedata.normalize("NFD", "nghỉ thai sản")
    assert tokenize(nfd) == ["nghỉ", "thai", "sản"]
    assert terms("nghỉ thai sản") == ["nghỉ", "thai", "sản", "nghỉ_thai", "thai_sản"]
    index = BM25.build(["lao động nữ nghỉ thai sản", "lão đồng"])
    assert index.scores(nfd)[0] > 0
    assert not index.scores("dong").any()  # without its marks it is another syllable
    assert index.scores("đồng")[0] == 0 and index.scores("đồng")[1] > 0  # "động" is not "đồng"


def test_syllable_pairs_rank_the_word_above_scattered_syllables():
    docs = ["thai sản của lao động nữ", "sản phẩm thai nhi"]
    assert BM25.build(docs).scores("thai sản")[0] > BM25.build(docs).scores("thai sản")[1]


def test_a_query_with_no_known_syllable_scores_zero_everywhere():
    index = BM25.build(["hợp đồng lao động", "thời hiệu khởi kiện"])
    assert not index.scores("hello world").any()
    assert not index.scores("").any()


def test_save_and_load_give_the_same_scores(tmp_path):
    index = BM25.build(["hợp đồng lao động", "thời hiệu khởi kiện hợp đồng", "lãi suất vay"])
    index.save(tmp_path)
    again = BM25.load(tmp_path)
    assert again.pairs and again.n_docs == 3
    np.testing.assert_array_equal(again.scores("thời hiệu hợp đồng"), index.scores("thời hiệu hợp đồng"))


def test_reciprocal_rank_fusion_by_hand():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)
    scores = dict(fused)
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[2] == pytest.approx(1 / 62)
    assert [item for item, _ in fused] == [1, 3, 2]
    assert [i for i, _ in reciprocal_rank_fusion([[7, 8], [8, 7]])] == [7, 8]  # a tie keeps the first ranking's order
    assert reciprocal_rank_fusion([[], []]) == []
    with pytest.raises(ValueError, match="rrf_k"):
        reciprocal_rank_fusion([[1]], k=0)


def test_top_rows_equal_a_stable_sort_of_every_score():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from vietlegal.rag.retriever import top_rows

    @settings(max_examples=300, derandomize=True, database=None, deadline=None)
    @given(st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.25]), max_size=60), st.integers(1, 70))
    def check(values, depth):
        scores = np.array(values, dtype=np.float64)
        expected = [int(r) for r in np.argsort(-scores, kind="stable")[:depth] if scores[r] > 0]
        assert top_rows(scores, depth).tolist() == expected

    check()


def test_the_index_files_are_bm25s_files_and_old_indexes_are_refused(tmp_path):
    index = BM25.build(["hợp đồng lao động", "lãi suất vay"])
    index.save(tmp_path)
    assert (tmp_path / "bm25s" / "vocab.index.json").exists() and (tmp_path / "bm25.json").exists()
    assert sorted(index.terms) == sorted(set(terms("hợp đồng lao động")) | set(terms("lãi suất vay")))


def test_scores_equal_bm25s_own_scoring_on_the_okapi_scale():
    docs = ["hợp đồng lao động hợp đồng", "thời hiệu khởi kiện hợp đồng", "lãi suất vay", "lao động nữ nghỉ thai sản"]
    index = BM25.build(docs)
    for query in ("hợp đồng hợp đồng lao động", "thai sản", "lãi suất", "không có"):
        ids = [index.model.vocab_dict[t] for t in terms(query) if t in index.model.vocab_dict]
        own = index.model.get_scores_from_ids(ids) * 2.5 if ids else np.zeros(len(docs))
        np.testing.assert_allclose(index.scores(query), own, rtol=1e-6)
