"""Each citation an answer makes, looked up in the RAG corpus: found, superseded or not found (the review page).

Citations are read by the evaluation's own extractor (`vietlegal.metrics.citation`), and a provision is the
one cited when its own citation ("khoản 1 Điều 139 Bộ luật Lao động 2019") extracts to the same (instrument,
article) pair, as the retrieval metrics match them (`vietlegal.rag.recall`). Then:

  found        a provision of that article is in force on the server's date (rag.in_force_on, else today);
               a cited clause narrows it to that clause's record where the corpus has one
  superseded   the corpus has that article only in versions no longer in force, or the instrument only in a
               later version ("Bộ luật Lao động 2012" where the corpus holds the 2019 code)
  not_found    anything else, including an article whose instrument the answer never names
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from vietlegal.metrics.citation import Citation, extract
from vietlegal.rag.corpus import Corpus, Provision
from vietlegal.rag.recall import provision_pair

STATUSES = ("found", "superseded", "not_found")
_YEAR_AT_END = re.compile(r"^(?P<name>.+) (?P<year>(?:19|20)\d{2})$")


def provision_json(p: Provision, on: date | None) -> dict:
    return {"id": p.id, "citation": p.citation, "title": p.title, "text": p.text,
            "effective_from": p.effective_from.isoformat() if p.effective_from else None,
            "effective_to": p.effective_to.isoformat() if p.effective_to else None,
            "in_force": True if on is None else p.in_force(on)}


@dataclass
class CitationIndex:
    corpus: Corpus

    def __post_init__(self) -> None:
        self.by_pair: dict[tuple[str, str], list[Provision]] = {}
        self.years: dict[str, set[int]] = {}
        self.by_id = {p.id: p for p in self.corpus.provisions}
        for p in self.corpus.provisions:
            pair = provision_pair(p)
            if pair is None:
                continue
            self.by_pair.setdefault(pair, []).append(p)
            named = _YEAR_AT_END.match(pair[0])
            if named:
                self.years.setdefault(named["name"], set()).add(int(named["year"]))

    def status(self, c: Citation, on: date | None) -> tuple[str, list[Provision]]:
        """`on`: the in-force date (None: every version counts as in force)."""
        if c.instrument is None:
            return "not_found", []
        matches = self.by_pair.get(c.pair, [])
        if c.clause and any(p.clause == c.clause for p in matches):
            matches = [p for p in matches if p.clause == c.clause]
        in_force = [p for p in matches if on is None or p.in_force(on)]
        if in_force:
            return "found", in_force
        if matches:
            return "superseded", matches
        named = _YEAR_AT_END.match(c.instrument)
        if named and any(y > int(named["year"]) for y in self.years.get(named["name"], ())):
            return "superseded", []
        return "not_found", []

    def check(self, text: str, on: date | None) -> list[dict]:
        """One entry per citation of `text`, in order: the citation, its status and the provisions it names."""
        out = []
        for c in extract(text):
            status, provisions = self.status(c, on)
            out.append({"citation": str(c), "status": status,
                        "provisions": [provision_json(p, on) for p in provisions]})
        return out
