"""The provision corpus: parsing, bad records by file:line, the in-force filter, the bundled corpus."""
from __future__ import annotations

import json
import unicodedata
from datetime import date

import pytest
from tests.helpers.rag_corpus import PROVISIONS, write_corpus

from tests.conftest import ROOT
from vietlegal.metrics.citation import extract
from vietlegal.errors import DataError
from vietlegal.rag.corpus import load_corpus


def test_loads_provisions_with_their_citation_forms(tmp_path):
    corpus = load_corpus(write_corpus(tmp_path / "corpus"))
    assert len(corpus) == len(PROVISIONS)
    by_id = {p.id: p for p in corpus.provisions}
    assert by_id["blld-2019-d139"].citation == "khoản 1 Điều 139 Bộ luật Lao động 2019"
    assert by_id["blds-2015-d429"].citation == "Điều 429 Bộ luật Dân sự 2015"
    assert by_id["nd168-2024-d7"].citation == "Điều 7 Nghị định 168/2024/NĐ-CP"
    assert by_id["blld-2012-d157"].effective_to == date(2020, 12, 31)
    assert by_id["blld-2019-d139"].source.endswith("provisions.jsonl:2")


def test_every_citation_form_reads_back_as_the_evaluation_metric_reads_answers(tmp_path):
    corpus = load_corpus(write_corpus(tmp_path / "corpus"))
    for p in corpus.provisions:
        (citation,) = extract(p.citation)
        assert citation.instrument is not None and citation.article == p.article
    assert extract(corpus.provisions[-1].citation)[0].instrument == "nghị định 168/2024"


def test_nfd_input_is_stored_as_nfc(tmp_path):
    record = dict(PROVISIONS[0], text=unicodedata.normalize("NFD", PROVISIONS[0]["text"]))
    corpus = load_corpus(write_corpus(tmp_path / "c", [record]))
    assert corpus.provisions[0].text == unicodedata.normalize("NFC", PROVISIONS[0]["text"])


def test_every_bad_record_is_reported_by_file_and_line_at_once(tmp_path):
    good = PROVISIONS[0]
    lines = [
        json.dumps(good, ensure_ascii=False),
        '{"id": "broken", ',  # malformed JSON
        json.dumps(dict(PROVISIONS[1], text="  "), ensure_ascii=False),  # no text
        json.dumps(dict(PROVISIONS[2], id=good["id"]), ensure_ascii=False),  # duplicate id
        json.dumps(dict(PROVISIONS[3], effective_from="01/01/2017"), ensure_ascii=False),  # unparseable date
        json.dumps(dict(PROVISIONS[4], article="Điều 2"), ensure_ascii=False),
        json.dumps(dict(PROVISIONS[5], instrument={"name": "Bộ luật Hình sự"}), ensure_ascii=False),
        "",  # blank lines are fine
        json.dumps(dict(PROVISIONS[6], effective_to="2020-01-01"), ensure_ascii=False),  # ends before it starts
    ]
    directory = tmp_path / "corpus"
    directory.mkdir()
    (directory / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_corpus(directory)
    message = str(err.value)
    assert "7 bad record(s)" in message
    for line, words in [(2, "not valid JSON"), (3, "text: no text"), (4, "duplicate id 'hngd-2014-d8' (first at"),
                        (5, "effective_from: '01/01/2017' is not a date"), (6, "article: expected a number"),
                        (7, "instrument.year"), (9, "effective_to 2020-01-01 is before")]:
        assert f"a.jsonl:{line}: {words}" in message, message


@pytest.mark.parametrize("make", [
    lambda d: d,  # an empty directory
    lambda d: (d / "empty.jsonl").write_text("\n", encoding="utf-8"),  # only an empty file
])
def test_an_empty_corpus_is_refused_with_what_to_do(tmp_path, make):
    directory = tmp_path / "corpus"
    directory.mkdir()
    make(directory)
    with pytest.raises(DataError, match=r"no provisions .*rag.enabled: false"):
        load_corpus(directory)


def test_a_missing_corpus_directory_says_so(tmp_path):
    with pytest.raises(DataError, match=r"rag.corpus_dir .*nowhere: not a directory"):
        load_corpus(tmp_path / "nowhere")


def test_in_force_is_inclusive_of_both_ends(tmp_path):
    corpus = load_corpus(write_corpus(tmp_path / "corpus"))
    old = next(p for p in corpus.provisions if p.id == "blld-2012-d157")
    new = next(p for p in corpus.provisions if p.id == "blld-2019-d139")
    assert old.in_force(date(2020, 12, 31)) and not new.in_force(date(2020, 12, 31))
    assert not old.in_force(date(2021, 1, 1)) and new.in_force(date(2021, 1, 1))
    assert not old.in_force(date(2013, 4, 30))
    assert sum(corpus.in_force_mask(date(2025, 7, 1))) == len(PROVISIONS) - 1
    assert all(corpus.in_force_mask(None))


def test_the_hash_changes_with_the_content(tmp_path):
    a = load_corpus(write_corpus(tmp_path / "a"))
    b = load_corpus(write_corpus(tmp_path / "b", PROVISIONS[:-1]))
    assert a.sha256 == load_corpus(tmp_path / "a").sha256
    assert a.sha256 != b.sha256


def test_the_bundled_corpus_loads_and_every_provision_is_citable():
    corpus = load_corpus(ROOT / "data" / "corpus")
    assert len(corpus) >= 100
    unreadable = [p.citation for p in corpus.provisions if not (extract(p.citation) and extract(p.citation)[0].instrument)]
    assert unreadable == []
    assert any(not p.in_force(date(2025, 7, 1)) for p in corpus.provisions)  # superseded versions are in it
