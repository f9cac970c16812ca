"""The provision corpus: `data/corpus/*.jsonl`, one provision (an article or a clause of one) per line.

    {"id": "bllđ-2019-d139-k1",
     "instrument": {"name": "Bộ luật Lao động", "number": "45/2019/QH14", "year": 2019},
     "article": 139, "clause": 1, "title": "Nghỉ thai sản", "text": "Lao động nữ được nghỉ ...",
     "effective_from": "2021-01-01", "effective_to": null}

`effective_from` and `effective_to` are the first and the last day the provision applies, both
included (a version superseded by one in force from 2021-01-01 has `effective_to` 2020-12-31), so
on any date at most one version of an amended article is in force. A null `effective_to` means still
in force; a null `effective_from`, in force since before anything else in the corpus.

Every bad record (malformed JSON, no text, a duplicate id, an unparseable date, a missing field) is
reported by file:line, all of them at once, and the corpus is refused: a silently dropped provision
is an article the assistant can never cite.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from vietlegal import jsonl
from vietlegal.errors import DataError
from vietlegal.text import nfc

ARTICLE_NUMBER = re.compile(r"\d+[a-zđ]?")
# Instruments cited by their number rather than by name and year: "Nghị định 168/2024/NĐ-CP".
NUMBERED_KINDS = ("nghị định", "thông tư", "nghị quyết", "quyết định")
MAX_REPORTED = 20


@dataclass(frozen=True)
class Instrument:
    name: str  # "Bộ luật Lao động"
    number: str | None  # "45/2019/QH14"
    year: int

    @property
    def title(self) -> str:
        """How answers cite it: "Bộ luật Lao động 2019", "Nghị định 168/2024/NĐ-CP"."""
        if (self.number and self.number in self.name) or str(self.year) in self.name:
            return self.name
        if self.number and self.name.lower().startswith(NUMBERED_KINDS):
            return f"{self.name} {self.number}"
        return f"{self.name} {self.year}"


@dataclass(frozen=True)
class Provision:
    id: str
    instrument: Instrument
    article: str  # "139", "5a"
    clause: str | None
    title: str
    text: str
    effective_from: date | None
    effective_to: date | None
    source: str  # file:line

    @property
    def citation(self) -> str:
        """"khoản 1 Điều 139 Bộ luật Lao động 2019": the form the reference answers use."""
        clause = f"khoản {self.clause} " if self.clause else ""
        return f"{clause}Điều {self.article} {self.instrument.title}"

    @property
    def document(self) -> str:
        """What is indexed: the citation (so "Bộ luật Lao động" in a question matches), title and text."""
        return " ".join(part for part in (self.citation + ".", self.title, self.text) if part)

    def in_force(self, on: date) -> bool:
        started = self.effective_from is None or self.effective_from <= on
        return started and (self.effective_to is None or on <= self.effective_to)


@dataclass(frozen=True)
class Corpus:
    directory: Path
    provisions: list[Provision]
    sha256: str  # of the files' names and bytes: an index records it to detect a changed corpus

    def __len__(self) -> int:
        return len(self.provisions)

    def in_force_mask(self, on: date | None) -> list[bool]:
        return [True if on is None else p.in_force(on) for p in self.provisions]


def parse_date(value: object, field: str) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected a date 'YYYY-MM-DD' or null, got {value!r}")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{field}: {value!r} is not a date; write it as YYYY-MM-DD") from None


def _text(row: dict, field: str, required: bool) -> str:
    value = row.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not nfc(value)):
        raise ValueError(f"{field}: {'no text' if field == 'text' else 'expected a non-empty string'} (got {value!r})")
    return nfc(value)


def _instrument(value: object) -> Instrument:
    if not isinstance(value, dict):
        raise ValueError(f"instrument: expected an object with name, number, year, got {value!r}")
    name, number, year = value.get("name"), value.get("number"), value.get("year")
    if not isinstance(name, str) or not nfc(name):
        raise ValueError(f"instrument.name: expected a non-empty string, got {name!r}")
    if number is not None and not isinstance(number, str):
        raise ValueError(f"instrument.number: expected a string such as '45/2019/QH14' or null, got {number!r}")
    if isinstance(year, str) and year.strip().isdigit():
        year = int(year)
    if not isinstance(year, int) or isinstance(year, bool) or not 1800 <= year <= 2200:
        raise ValueError(f"instrument.year: expected a year such as 2019, got {year!r}")
    return Instrument(nfc(name), nfc(number) if number else None, year)


def _number(value: object, field: str, required: bool) -> str | None:
    if value is None and not required:
        return None
    text = str(value).strip().lower() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not ARTICLE_NUMBER.fullmatch(text):
        raise ValueError(f"{field}: expected a number such as 139 or '5a', got {value!r}")
    return text


def parse_provision(row: object, source: str) -> Provision:
    """One record, or ValueError naming the field."""
    if not isinstance(row, dict):
        raise ValueError("expected a JSON object")
    pid = row.get("id")
    if not isinstance(pid, str) or not pid.strip():
        raise ValueError(f"id: expected a non-empty string, got {pid!r}")
    start = parse_date(row.get("effective_from"), "effective_from")
    end = parse_date(row.get("effective_to"), "effective_to")
    if start and end and end < start:
        raise ValueError(f"effective_to {end} is before effective_from {start}")
    return Provision(
        id=pid.strip(),
        instrument=_instrument(row.get("instrument")),
        article=_number(row.get("article"), "article", required=True),
        clause=_number(row.get("clause"), "clause", required=False),
        title=_text(row, "title", required=False),
        text=_text(row, "text", required=True),
        effective_from=start,
        effective_to=end,
        source=source,
    )


def corpus_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise DataError(f"rag.corpus_dir {directory}: not a directory; create it with *.jsonl provision files (see docs/rag.md)")
    return sorted(directory.glob("*.jsonl"))


def read_provisions(path: Path, first_seen: dict[str, str], problems: list[str],
                    missing: str | None = None) -> list[Provision]:
    """The provisions of one file; each bad line or record, and each id seen before (in `first_seen`, updated),
    is added to `problems` as "file:line: what is wrong". `missing` says how to make the file if it is absent."""
    bad: list[jsonl.BadLine] = []
    provisions = []
    for number, row in jsonl.read_objects(path, DataError, missing, rejects=bad):
        where = f"{path}:{number}"
        try:
            provision = parse_provision(row, where)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if provision.id in first_seen:
            problems.append(f"{where}: duplicate id {provision.id!r} (first at {first_seen[provision.id]})")
            continue
        first_seen[provision.id] = where
        provisions.append(provision)
    problems.extend(b.where(path) for b in bad)
    return provisions


def refuse(problems: list[str], what: str) -> None:
    if problems:
        shown = "\n  ".join(problems[:MAX_REPORTED])
        more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        raise DataError(f"{len(problems)} bad record(s) in {what}; fix them:\n  {shown}{more}")


def load_corpus(directory: str | Path) -> Corpus:
    """All provisions of `directory/*.jsonl` in file then line order; DataError listing every bad record."""
    directory = Path(directory)
    digest = hashlib.sha256()
    provisions: list[Provision] = []
    first_seen: dict[str, str] = {}
    problems: list[str] = []
    for path in corpus_files(directory):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        provisions += read_provisions(path, first_seen, problems)
    refuse(sorted(problems, key=_line_order), str(directory))
    if not provisions:
        raise DataError(
            f"rag.corpus_dir {directory}: no provisions (no *.jsonl file, or only empty ones); add provision "
            "records (see docs/rag.md) or set rag.enabled: false"
        )
    return Corpus(directory, provisions, digest.hexdigest())


def _line_order(problem: str) -> tuple[str, int]:
    """"file:12: ..." in file then line order, whichever check found it."""
    where, _, _ = problem.partition(": ")
    file, _, line = where.rpartition(":")
    return (file, int(line)) if line.isdigit() else (where, 0)
