"""`vietlegal corpus import`: public law-corpus shapes into provision records that the corpus reader, the
retriever and the citation metric take unchanged; every unreadable article named by file:line."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vietlegal.cli import main as cli_main
from vietlegal.commands.corpus import report_path, run_import
from vietlegal.errors import DataError
from vietlegal.metrics.citation import extract, pairs
from vietlegal.params import RagConfig
from vietlegal.rag import importing
from vietlegal.rag.corpus import load_corpus
from vietlegal.rag.retriever import Retriever, build

ZALO = [
    {"law_id": "91/2015/qh13", "articles": [
        {"article_id": "429", "title": "Điều 429. Thời hiệu khởi kiện về hợp đồng",
         "text": "Thời hiệu khởi kiện để yêu cầu Tòa án giải quyết tranh chấp hợp đồng là 03 năm."},
        {"article_id": "Chương II", "title": "Chương II", "text": "Giao dịch dân sự"},
    ]},
    {"law_id": "168/2024/nđ-cp", "articles": [
        {"article_id": "6", "title": "Xử phạt người điều khiển xe mô tô", "text": "Phạt tiền từ 800.000 đồng đến 1.000.000 đồng."},
        {"article_id": "6", "title": "Lặp", "text": "Bản lặp."},
    ]},
]
ALQAC = [
    {"id": "Bộ luật Lao động 2019", "articles": [{"id": "139", "text": "Lao động nữ được nghỉ thai sản trước và sau khi sinh con là 06 tháng."}]},
    {"id": "Luật Đất đai", "articles": [{"id": "1", "text": "Phạm vi điều chỉnh."}]},  # no year: rejected
    {"id": "Luật Đất đai", "year": 2024, "articles": [{"id": "Điều 45", "text": "Điều kiện chuyển nhượng quyền sử dụng đất."}]},
]


def test_law_lists_import_and_bad_articles_are_named_by_line(tmp_path):
    (tmp_path / "zalo.json").write_text(json.dumps(ZALO, ensure_ascii=False, indent=2), encoding="utf-8")
    (tmp_path / "alqac.jsonl").write_text("".join(json.dumps(law, ensure_ascii=False) + "\n" for law in ALQAC), encoding="utf-8")
    out = tmp_path / "corpus" / "public.jsonl"
    summary = run_import([tmp_path / "zalo.json", tmp_path / "alqac.jsonl"], out)
    text = (tmp_path / "zalo.json").read_text(encoding="utf-8").splitlines()
    chapter_line = next(i for i, line in enumerate(text, 1) if '"Chương II"' in line) - 1  # the article's "{"
    dup_line = [i for i, line in enumerate(text, 1) if '"Lặp"' in line][0] - 2
    got = {(r["source"].rsplit("/", 1)[-1], r["reason"]) for r in summary["rejects"]}
    assert got == {(f"zalo.json:{chapter_line}", "unreadable_article_number"), (f"zalo.json:{dup_line}", "duplicate_article"),
                   ("alqac.jsonl:2", "no_year")}
    assert summary["provisions"] == 4 and summary["laws"] == 5 and summary["no_effective_date_taken_as_in_force"] == 4
    assert json.loads(report_path(out).read_text(encoding="utf-8"))["rejects"] == summary["rejects"]

    corpus = load_corpus(out.parent)  # the corpus reader takes the files as they are
    assert [p.citation for p in corpus.provisions] == [
        "Điều 429 Luật số 91/2015/QH13", "Điều 6 Nghị định 168/2024/NĐ-CP",
        "Điều 139 Bộ luật Lao động 2019", "Điều 45 Luật Đất đai 2024"]
    assert corpus.provisions[0].title == "Thời hiệu khởi kiện về hợp đồng"  # "Điều 429." is not repeated
    assert corpus.provisions[0].instrument.year == 2015 and corpus.provisions[3].instrument.number is None

    cfg = RagConfig(corpus_dir=str(out.parent), index_dir=str(tmp_path / "index"), dense=False, in_force_on="2025-07-01")
    build(corpus, cfg, tmp_path / "index")
    retriever = Retriever.load(tmp_path / "index", out.parent, cfg)
    assert retriever.search("Lao động nữ được nghỉ thai sản bao lâu?")[0].provision.citation == "Điều 139 Bộ luật Lao động 2019"
    for p in corpus.provisions[1:]:  # the citation metric reads the imported provisions' citations
        assert len(pairs(extract(f"Theo {p.citation}, ..."))) == 1


def test_flat_csv_rows_with_dates_and_clauses(tmp_path):
    with open(tmp_path / "flat.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["instrument", "article", "clause", "title", "text", "effective_from"])
        w.writerow(["Bộ luật Dân sự 2015", "468", "1", "Lãi suất", "Lãi suất theo thỏa thuận\nkhông vượt quá 20%/năm.", "2017-01-01"])
        w.writerow(["Bộ luật Dân sự 2015", "abc", "", "", "x", ""])
        w.writerow(["Bộ luật Dân sự 2015", "5a", "", "", "", ""])
        w.writerow(["Bộ luật Dân sự 2015", "6", "", "", "y", "01/01/2017"])
    out = tmp_path / "c" / "flat.jsonl"
    summary = run_import([tmp_path / "flat.csv"], out)
    assert {(r["source"].rsplit("/", 1)[-1], r["reason"]) for r in summary["rejects"]} == {
        ("flat.csv:4", "unreadable_article_number"), ("flat.csv:5", "no_text"), ("flat.csv:6", "bad_field")}
    (row,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert row["clause"] == "1" and row["effective_from"] == "2017-01-01" and row["text"].endswith("20%/năm.")
    assert load_corpus(out.parent).provisions[0].citation == "khoản 1 Điều 468 Bộ luật Dân sự 2015"
    assert summary["no_effective_date_taken_as_in_force"] == 0


KINDS = {"QH": "Luật số", "NĐ-CP": "Nghị định", "TT-BNN": "Thông tư", "NQ-HĐTP": "Nghị quyết", "QĐ-TTg": "Quyết định"}


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(st.integers(1, 999), st.integers(1945, 2030), st.sampled_from(sorted(KINDS)), st.integers(10, 15), st.booleans())
def test_every_instrument_number_gives_number_year_and_kind(n, year, kind, legislature, lower):
    suffix = f"QH{legislature}" if kind == "QH" else kind
    written = f"{n}/{year}/{suffix}"
    inst = importing.instrument(written.lower() if lower else written)
    assert (inst.number, inst.year) == (f"{n}/{year}/{suffix.upper()}", year)
    assert inst.name.startswith(KINDS[kind]) and inst.number in inst.title


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(st.integers(1, 999), st.sampled_from(["", "a", "b", "đ"]), st.sampled_from(["{}", "Điều {}", "điều {}.", " {} "]))
def test_article_numbers_in_any_of_their_spellings(n, letter, form):
    assert importing.article_number(form.format(f"{n}{letter}")) == f"{n}{letter}"


@pytest.mark.parametrize("bad", ["", "Chương I", "Điều", "1.2", None, True, "I"])
def test_unreadable_article_numbers_are_refused(bad):
    with pytest.raises(importing.Rejected, match="expected a number"):
        importing.article_number(bad)


@pytest.mark.parametrize("name, year, expected", [
    ("Bộ luật Dân sự 2015", None, ("Bộ luật Dân sự", None, 2015)),
    ("Luật Đất đai", 2024, ("Luật Đất đai", None, 2024)),
    ("Luật Đất đai", "2024", ("Luật Đất đai", None, 2024)),
    ("Nghị định 100/2019/nđ-cp", None, ("Nghị định 100/2019/NĐ-CP", "100/2019/NĐ-CP", 2019)),
    ({"name": "Bộ luật Lao động", "number": "45/2019/QH14", "year": 2019}, None, ("Bộ luật Lao động", "45/2019/QH14", 2019)),
])
def test_names_are_kept(name, year, expected):
    inst = importing.instrument(name, year=year)
    assert (inst.name, inst.number, inst.year) == expected


def test_cli_imports_and_refuses_an_empty_result(tmp_path, capsys):
    (tmp_path / "laws.json").write_text(json.dumps(ZALO, ensure_ascii=False), encoding="utf-8")
    assert cli_main(["corpus", "import", str(tmp_path / "laws.json"), "--out", str(tmp_path / "c" / "z.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "2 provisions from 2 laws" in err and "unreadable_article_number" in err and "taken as in force" in err
    (tmp_path / "bad.json").write_text(json.dumps([{"law_id": "x", "articles": []}]), encoding="utf-8")
    assert cli_main(["corpus", "import", str(tmp_path / "bad.json"), "--out", str(tmp_path / "c" / "b.jsonl")]) == 2
    assert "no provision could be imported" in capsys.readouterr().err
    with pytest.raises(DataError, match="must end in .jsonl"):
        run_import([tmp_path / "laws.json"], tmp_path / "c" / "z.json")


ARTICLE_IDS = st.one_of(
    st.tuples(st.integers(1, 300), st.sampled_from(["", "a", "đ"]), st.sampled_from(["{}", "Điều {}", " {}. "])).map(
        lambda t: (t[2].format(f"{t[0]}{t[1]}"), f"{t[0]}{t[1]}")),
    st.integers(1, 300).map(lambda n: (n, str(n))),
    st.sampled_from(["Chương I", "Mục 2", "", "1.1", "Phụ lục"]).map(lambda s: (s, None)),
)
LAW = st.tuples(st.integers(1, 200), st.integers(1990, 2025), st.sampled_from(["QH13", "nđ-cp", "TT-BTC"]),
                st.lists(st.tuples(ARTICLE_IDS, st.sampled_from(["Nội dung điều.", "", "  "]),
                                   st.dictionaries(st.sampled_from(["url", "chapter"]), st.just("x"), max_size=2)),
                         min_size=1, max_size=6),
                st.dictionaries(st.sampled_from(["category", "source"]), st.just("y"), max_size=2))


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(st.lists(LAW, min_size=1, max_size=4))
def test_every_article_of_a_generated_law_list_is_imported_or_rejected_by_its_own_line(laws):
    import tempfile

    lines, expected, rejected, ignored = ["["], {}, {}, {}
    for li, (n, year, kind, articles, extra) in enumerate(laws):
        number = f"{n}/{year}/{kind.upper()}"
        lines.append(json.dumps({"law_id": f"{n}/{year}/{kind}", **extra}, ensure_ascii=False)[:-1] + ', "articles": [')
        for k, name in extra.items():
            ignored[k] = ignored.get(k, 0) + 1
        for ai, ((written, article), text, fields) in enumerate(articles):
            end = "," if ai < len(articles) - 1 else ""
            lines.append(json.dumps({"article_id": written, "text": text, **fields}, ensure_ascii=False) + end)
            line = len(lines)
            for k in fields:
                ignored[f"articles[].{k}"] = ignored.get(f"articles[].{k}", 0) + 1
            pid = f"{n}-{year}-{kind.lower()}-d{article}"
            if article is None:
                rejected[line] = "unreadable_article_number"
            elif not text.strip():
                rejected[line] = "no_text"
            elif pid in expected:
                rejected[line] = "duplicate_article"
            else:
                expected[pid] = (number, year, article)
        lines.append("]}" + ("," if li < len(laws) - 1 else ""))
    lines.append("]")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "laws.json"
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        report = importing.import_files([src])
    got = {p["id"]: (p["instrument"]["number"], p["instrument"]["year"], p["article"]) for p in report.provisions}
    assert got == expected
    assert {int(r["source"].rsplit(":", 1)[1]): r["reason"] for r in report.rejects} == rejected
    assert report.summary()["ignored_fields"] == ({src.as_posix(): dict(sorted(ignored.items()))} if ignored else {})
