"""The reviewers' preference pairs as stage align reads them, and their split by question.

    data/processed/preferences.jsonl   (prepare, vietlegal.data.feedback)
      {"id", "source": "file:line", "review", "kind": "side_by_side" | "correction",
       "prompt": [messages, the question last], "chosen": [{"role": "assistant", ...}], "rejected": [...],
       "chosen_model", "rejected_model"}

A side-by-side verdict gives the preferred answer over the other; a corrected answer gives the correction over
what the model said. Every row is checked (a bad one stops with file:line); a pair whose two answers are the same
teaches nothing and is counted, not trained on. Held-out pairs are whole questions: every pair of a question
sits on one side, so no held-out question was seen in training, and a question of the test split is always
held out (`evaluate` scores the aligned adapter on it).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from vietlegal import jsonl
from vietlegal.data.splitting import question_key
from vietlegal.errors import ChatError, DataError
from vietlegal.model.chat import check_messages

RERUN = "re-run `vietlegal prepare`"


@dataclass(frozen=True)
class Pair:
    id: str
    source: str  # the review's file:line
    kind: str  # side_by_side | correction
    prompt: list[dict]  # what the models were asked, system prompt included, the question last
    chosen: str
    rejected: str

    @property
    def question(self) -> str:
        return question_key(self.prompt)


@dataclass
class Pairs:
    pairs: list[Pair]
    same_answers: list[str]  # sources of pairs whose chosen and rejected answers are identical (not trained on)
    duplicates: int  # pairs read twice (the same prompt, chosen and rejected)


def _answer(row: dict, key: str, where: str) -> str:
    value = row.get(key)
    if (not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict)
            or value[0].get("role") != "assistant" or not isinstance(value[0].get("content"), str)):
        raise DataError(f"{where}: '{key}' must be one assistant message [{{\"role\": \"assistant\", \"content\": "
                        f"...}}], the answer alone (never the prompt); {RERUN}")
    return check_messages(value)[0]["content"]


def read_pairs(path: str | Path) -> Pairs:
    path = Path(path)
    pairs: dict[str, Pair] = {}
    same, read = [], 0
    for number, row in jsonl.read_objects(path, DataError, RERUN):
        where = f"{path}:{number}"
        try:
            prompt = check_messages(row.get("prompt"))
        except ChatError as exc:
            raise DataError(f"{where}: prompt {exc}; {RERUN}") from None
        if prompt[-1]["role"] != "user":
            raise DataError(f"{where}: the prompt must end with the user's question; {RERUN}")
        chosen, rejected = _answer(row, "chosen", where), _answer(row, "rejected", where)
        read += 1
        pair = Pair(str(row.get("id") or number), str(row.get("source") or where), str(row.get("kind") or "side_by_side"),
                    prompt, chosen, rejected)
        if chosen == rejected:
            same.append(pair.source)
            continue
        pairs.setdefault(pair.id, pair)
    return Pairs(sorted(pairs.values(), key=lambda p: p.id), same, read - len(same) - len(pairs))


def held_out_rank(question: str, seed: int) -> float:
    """A question's place in [0, 1): stable, so adding reviews never moves a question between the two sides."""
    return int(hashlib.sha256(f"{seed}:{question}".encode()).hexdigest()[:12], 16) / 16 ** 12


def split_by_question(pairs: list[Pair], fraction: float, seed: int, test_questions: set[str]
                      ) -> tuple[list[Pair], list[Pair]]:
    """(train, held out): a question is held out when it is in the test split or ranks below `fraction`; with
    two or more questions and none held out that way, the lowest-ranked one is, so there is something to score."""
    questions = {p.question for p in pairs}
    held = {q for q in questions if q in test_questions or held_out_rank(q, seed) < fraction}
    if fraction > 0 and not held and len(questions) > 1:
        held = {min(questions, key=lambda q: held_out_rank(q, seed))}
    return [p for p in pairs if p.question not in held], [p for p in pairs if p.question in held]
