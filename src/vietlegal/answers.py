"""The evaluation contract: test cases read from the test split, and the answers file `generate` writes.

    data/processed/test.jsonl      {"id", "source", "messages": [system, user, assistant]}  (prepare)
    data/generated/answers.jsonl   {"id", "source", "question", "reference", "base", "tuned",
                                    "base_finish_reason", "tuned_finish_reason",
                                    "base_completion_tokens", "tuned_completion_tokens"}     (generate)

The last assistant turn of a test conversation is the reference; everything before it is the prompt.
`evaluate`, `perplexity` and `judge` read these through here, so a malformed line stops with file:line.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from vietlegal.chat import ChatError, check_messages

SYSTEMS = ("base", "tuned")
ANSWER_FIELDS = ("id", "question", "reference", *SYSTEMS)


class DataError(ValueError):
    pass


@dataclass
class TestCase:
    __test__ = False  # not a pytest class

    id: str
    source: str
    messages: list[dict]  # the whole conversation, reference answer last

    @property
    def prompt(self) -> list[dict]:
        return self.messages[:-1]

    @property
    def question(self) -> str:
        return next(m["content"] for m in reversed(self.prompt) if m["role"] == "user")

    @property
    def reference(self) -> str:
        return self.messages[-1]["content"]


def _jsonl(path: Path):
    if not path.exists():
        raise DataError(f"{path}: not found; run the stage that writes it (`dvc repro`)")
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: expected a JSON object")
            yield number, row


def read_test_split(path: str | Path, limit: int | None = None) -> list[TestCase]:
    path = Path(path)
    cases = []
    for number, row in _jsonl(path):
        where = f"{path}:{number}"
        try:
            messages = check_messages(row.get("messages"))
        except ChatError as exc:
            raise DataError(f"{where}: {exc}") from exc
        if messages[-1]["role"] != "assistant" or not any(m["role"] == "user" for m in messages):
            raise DataError(f"{where}: a test conversation needs a user turn and must end with the assistant's reference answer")
        cases.append(TestCase(str(row.get("id", number)), str(row.get("source", where)), messages))
        if limit is not None and len(cases) >= limit:
            break
    if not cases:
        raise DataError(f"{path}: the test split is empty; lower prepare.test_fraction's rounding or add data")
    return cases


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Write atomically, so an interrupted stage never leaves a half file for DVC to cache."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def read_answers(path: str | Path) -> list[dict]:
    path = Path(path)
    rows = []
    for number, row in _jsonl(path):
        missing = [k for k in ANSWER_FIELDS if k not in row]
        if missing:
            raise DataError(f"{path}:{number}: missing field(s) {', '.join(missing)}; regenerate with `dvc repro generate`")
        bad = [k for k in ANSWER_FIELDS[1:] if not isinstance(row[k], str)]
        if bad:
            raise DataError(f"{path}:{number}: field(s) {', '.join(bad)} must be strings")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no answers")
    return rows
