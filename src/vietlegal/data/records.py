"""Reading Q&A files of any supported shape into conversations, and saying exactly what was rejected.

Shapes: alpaca (`instruction`/`input`/`output`), chat (`messages`), `question`/`answer`,
`instruction`/`answer`; in .jsonl, .json (a list, or {"data": [...]}) and .csv. Every record that
cannot be used becomes a Reject naming file:line and the reason; nothing is dropped silently.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from vietlegal.data.conversation import Conversation
from vietlegal.errors import ChatError
from vietlegal.model.chat import check_messages, with_system

SUPPORTED = {".jsonl", ".json", ".csv"}
IGNORED_NAMES = {"README.md", ".gitignore", ".gitkeep"}


@dataclass
class Reject:
    source: str
    reason: str
    detail: str
    raw: str = ""


class BadRecord(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def find_files(raw_dir: Path, sample: Path | None) -> list[Path]:
    files = [sample] if sample else []
    if raw_dir.exists():
        files += sorted(
            p for p in raw_dir.rglob("*")
            if p.is_file() and p.name not in IGNORED_NAMES and not p.name.endswith(".dvc") and not p.name.startswith(".")
        )
    return files


def read_file(path: Path, label: str) -> Iterator[tuple[int, object, str] | Reject]:
    """Yield (line, record, raw) per record, or a Reject; label is the path shown in messages."""
    if path.suffix.lower() not in SUPPORTED:
        yield Reject(f"{label}:0", "unsupported_file", f"extension {path.suffix!r}; use .jsonl, .json or .csv")
        return
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        yield Reject(f"{label}:{line}", "not_utf8", f"byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8; re-save the file as UTF-8")
        return
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    reader = {".jsonl": _jsonl, ".json": _json, ".csv": _csv}[path.suffix.lower()]
    yield from reader(text, label)


def _jsonl(text: str, label: str):
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line), line
        except json.JSONDecodeError as exc:
            yield Reject(f"{label}:{n}", "malformed_json", exc.msg, line)


def _json(text: str, label: str):
    """A JSON array (or {"data": [...]}) with each element's own line number."""
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as exc:
        yield Reject(f"{label}:{exc.lineno}", "malformed_json", exc.msg)
        return
    if isinstance(whole, dict) and isinstance(whole.get("data"), list):
        start = text.index("[", text.index('"data"'))
    elif isinstance(whole, list):
        start = text.index("[")
    else:
        yield Reject(f"{label}:1", "unknown_shape", "a .json file must hold a list of records or {\"data\": [...]}")
        return
    decoder, i = json.JSONDecoder(), start + 1
    while True:
        while i < len(text) and text[i] in " \t\n,":
            i += 1
        if i >= len(text) or text[i] == "]":
            return
        obj, end = decoder.raw_decode(text, i)
        yield text.count("\n", 0, i) + 1, obj, text[i:end]
        i = end


def _csv(text: str, label: str):
    reader = csv.DictReader(io.StringIO(text, newline=""))
    line = 1
    for row in reader:
        start, line = line + 1, reader.line_num
        if None in row:
            yield Reject(f"{label}:{start}", "malformed_csv", "more fields than the header names")
            continue
        yield start, {k.strip(): v for k, v in row.items() if k and v is not None and v != ""}, ""


def _text(record: dict, key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRecord("bad_field_type", f"field '{key}' must be a string, got {type(value).__name__}")
    return value.strip()


def to_messages(record: object, system_prompt: str) -> list[dict]:
    """Turn one record of any supported shape into a conversation; raise BadRecord otherwise."""
    if not isinstance(record, dict):
        raise BadRecord("unknown_shape", f"expected a JSON object, got {type(record).__name__}")
    if "messages" in record:
        try:
            messages = check_messages(record["messages"])
        except ChatError as exc:
            raise BadRecord("bad_messages", str(exc)) from None
        if messages[-1]["role"] != "assistant":
            raise BadRecord("missing_answer", "the last message must be the assistant's answer")
        if not any(m["role"] == "user" for m in messages):
            raise BadRecord("missing_question", "no user message")
        if any(m["role"] == "assistant" and not m["content"] for m in messages):
            raise BadRecord("empty_answer", "an assistant message is empty")
        return with_system(messages, system_prompt)
    question_key = "question" if "question" in record else "instruction" if "instruction" in record else None
    if question_key is None:
        keys = ", ".join(sorted(record)) or "none"
        raise BadRecord("unknown_shape", f"no messages/instruction/question field (fields: {keys})")
    question = _text(record, question_key)
    extra = _text(record, "input") if question_key == "instruction" else None
    answer_key = "output" if "output" in record else "answer" if "answer" in record else None
    if answer_key is None:
        raise BadRecord("missing_answer", f"record has '{question_key}' but no 'output' or 'answer'")
    answer = _text(record, answer_key)
    user = "\n".join(part for part in (question, extra) if part)
    if not user:
        raise BadRecord("empty_question", f"'{question_key}' is empty")
    if not answer:
        raise BadRecord("empty_answer", f"'{answer_key}' is empty")
    messages = check_messages([{"role": "user", "content": user}, {"role": "assistant", "content": answer}])
    return with_system(messages, system_prompt)


def record_id(messages: list[dict]) -> str:
    """Content hash of a normalised conversation: equal ids are exact duplicates."""
    text = "\x1e".join(f"{m['role']}\x1f{m['content']}" for m in messages)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_records(files: list[Path], root: Path, system_prompt: str) -> tuple[list[Conversation], list[Reject]]:
    """Every usable record as a Conversation (id = its content hash), and every unusable one as a Reject."""
    records, rejects = [], []
    for path in files:
        label = _label(path, root)
        for item in read_file(path, label):
            if isinstance(item, Reject):
                rejects.append(item)
                continue
            line, obj, raw = item
            try:
                messages = to_messages(obj, system_prompt)
                records.append(Conversation(record_id(messages), f"{label}:{line}", messages))
            except BadRecord as exc:
                rejects.append(Reject(f"{label}:{line}", exc.reason, exc.detail, raw))
    return records, rejects


def _label(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
