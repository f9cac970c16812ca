"""Structured legal answers (`resources/legal_answer.schema.json`): the answer text plus its citations as data.

A model asked with that schema as its response format returns {"answer", "citations": [{"instrument", "number",
"year", "article", "clause"}]}. Scoring reads such a prediction as its answer followed by its citations written
the way reference answers cite ("khoản 1 Điều 139 Bộ luật Lao động 2019"), so the citation metric's extractor
and its instrument normalisation apply unchanged, and ROUGE/BLEU see the same kind of text as for a free answer.
"""
from __future__ import annotations

import json
from importlib import resources

NUMBERED_KINDS = ("nghị định", "thông tư", "nghị quyết", "quyết định")  # cited by number, not by year


def schema() -> dict:
    return json.loads(resources.files("vietlegal.resources").joinpath("legal_answer.schema.json").read_text(encoding="utf-8"))


def citation_text(citation: dict) -> str:
    """"khoản 1 Điều 139 Bộ luật Lao động 2019", "Điều 5 Nghị định 145/2020/NĐ-CP"."""
    instrument = str(citation["instrument"]).strip()
    number = citation.get("number")
    if number and instrument.lower().startswith(NUMBERED_KINDS):
        named = f"{instrument} {number}"
    else:
        named = f"{instrument} {citation['year']}"
    clause = f"khoản {citation['clause']} " if citation.get("clause") else ""
    return f"{clause}Điều {citation['article']} {named}"


def as_text(prediction: str) -> str | None:
    """A structured answer as scoring reads it (answer, then "Căn cứ: " and its citations); None if the prediction
    is not one (free text is scored as it is)."""
    try:
        data = json.loads(prediction)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("answer"), str) or not isinstance(data.get("citations"), list):
        return None
    cited = [citation_text(c) for c in data["citations"]
             if isinstance(c, dict) and isinstance(c.get("instrument"), str) and c.get("article") is not None
             and c.get("year") is not None]
    return data["answer"] + (f"\nCăn cứ: {'; '.join(cited)}." if cited else "")
