"""Q&A pairs generated from the statutes: a question about an article's subject, an answer that cites and quotes it.

    provision "Điều 20 Bộ luật Dân sự 2015 - Người thành niên: 1. Người thành niên là người từ đủ mười tám ..."
      -> {"question": "Bộ luật Dân sự 2015 quy định như thế nào về người thành niên?",
          "answer": "Điều 20 Bộ luật Dân sự 2015 (Người thành niên) quy định: \"1. Người thành niên là ...\"",
          "split": "test"}

Deterministic: the templates (statute_qa.templates, in the repo), the question and answer template of each article
and its split are picked by seeded hashes of the provision's id, so the same corpus, templates and seed give
byte-identical pairs. The split is the article's, on its own (not relative to the others): an article and all
its questions sit in one split, and the `pretrain` stage, holding the same assignment, keeps the held-out
articles out of the base's training text. Every answer cites its article in the form the citation metric reads
(`vietlegal.metrics.citation`) and cites nothing else: a quote is cut before a cross-reference ("các điều 22,
23 và 24 của Bộ luật này") that out of context names no instrument.
"""
from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass
from pathlib import Path

import yaml

from vietlegal.errors import DataError
from vietlegal.metrics.citation import ARTICLE, extract
from vietlegal.rag.corpus import Provision
from vietlegal.rag.recall import provision_pair

FIELDS = {"instrument", "article", "title", "subject", "quote"}
SPLITS = ("train", "val", "test")
SENTENCE_END = re.compile(r"(?<=[.;:])\s+")
MARKER = re.compile(r"^(?:\d+\.|[a-zđ]\))$")  # "1." "a)": a clause or point number, not a sentence
# A title that opens with a proper noun keeps its capital inside a sentence ("Tòa án nhân dân ...").
PROPER_STARTS = ("Tòa án", "Viện kiểm sát", "Nhà nước", "Chính phủ", "Quốc hội", "Hội đồng", "Ủy ban", "Việt Nam",
                 "Bộ luật", "Luật", "Thẩm phán", "Hội thẩm", "Kiểm sát viên", "Điều", "Công an", "Bộ ")


@dataclass(frozen=True)
class Templates:
    questions: tuple[str, ...]
    answers: tuple[str, ...]


def load_templates(path: str | Path) -> Templates:
    """The template file, every template checked: only known fields, and each answer cites its article."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; statute_qa.templates names the template file (see README, \"Generated statute Q&A\")")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    lists = {key: data.get(key) if isinstance(data, dict) else None for key in ("questions", "answers")}
    for key, items in lists.items():
        if not isinstance(items, list) or not items or not all(isinstance(t, str) and t.strip() for t in items):
            raise DataError(f"{path}: '{key}' must be a non-empty list of template strings")
        for k, template in enumerate(items):
            try:
                fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
            except ValueError as exc:
                raise DataError(f"{path}: {key}[{k}]: {exc}; write literal braces as {{{{ and }}}}") from None
            if fields - FIELDS:
                raise DataError(f"{path}: {key}[{k}] uses {sorted(fields - FIELDS)}; the fields are {sorted(FIELDS)}")
            if key == "answers" and "Điều {article} {instrument}" not in template:
                raise DataError(f"{path}: answers[{k}] must cite the article as \"Điều {{article}} {{instrument}}\" "
                                "(the form the citation metric reads)")
    return Templates(tuple(lists["questions"]), tuple(lists["answers"]))


def _pick(seed: int, salt: str, key: str, n: int) -> int:
    return int(hashlib.sha256(f"{seed}:{salt}:{key}".encode()).hexdigest()[:12], 16) % n


def split_of(provision_id: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    """The article's split, from its id alone: the same for the generator and the pretrain stage."""
    position = int(hashlib.sha256(f"{seed}:split:{provision_id}".encode()).hexdigest()[:12], 16) / 16 ** 12
    return "test" if position < test_fraction else "val" if position < test_fraction + val_fraction else "train"


def subject(title: str) -> str:
    """"Người thành niên" -> "người thành niên"; "Tòa án nhân dân ..." keeps its capital."""
    title = title.strip().rstrip(".")
    if not title or title.startswith(PROPER_STARTS) or (len(title) > 1 and title[1].isupper()):
        return title
    return title[0].lower() + title[1:]


def _cites_only(text: str, pair: tuple[str, str] | None) -> bool:
    return {c.pair for c in extract(text)} <= ({pair} if pair else set())


def _clip(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[:max_chars].rsplit(" ", 1)[0].rstrip(" ,;:") + " …"


def quote(provision: Provision, max_chars: int) -> str:
    """The article's opening sentences within max_chars, on one line, citing nothing a reader could not resolve;
    if the first sentence alone is too long or cites another article, its words up to that (within max_chars)."""
    pair = provision_pair(provision)
    text = " ".join(provision.text.split())
    sentences: list[str] = []
    for piece in SENTENCE_END.split(text):
        if sentences and MARKER.match(sentences[-1]):
            sentences[-1] += " " + piece
        else:
            sentences.append(piece)
    out = ""
    for sentence in sentences:
        candidate = f"{out} {sentence}".strip()
        if len(candidate) > max_chars or not _cites_only(candidate, pair):
            break
        out = candidate
    if out:
        return out if len(out) == len(text) or out.endswith(".") else out.rstrip(" ;:,") + " …"
    first = sentences[0]
    reference = ARTICLE.search(first)  # inside an article's own text, "Điều N" is a cross-reference
    return _clip(first[:reference.start()].rstrip(" ,;:(") if reference else first, max_chars) or _clip(first, max_chars)


def pair_for(provision: Provision, templates: Templates, seed: int, max_chars: int) -> dict:
    """The question and answer of one article (no split)."""
    fields = {"instrument": provision.instrument.title, "article": provision.article, "title": provision.title,
              "subject": subject(provision.title), "quote": quote(provision, max_chars)}
    question = templates.questions[_pick(seed, "question", provision.id, len(templates.questions))]
    answer = templates.answers[_pick(seed, "answer", provision.id, len(templates.answers))]
    return {"question": question.format(**fields), "answer": answer.format(**fields)}


def eligible(provision: Provision) -> str | None:
    """Why an article gets no question (None: it gets one)."""
    if provision.effective_to is not None:
        return "superseded"  # a pair would teach the citation of a version no longer in force
    if not provision.title:
        return "no_title"  # nothing to ask about
    if provision.clause is not None:
        return "clause_record"  # one question per article, asked of the article record
    return None
