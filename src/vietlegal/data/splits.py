"""The one reader of a processed split (data/processed/*.jsonl, data/training/*.jsonl).

    {"id", "source": "file:line", "messages": [system, user, assistant], ...}   (prepare; ground adds fields)

Every row is checked (messages valid and NFC, a user turn, the assistant's answer last); a bad one stops
with file:line and what to do.
"""
from __future__ import annotations

from pathlib import Path

from vietlegal import jsonl
from vietlegal.data.conversation import Conversation, check_messages
from vietlegal.errors import ChatError, DataError

RERUN = "re-run `vietlegal prepare`"


def read_split(path: str | Path, limit: int | None = None, missing: str | None = None) -> list[Conversation]:
    """The first `limit` conversations (all with None); `missing` says what to run when the file is absent."""
    path = Path(path)
    out: list[Conversation] = []
    for number, row in jsonl.read_objects(path, DataError, missing):
        where = f"{path}:{number}"
        try:
            messages = check_messages(row.get("messages"))
        except ChatError as exc:
            raise DataError(f"{where}: {exc}; {RERUN}") from None
        if messages[-1]["role"] != "assistant":
            raise DataError(f"{where}: the last message must be the assistant's answer; {RERUN}")
        if not any(m["role"] == "user" for m in messages):
            raise DataError(f"{where}: a conversation needs a user turn; {RERUN}")
        extra = {k: v for k, v in row.items() if k not in ("id", "source", "messages")}
        out.append(Conversation(str(row.get("id", number)), str(row.get("source") or where), messages, extra))
        if limit is not None and len(out) >= limit:
            break
    return out


def read_test_split(path: str | Path, limit: int | None = None) -> list[Conversation]:
    """The test split, which must not be empty: evaluation needs at least one question."""
    cases = read_split(path, limit)
    if not cases:
        raise DataError(f"{path}: the test split is empty; lower prepare.test_fraction's rounding or add data")
    return cases


def check_against_split(answers: list[dict], test_path: str | Path) -> None:
    """Answers generated from another version of the test split would be scored against stale references."""
    references = {c.id: c.reference for c in read_test_split(test_path)}
    for k, row in enumerate(answers, start=1):
        if row["id"] not in references:
            raise DataError(f"answers line {k}: id {row['id']!r} is not in {test_path}; rerun `dvc repro generate`")
        if row["reference"] != references[row["id"]]:
            raise DataError(f"answers line {k}: reference of {row['id']!r} differs from {test_path}; rerun `dvc repro generate`")
