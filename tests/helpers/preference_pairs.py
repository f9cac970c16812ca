"""Generated reviews whose preferred answer cites the right article and whose other answer a wrong one.

Eight legal questions (tests/conftest.py's QA), each asked in several wordings: every wording is its own question
(a held-out split by question keeps a wording out of training), while the article that answers it is the same,
so what alignment learns on some wordings shows on the others. The wrong article is another number of as many digits,
different per wording (so neither answer is longer). The reviews go through the server's writer and prepare's reader
(vietlegal.data.feedback), so the pairs are exactly what stage align reads.
"""
from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import QA, SYSTEM
from vietlegal import jsonl
from vietlegal.data.feedback import parse_review, read_feedback
from vietlegal.serve.review.feedback import append, stamped

WORDINGS = ("{q}", "Cho tôi hỏi: {q}", "Xin luật sư tư vấn giúp: {q}", "{q} Xin cảm ơn.", "Hỏi nhanh: {q}",
            "Luật sư ơi, {q}", "Tôi cần biết: {q}", "Nhờ anh chị giải đáp: {q}")
ARTICLE = re.compile(r"Điều (\d+)")


def wrong_article(answer: str, shift: int) -> str:
    """The first article number with its last digit moved by `shift` (1-8): as many digits, another article."""
    def moved(match: re.Match) -> str:
        number = match.group(1)
        last = int(number[-1])
        last = (last - 1 + shift) % 9 + 1 if len(number) == 1 else (last + shift) % 10
        return f"Điều {number[:-1]}{last}"

    return ARTICLE.sub(moved, answer, count=1)


def review_bodies(wordings: tuple[str, ...] = WORDINGS) -> list[dict]:
    bodies = []
    for k, (question, answer) in enumerate(QA):
        for w, wording in enumerate(wordings):
            asked = wording.format(q=question)
            wrong = wrong_article(answer, 1 + (k + 3 * w) % 8)
            right_first = (k + w) % 2 == 0  # the better answer on either side
            answers = [{"model": f"vietlegal-{'a' * 12}", "system_fingerprint": None, "answer": answer,
                        "retrieved_provisions": None, "verdict": "correct", "correction": None},
                       {"model": f"vietlegal-{'b' * 12}", "system_fingerprint": None, "answer": wrong,
                        "retrieved_provisions": None, "verdict": "wrong_citation", "correction": None}]
            bodies.append({"question": asked, "answers": answers if right_first else answers[::-1],
                           "preferred": 0 if right_first else 1, "reviewer": "LS. Test"})
    return bodies


def write_reviews(directory: Path, bodies: list[dict]) -> None:
    """As `vietlegal serve` appends them to serve.feedback_dir."""
    for body in bodies:
        append(directory, stamped(parse_review(body)))


def write_preferences(path: Path, bodies: list[dict] | None = None) -> list[dict]:
    """data/processed/preferences.jsonl as prepare writes it from these reviews."""
    feedback = path.parent / "feedback-reviews"
    write_reviews(feedback, review_bodies() if bodies is None else bodies)
    pairs = read_feedback(feedback, path.parent, SYSTEM).preferences
    jsonl.write(path, pairs)
    return pairs
