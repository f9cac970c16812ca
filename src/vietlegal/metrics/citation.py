"""Legal citation accuracy: which provisions (Điều N of an instrument) an answer cites, scored against the reference.

A citation is (instrument, article) plus the clause (khoản) and point (điểm) where given. Instruments
are normalised to one key that includes the version: "BLLĐ 2019", "Bộ luật Lao động năm 2019" and
"Bộ luật Lao động số 45/2019/QH14" are all `bộ luật lao động 2019`; "Nghị định số 168/2024/NĐ-CP" is
`nghị định 168/2024`. Article numbers move between versions (maternity leave: Labour Code 2012
art. 157 -> 2019 art. 139), so the right article of the wrong instrument, or of a superseded
version, does not match. A yearless mention takes the year the same answer gives that instrument
elsewhere; otherwise its key has no year and cannot match a dated reference. An article whose
instrument cannot be found ("Điều 5 Luật này") counts as cited but can never be correct.

Scores are micro-averaged over (instrument, article) pairs: precision = correct / cited,
recall = correct / expected, F1 their harmonic mean, with 0 where the denominator is 0.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from vietlegal.text import nfc

# Canonical names of instruments that are often cited without a year or in lower case.
KNOWN_NAMES = (
    "Bộ luật Dân sự", "Bộ luật Lao động", "Bộ luật Hình sự", "Bộ luật Tố tụng dân sự", "Bộ luật Tố tụng hình sự",
    "Bộ luật Hàng hải Việt Nam", "Luật Hôn nhân và gia đình", "Luật Người cao tuổi", "Luật Đất đai",
    "Luật Doanh nghiệp", "Luật Đầu tư", "Luật Thương mại", "Luật Nhà ở", "Luật Bảo hiểm xã hội",
    "Luật Bảo hiểm y tế", "Luật Việc làm", "Luật Công đoàn", "Luật An toàn, vệ sinh lao động",
    "Luật Giao thông đường bộ", "Luật Trật tự, an toàn giao thông đường bộ", "Luật Xử lý vi phạm hành chính",
    "Luật Bảo vệ quyền lợi người tiêu dùng", "Luật Thuế thu nhập cá nhân", "Luật Cư trú", "Luật Căn cước",
    "Luật Trẻ em", "Luật Hộ tịch", "Luật Quốc tịch Việt Nam", "Luật Phòng, chống bạo lực gia đình",
    "Luật Kinh doanh bất động sản", "Luật Bình đẳng giới", "Luật Người khuyết tật", "Luật Khiếu nại", "Luật Tố cáo",
)

# Short forms and colloquial names -> canonical name.
ALIASES = {
    "BLDS": "Bộ luật Dân sự", "BLLĐ": "Bộ luật Lao động", "BLLD": "Bộ luật Lao động", "BLHS": "Bộ luật Hình sự",
    "BLTTDS": "Bộ luật Tố tụng dân sự", "BLTTHS": "Bộ luật Tố tụng hình sự",
    "Luật HNGĐ": "Luật Hôn nhân và gia đình", "Luật HN&GĐ": "Luật Hôn nhân và gia đình",
    "Luật HNVGĐ": "Luật Hôn nhân và gia đình", "Luật HN và GĐ": "Luật Hôn nhân và gia đình",
    "Luật BHXH": "Luật Bảo hiểm xã hội", "Luật BHYT": "Luật Bảo hiểm y tế", "Luật DN": "Luật Doanh nghiệp",
    "Luật ĐĐ": "Luật Đất đai", "Luật NCT": "Luật Người cao tuổi", "Luật XLVPHC": "Luật Xử lý vi phạm hành chính",
    "Luật GTĐB": "Luật Giao thông đường bộ", "Luật BVQLNTD": "Luật Bảo vệ quyền lợi người tiêu dùng",
    "Luật TTCN": "Luật Thuế thu nhập cá nhân",
    "Luật Lao động": "Bộ luật Lao động", "Luật Dân sự": "Bộ luật Dân sự", "Luật Hình sự": "Bộ luật Hình sự",
    "Luật Hôn nhân gia đình": "Luật Hôn nhân và gia đình",
}

# "2019", "năm 2019", or the law's number "số 45/2019/QH14".
_YEAR = r"(?:\s+(?:năm\s+)?(?P<year>(?:19|20)\d{2})(?!\d)|\s+số\s+\d+/(?P<law_year>(?:19|20)\d{2})/QH\d*)"


def _name_key(text: str) -> str:
    """"Luật An toàn, vệ sinh  lao động" -> "luật an toàn vệ sinh lao động"."""
    return re.sub(r"[\s,]+", " ", text).strip().lower()


def _phrase(text: str) -> str:
    """A literal name as a regex: any whitespace between words, commas optional."""
    return r"\s*,?\s*".join(r"\s+".join(re.escape(w) for w in part.split()) for part in text.split(","))


def _names_pattern() -> re.Pattern:
    names = {n.lower(): n for n in KNOWN_NAMES} | {a.lower(): c for a, c in ALIASES.items()}
    alternatives = sorted(names, key=len, reverse=True)  # longest first: "bộ luật lao động" before "luật lao động"
    return re.compile(r"(?<!\w)(?P<name>" + "|".join(_phrase(a) for a in alternatives) + r")(?!\w)" + _YEAR + "?", re.IGNORECASE)


_NAME_TO_CANONICAL = {_name_key(k): v for k, v in ({n: n for n in KNOWN_NAMES} | ALIASES).items()}
NAMED = _names_pattern()
# Any other "(Bộ) luật <Name> <year>": the name must start with a capital and be followed by a year,
# so prose such as "pháp luật năm 2015" is not taken for an instrument.
GENERIC = re.compile(
    r"(?<!\w)(?P<kind>bộ\s+luật|luật)\s+(?P<name>[^\W\d_]+(?:,?\s+[^\W\d_]+){0,9}?)" + _YEAR,
    re.IGNORECASE,
)
DOCUMENT = re.compile(
    r"(?<!\w)(?P<kind>nghị\s+định|thông\s+tư\s+liên\s+tịch|thông\s+tư|nghị\s+quyết|quyết\s+định)\s+(?:số\s+)?"
    r"(?P<number>\d+[a-z]?)/(?P<year>(?:19|20)\d{2})(?:/(?P<suffix>[\w\-]+))?",
    re.IGNORECASE,
)
ARTICLE = re.compile(
    r"(?<!\w)(?:điểm\s+(?P<point>[a-zđ])(?!\w)\s*,?\s*)?(?:khoản\s+(?P<clause>\d+)\s*,?\s*)?"
    r"điều\s+(?P<article>\d+[a-z]?)(?!\w)"
    r"(?P<more>(?:\s*,\s*\d+[a-z]?(?!\w))*\s+(?:và|hoặc)\s+\d+[a-z]?(?!\w))?",
    re.IGNORECASE,
)
# Words that may stand between an article and its instrument: "Điều 8 và Điều 9 của Luật ...".
GLUE = {"của", "tại", "thuộc", "trong", "theo", "và", "hoặc", "các", "cùng", "quy", "định"}
SENTENCE_END = re.compile(r"[.!?;\n]")


@dataclass(frozen=True)
class Citation:
    instrument: str | None  # canonical key including the version, None if it could not be found
    article: str
    clause: str | None = None
    point: str | None = None

    @property
    def pair(self) -> tuple[str | None, str]:
        return (self.instrument, self.article)

    def __str__(self) -> str:
        parts = [f"điểm {self.point}" if self.point else "", f"khoản {self.clause}" if self.clause else "",
                 f"Điều {self.article}", self.instrument or "<văn bản không rõ>"]
        return " ".join(p for p in parts if p)


@dataclass
class _Instrument:
    start: int
    end: int
    name: str  # canonical name, lower case
    year: str | None

    @property
    def key(self) -> str:
        return f"{self.name} {self.year}" if self.year else self.name


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _instruments(text: str) -> list[_Instrument]:
    found: list[_Instrument] = []

    def add(m: re.Match, name: str, year: str | None) -> None:
        if not any(m.start() < f.end and f.start < m.end() for f in found):
            found.append(_Instrument(m.start(), m.end(), name, year))

    for m in DOCUMENT.finditer(text):
        kind = _collapse(m["kind"])
        # Decrees are all the Government's (NĐ-CP, often typed ND-CP); other kinds need the issuer.
        suffix = "" if kind == "nghị định" or not m["suffix"] else "/" + m["suffix"].lower().replace("đ", "d")
        add(m, f"{kind} {m['number'].lower()}/{m['year']}{suffix}", None)
    for m in NAMED.finditer(text):
        add(m, _name_key(_NAME_TO_CANONICAL[_name_key(m["name"])]), m["year"] or m["law_year"])
    for m in GENERIC.finditer(text):
        if m["name"][0].isupper():
            add(m, _name_key(f"{m['kind']} {m['name']}"), m["year"] or m["law_year"])
    _inherit_years(found)
    return sorted(found, key=lambda f: f.start)


def _inherit_years(found: list[_Instrument]) -> None:
    """"Điều 139 Bộ luật Lao động 2019 ... Điều 141 Bộ luật Lao động": the second means 2019 too."""
    years: dict[str, set[str]] = {}
    for f in found:
        if f.year:
            years.setdefault(f.name, set()).add(f.year)
    for f in found:
        if f.year is None and len(years.get(f.name, ())) == 1:
            f.year = next(iter(years[f.name]))


def _glue_only(gap: str) -> bool:
    if SENTENCE_END.search(gap):
        return False
    return all(w.lower() in GLUE for w in re.findall(r"\w+", gap))


def _resolve(text: str, start: int, end: int, articles: list[tuple[int, int]], instruments: list[_Instrument]) -> str | None:
    """The instrument an article belongs to: the next one if only glue (or more articles) lies between,
    else the last one earlier in the same sentence ("Theo Bộ luật Lao động 2019, tại Điều 139 ...")."""
    after = next((i for i in instruments if i.start >= end), None)
    if after is not None:
        gap = list(text[end:after.start])
        for s, e in articles:
            if end <= s and e <= after.start:
                gap[s - end:e - end] = " " * (e - s)
        if _glue_only("".join(gap)):
            return after.key
    before = [i for i in instruments if i.end <= start]
    if before and not SENTENCE_END.search(text[before[-1].end:start]):
        return before[-1].key
    return None


def extract(text: str) -> list[Citation]:
    """Citations in order of appearance, each once."""
    text = nfc(text)
    instruments = _instruments(text)
    matches = [m for m in ARTICLE.finditer(text) if not any(i.start <= m.start() < i.end for i in instruments)]
    spans = [(m.start(), m.end()) for m in matches]
    out: list[Citation] = []
    for m in matches:
        instrument = _resolve(text, m.start(), m.end(), spans, instruments)
        numbers = [m["article"]] + (re.findall(r"\d+[a-z]?", m["more"]) if m["more"] else [])
        for k, number in enumerate(numbers):
            # The clause/point of "khoản 1 Điều 8 và 9" belongs to the first article only.
            first = k == 0
            c = Citation(instrument, number.lower(), m["clause"] if first else None, m["point"].lower() if first and m["point"] else None)
            if c not in out:
                out.append(c)
    return out


def pairs(citations: list[Citation]) -> set[tuple[str | None, str]]:
    return {c.pair for c in citations}


def _correct(predicted: set, expected: set) -> int:
    return sum(1 for p in predicted if p[0] is not None and p in expected)


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def citation_scores(predictions: list[str], references: list[str]) -> tuple[dict, list[dict]]:
    """(micro-averaged metrics, per-example detail)."""
    cited = expected = correct = citing_nothing = 0
    per_example = []
    for prediction, reference in zip(predictions, references, strict=True):
        got, want = extract(prediction), extract(reference)
        p, r = pairs(got), pairs(want)
        ok = _correct(p, r)
        cited, expected, correct = cited + len(p), expected + len(r), correct + ok
        citing_nothing += not p
        per_example.append({
            "citations": [str(c) for c in got],
            "expected_citations": [str(c) for c in want],
            "citation_precision": _ratio(ok, len(p)) if p else None,
            "citation_recall": _ratio(ok, len(r)) if r else None,
        })
    precision, recall = _ratio(correct, cited), _ratio(correct, expected)
    n = len(predictions)
    return {
        "citation_precision": precision,
        "citation_recall": recall,
        "citation_f1": _f1(precision, recall),
        "citation_none_share": _ratio(citing_nothing, n),
        "citations_cited": cited,
        "citations_expected": expected,
        "citations_correct": correct,
    }, per_example
