"""Reviewers' verdicts (`POST /v1/feedback`, docs/review.md) as data: one review per JSON line.

    {"id": "fb-…", "time": "2026-12-01T09:30:00.123Z", "reviewer": "LS. Hà",
     "question": "Lao động nữ được nghỉ thai sản bao lâu?",
     "messages": [{"role": "user", "content": "Lao động nữ được nghỉ thai sản bao lâu?"}],
     "answers": [{"model": "vietlegal-3f2a…", "system_fingerprint": "fp_3f2a…", "answer": "…",
                  "retrieved_provisions": ["blld-2019-d139"], "verdict": "wrong_citation", "correction": "…"},
                 {"model": "vietlegal-9c1e…", …, "verdict": "correct", "correction": null}],
     "preferred": 1}

One line is one review: a single answer, or the two answers of a side-by-side comparison with `preferred`
(the index of the better one in `answers`, null for no preference), so a pair is written, and lost, whole.
`messages` is the conversation the models were asked (its last turn the question); `retrieved_provisions`
is null when the server answered without retrieval.

`parse_review` checks a body (the server's) or a stored line (prepare's); both raise `BadReview` naming
the field. `read_feedback` turns a directory of such lines into what the pipeline uses: training
conversations (a correction becomes the assistant turn), preference pairs, one verdict row per answer,
and a Reject (file:line, reason) for every line that cannot be used.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vietlegal import jsonl
from vietlegal.data.conversation import Conversation, check_messages, with_system
from vietlegal.data.records import Reject, record_id
from vietlegal.errors import ChatError
from vietlegal.metrics.review import VERDICTS
from vietlegal.text import nfc

DIRECTORY = "feedback"  # prepare reads <prepare.raw_dir>/feedback as reviews, not as Q&A files
MAX_ANSWERS = 2
MAX_LABEL_CHARS = 200
CORRECTED_BY = "reviewer"  # chosen_model of a pair made from a correction: a person wrote the chosen answer


class BadReview(ValueError):
    """A review that cannot be used; `field` is its JSON path ("answers[1].verdict")."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class ReviewedAnswer:
    model: str
    system_fingerprint: str | None
    answer: str
    retrieved_provisions: list[str] | None
    verdict: str
    correction: str | None

    def row(self) -> dict:
        return {"model": self.model, "system_fingerprint": self.system_fingerprint, "answer": self.answer,
                "retrieved_provisions": self.retrieved_provisions, "verdict": self.verdict,
                "correction": self.correction}


@dataclass(frozen=True)
class Review:
    question: str
    messages: list[dict]  # what the models were asked, the question last
    answers: list[ReviewedAnswer]
    preferred: int | None  # index into answers of the better one (side by side only)
    reviewer: str | None
    id: str | None = None  # set by the server when it stores the review
    time: str | None = None

    def row(self) -> dict:
        return {"id": self.id, "time": self.time, "reviewer": self.reviewer, "question": self.question,
                "messages": self.messages, "answers": [a.row() for a in self.answers], "preferred": self.preferred}


def _string(obj: dict, key: str, where: str, required: bool, max_chars: int | None = None) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise BadReview(where + key, f"expected a string, got {_kind(value)}")
    text = nfc(value)
    if required and not text:
        raise BadReview(where + key, "must not be empty")
    if max_chars is not None and len(text) > max_chars:
        raise BadReview(where + key, f"at most {max_chars} characters, got {len(text)}")
    return text or None


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _ids(value: object, where: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadReview(where, f"expected a list of provision ids or null, got {_kind(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise BadReview(f"{where}[{i}]", f"expected a provision id, got {item!r}")
    return [item.strip() for item in value]


def _answer(obj: object, where: str) -> ReviewedAnswer:
    if not isinstance(obj, dict):
        raise BadReview(where.rstrip("."), f"expected an object with model, answer and verdict, got {_kind(obj)}")
    verdict = obj.get("verdict")
    if verdict not in VERDICTS:
        raise BadReview(where + "verdict", f"{verdict!r} is not one of {', '.join(VERDICTS)}")
    return ReviewedAnswer(
        model=_string(obj, "model", where, required=True, max_chars=MAX_LABEL_CHARS),
        system_fingerprint=_string(obj, "system_fingerprint", where, required=False, max_chars=MAX_LABEL_CHARS),
        answer=_string(obj, "answer", where, required=False) or "",
        retrieved_provisions=_ids(obj.get("retrieved_provisions"), where + "retrieved_provisions"),
        verdict=verdict,
        correction=_string(obj, "correction", where, required=False),
    )


def _messages(body: dict, question: str) -> list[dict]:
    if body.get("messages") is None:
        return [{"role": "user", "content": question}]
    try:
        messages = check_messages(body["messages"])
    except ChatError as exc:
        field_, _, message = str(exc).partition(": ")
        raise BadReview(field_, message) from None
    if messages[-1]["role"] != "user" or messages[-1]["content"] != question:
        raise BadReview("messages", "the last message must be the user's question (the same text as 'question')")
    return messages


KNOWN = {"id", "time", "reviewer", "question", "messages", "answers", "preferred"}


def parse_review(body: object, stored: bool = False) -> Review:
    """A checked, NFC-normalised Review; `stored`: a line read back, which must carry its id and time."""
    if not isinstance(body, dict):
        raise BadReview("body", f"expected a JSON object, got {_kind(body)}")
    unknown = sorted(set(body) - KNOWN)
    if unknown:
        raise BadReview(unknown[0].strip() or "body", f"unknown field {unknown[0]!r}; a review has "
                                                      f"{', '.join(sorted(KNOWN - {'id', 'time'}))}")
    question = _string(body, "question", "", required=True)
    answers = body.get("answers")
    if not isinstance(answers, list) or not 1 <= len(answers) <= MAX_ANSWERS:
        raise BadReview("answers", f"expected a list of 1 or {MAX_ANSWERS} reviewed answers, got "
                                   f"{len(answers) if isinstance(answers, list) else _kind(answers)}")
    reviewed = [_answer(a, f"answers[{i}].") for i, a in enumerate(answers)]
    preferred = body.get("preferred")
    if preferred is not None:
        if len(reviewed) != 2:
            raise BadReview("preferred", "only a side-by-side review (two answers) has a preferred answer")
        if type(preferred) is not int or preferred not in (0, 1):  # not True, not 1.0
            raise BadReview("preferred", f"expected 0 or 1 (the index of the better answer) or null, got {preferred!r}")
    review = Review(question, _messages(body, question), reviewed, preferred,
                    _string(body, "reviewer", "", required=False, max_chars=MAX_LABEL_CHARS))
    if not stored:
        return review
    return Review(**{**vars(review), "id": _string(body, "id", "", required=True, max_chars=MAX_LABEL_CHARS),
                     "time": _string(body, "time", "", required=True, max_chars=MAX_LABEL_CHARS)})


# --- a feedback directory, for the pipeline ------------------------------------------------------------------
@dataclass
class Feedback:
    corrections: list[Conversation] = field(default_factory=list)  # training records, the correction as the answer
    preferences: list[dict] = field(default_factory=list)  # {"prompt", "chosen", "rejected", ...} (TRL's layout)
    reviews: list[dict] = field(default_factory=list)  # one row per reviewed answer: source, model, verdict
    rejects: list[Reject] = field(default_factory=list)
    records: int = 0  # usable review lines

    def counts(self) -> dict:
        """What metrics/data.json reports."""
        return {"records": self.records, "answers_reviewed": len(self.reviews),
                "by_verdict": {v: sum(1 for r in self.reviews if r["verdict"] == v) for v in VERDICTS},
                "corrections": len(self.corrections), "preference_pairs": len(self.preferences),
                "rejects": dict(sorted(Counter(r.reason for r in self.rejects).items()))}


def feedback_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and p.name != "README.md")


def read_feedback(directory: Path, root: Path, system_prompt: str) -> Feedback:
    """Every review line under `directory` (*.jsonl); a Reject naming file:line for each one that is unusable."""
    out = Feedback()
    for path in feedback_files(directory):
        label = _label(path, root)
        if path.suffix.lower() != ".jsonl":
            out.rejects.append(Reject(f"{label}:0", "unsupported_file", f"extension {path.suffix!r}; feedback is "
                                      "the .jsonl files `vietlegal serve` writes to serve.feedback_dir"))
            continue
        for number, value, line in jsonl.parse(jsonl.lines_of(path)):
            where = f"{label}:{number}"
            if isinstance(value, jsonl.BadLine):
                # The last line of a file a crash cut short lands here too: reported, never half-used.
                out.rejects.append(Reject(where, value.reason, value.detail, line))
                continue
            try:
                review = parse_review(value, stored=True)
            except BadReview as exc:
                out.rejects.append(Reject(where, "bad_feedback", str(exc), line))
                continue
            _add(out, review, where, system_prompt)
    out.corrections.sort(key=lambda c: c.id)
    out.preferences.sort(key=lambda p: p["id"])
    return out


def _add(out: Feedback, review: Review, where: str, system_prompt: str) -> None:
    out.records += 1
    prompt = with_system(review.messages, system_prompt)
    for k, a in enumerate(review.answers):
        out.reviews.append({"source": where, "review": review.id, "model": a.model,
                            "system_fingerprint": a.system_fingerprint, "verdict": a.verdict,
                            "preferred": None if review.preferred is None else review.preferred == k})
        if a.correction:
            messages = prompt + [{"role": "assistant", "content": a.correction}]
            out.corrections.append(Conversation(record_id(messages), where, messages,
                                                {"feedback": {"review": review.id, "model": a.model,
                                                              "verdict": a.verdict}}))
    if review.preferred is not None:
        chosen, rejected = review.answers[review.preferred], review.answers[1 - review.preferred]
        out.preferences.append(_pair(prompt, chosen.answer, rejected.answer, where, review.id, "side_by_side",
                                     chosen.model, rejected.model))
    for a in review.answers:  # a corrected answer: the correction is preferred to what the model said
        if a.correction and a.answer and a.correction != a.answer:
            out.preferences.append(_pair(prompt, a.correction, a.answer, where, review.id, "correction",
                                         CORRECTED_BY, a.model))


def _pair(prompt: list[dict], chosen: str, rejected: str, where: str, review: str | None, kind: str,
          chosen_model: str, rejected_model: str) -> dict:
    key = json.dumps([prompt, chosen, rejected], ensure_ascii=False)
    return {"id": hashlib.sha256(key.encode()).hexdigest()[:16], "source": where, "review": review, "kind": kind,
            "prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
            "chosen_model": chosen_model, "rejected_model": rejected_model}


def place_corrections(parts: dict[str, list[Conversation]], corrections: list[Conversation],
                      question_key) -> tuple[dict[str, list[Conversation]], dict[str, int], int]:
    """Corrections join the training split, except one whose question is already in val or test: it joins that
    split (a question never sits in two splits). Returns (the splits, corrections per split, duplicates dropped:
    a correction identical to a record already there)."""
    where = {question_key(c.messages): name for name, rows in parts.items() if name != "train" for c in rows}
    seen = {c.id for rows in parts.values() for c in rows}
    placed = {name: list(rows) for name, rows in parts.items()}
    per_split: Counter = Counter()
    duplicates = 0
    for c in corrections:
        if c.id in seen:
            duplicates += 1
            continue
        seen.add(c.id)
        name = where.get(question_key(c.messages), "train")
        placed[name].append(c)
        per_split[name] += 1
    return ({name: sorted(rows, key=lambda c: c.id) for name, rows in placed.items()},
            {name: per_split[name] for name in parts}, duplicates)


def _label(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
