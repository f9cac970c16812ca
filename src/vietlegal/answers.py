"""The evaluation contract: test cases read from the test split, and the answers file `generate` writes.

    data/processed/test.jsonl      {"id", "source", "messages": [system, user, assistant]}  (prepare)
    data/generated/answers.jsonl   {"id", "source", "question", "reference", "base", "tuned",
                                    "base_finish_reason", "tuned_finish_reason",
                                    "base_completion_tokens", "tuned_completion_tokens"}     (generate)

The last assistant turn of a test conversation is the reference; everything before it is the prompt.
`evaluate`, `perplexity` and `judge` read these through here, so a malformed line stops with file:line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vietlegal import jsonl
from vietlegal.chat import ChatError, check_messages
from vietlegal.errors import DataError

SYSTEMS = ("base", "tuned")
ANSWER_FIELDS = ("id", "question", "reference", *SYSTEMS)


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


def read_test_split(path: str | Path, limit: int | None = None) -> list[TestCase]:
    path = Path(path)
    cases = []
    for number, row in jsonl.read_objects(path, DataError):
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


write_jsonl = jsonl.write  # the stages import it from here with the rest of the contract


def read_answers(path: str | Path) -> list[dict]:
    path = Path(path)
    rows = []
    for number, row in jsonl.read_objects(path, DataError):
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
