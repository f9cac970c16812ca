"""Legal citation extraction and scoring on Vietnamese answers, with hand-computed expectations."""
from __future__ import annotations

import unicodedata

import pytest

from vietlegal.metrics.citation import Citation, citation_scores, extract

REF = "Theo khoản 1 Điều 139 Bộ luật Lao động 2019, lao động nữ được nghỉ thai sản 06 tháng."


def keys(text: str) -> list[tuple]:
    return [(c.instrument, c.article, c.clause, c.point) for c in extract(text)]


@pytest.mark.parametrize("text, expected", [
    ("Điều 139 Bộ luật Lao động 2019", [("bộ luật lao động 2019", "139", None, None)]),
    ("theo điểm a khoản 1 Điều 8 Luật Hôn nhân và gia đình 2014, nam từ đủ 20 tuổi",
     [("luật hôn nhân và gia đình 2014", "8", "1", "a")]),
    ("Mức phạt tại khoản 2 Điều 6 Nghị định số 168/2024/NĐ-CP.", [("nghị định 168/2024", "6", "2", None)]),
    ("Điều 6 Nghị định 168/2024/ND-CP", [("nghị định 168/2024", "6", None, None)]),
    ("Điều 429 BLDS 2015 quy định thời hiệu là 03 năm", [("bộ luật dân sự 2015", "429", None, None)]),
    ("Điều 139 BLLĐ năm 2019", [("bộ luật lao động 2019", "139", None, None)]),
    ("khoản 1 Điều 12 BLHS 2015", [("bộ luật hình sự 2015", "12", "1", None)]),
    ("Điều 8 và Điều 9 của Luật HN&GĐ năm 2014", [("luật hôn nhân và gia đình 2014", "8", None, None),
                                                  ("luật hôn nhân và gia đình 2014", "9", None, None)]),
    ("Điều 12, 13 và 14 Bộ luật Hình sự 2015", [("bộ luật hình sự 2015", n, None, None) for n in ("12", "13", "14")]),
    ("Điều 157 Bộ luật Lao động số 10/2012/QH13", [("bộ luật lao động 2012", "157", None, None)]),
    ("Điều 2 Luật Người cao tuổi 2009", [("luật người cao tuổi 2009", "2", None, None)]),
    # an instrument the tables do not know: a capitalised name followed by a year
    ("Điều 20 Luật Phòng cháy và chữa cháy năm 2001", [("luật phòng cháy và chữa cháy 2001", "20", None, None)]),
    # instrument named first in the sentence
    ("Theo Bộ luật Dân sự 2015, tại Điều 468 quy định lãi suất", [("bộ luật dân sự 2015", "468", None, None)]),
    # a yearless second mention takes the year the answer already gave
    ("Điều 139 Bộ luật Lao động 2019. Điều 141 Bộ luật Lao động cũng quy định",
     [("bộ luật lao động 2019", "139", None, None), ("bộ luật lao động 2019", "141", None, None)]),
    ("Điều 5 Luật này quy định như vậy.", [(None, "5", None, None)]),
    ("Theo quy định của pháp luật năm 2015, điều kiện kết hôn là đủ tuổi.", []),
])
def test_extract(text, expected):
    assert keys(text) == expected


def test_extract_is_nfc_insensitive():
    assert extract(unicodedata.normalize("NFD", REF)) == extract(REF)


def test_right_article_scores_1():
    m, [e] = citation_scores([REF], [REF])
    assert (m["citation_precision"], m["citation_recall"], m["citation_f1"]) == (1.0, 1.0, 1.0)
    assert e["citation_precision"] == 1.0 and e["citations"] == ["khoản 1 Điều 139 bộ luật lao động 2019"]


@pytest.mark.parametrize("wrong", [
    "Theo Điều 138 Bộ luật Lao động 2019, lao động nữ được nghỉ 06 tháng.",  # wrong article
    "Theo Điều 139 Bộ luật Dân sự 2015, lao động nữ được nghỉ 06 tháng.",  # right article, wrong instrument
    "Theo Điều 139 Bộ luật Lao động 2012, lao động nữ được nghỉ 06 tháng.",  # right article, superseded version
    "Theo Điều 157 Bộ luật Lao động 2012, lao động nữ được nghỉ 06 tháng.",  # the old code's own article
    "Theo Điều 139 Bộ luật Lao động, lao động nữ được nghỉ 06 tháng.",  # no version: cannot be checked
    "Theo Điều 139, lao động nữ được nghỉ 06 tháng.",  # no instrument at all
])
def test_wrong_citation_scores_0(wrong):
    m, _ = citation_scores([wrong], [REF])
    assert (m["citation_precision"], m["citation_recall"], m["citation_f1"]) == (0.0, 0.0, 0.0)
    assert m["citations_cited"] == 1 and m["citation_none_share"] == 0.0


def test_micro_average_and_none_share_hand_computed():
    refs = [REF, "Theo Điều 8 và Điều 9 Luật Hôn nhân và gia đình 2014.", "Theo Điều 429 Bộ luật Dân sự 2015."]
    preds = [
        REF,  # 1 cited, 1 correct
        "Theo Điều 8, Điều 10 và Điều 11 Luật HNGĐ 2014.",  # 3 cited, 1 correct, 2 expected
        "Thời hiệu là 03 năm.",  # cites nothing
    ]
    m, per = citation_scores(preds, refs)
    # cited 4, expected 4, correct 2 -> P = R = 0.5; micro, not the mean of per-answer scores
    assert (m["citations_cited"], m["citations_expected"], m["citations_correct"]) == (4, 4, 2)
    assert m["citation_precision"] == 0.5 and m["citation_recall"] == 0.5 and m["citation_f1"] == 0.5
    assert m["citation_none_share"] == pytest.approx(1 / 3)
    assert per[1]["citation_precision"] == pytest.approx(1 / 3) and per[1]["citation_recall"] == 0.5
    assert per[2]["citation_precision"] is None and per[2]["citation_recall"] == 0.0


def test_repeated_citation_counts_once():
    m, _ = citation_scores([REF + " Nhắc lại: Điều 139 BLLĐ 2019."], [REF])
    assert m["citations_cited"] == 1 and m["citation_precision"] == 1.0


def test_citation_str():
    assert str(Citation("bộ luật dân sự 2015", "468", "1", None)) == "khoản 1 Điều 468 bộ luật dân sự 2015"
