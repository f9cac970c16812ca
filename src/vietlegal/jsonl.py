"""JSON Lines in (the one line reader: strict, or collecting bad lines) and out; JSON out; writes never half done.

    for number, row in jsonl.read_objects(path, DataError):              # strict: the first bad line raises
        ...                                                              #   DataError("path:12: not valid JSON ...")
    bad: list[jsonl.BadLine] = []
    for number, row in jsonl.read_objects(path, DataError, rejects=bad):  # collecting: bad lines are kept, reading
        ...                                                              #   goes on (a corpus, feedback, a cache)
    for number, value, raw in jsonl.parse(lines):                       # any JSON value, a BadLine in its place
        ...                                                              #   (raw Q&A sources: the shape decides)

Lines are split on "\\n" only (a JSON string may hold a raw U+2028, which str.splitlines breaks on); a UTF-8 BOM
and CRLF line ends are accepted; blank lines are skipped; numbers are 1-based, as editors show them.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson


@dataclass(frozen=True)
class BadLine:
    """A line that is no usable record: its number, why (not_utf8, malformed_json, not_an_object) and its text."""

    line: int
    reason: str
    detail: str
    raw: str = ""

    def where(self, path: str | Path) -> str:
        return f"{path}:{self.line}: {self.detail}"


def parse(lines: Iterable[str | bytes], objects_only: bool = False) -> Iterator[tuple[int, object, str]]:
    """(line number, JSON value or BadLine, the line's text) for every non-blank line."""
    for number, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, BadLine(number, "not_utf8", f"byte 0x{line[exc.start]:02x} at column {exc.start + 1} is "
                                                          "not UTF-8; save the file as UTF-8"), ""
                continue
        if number == 1:
            line = line.removeprefix("\ufeff")
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield number, BadLine(number, "malformed_json", f"not valid JSON ({exc.msg}); each line must be one JSON "
                                                            "object", line), line
            continue
        if objects_only and not isinstance(value, dict):
            yield number, BadLine(number, "not_an_object", f"expected a JSON object, got {type(value).__name__}", line), line
            continue
        yield number, value, line


def lines_of(path: Path) -> Iterator[bytes]:
    """The file's lines as bytes, split on b"\\n" only."""
    with open(path, "rb") as f:
        yield from f  # a binary file splits on b"\n" alone


def read_objects(path: str | Path, error: type[Exception], missing: str | None = None,
                 rejects: list[BadLine] | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line. Strict (rejects None): a bad line raises `error` naming
    file:line. Collecting: each bad line is appended to `rejects` and reading goes on. `missing` says what to
    run when the file does not exist."""
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: not found; {missing or 'run the stage that writes it (`dvc repro`)'}")
    for number, value, _ in parse(lines_of(path), objects_only=True):
        if isinstance(value, BadLine):
            if rejects is None:
                raise error(value.where(path))
            rejects.append(value)
            continue
        yield number, value


def write(path: str | Path, rows: Iterable[dict]) -> None:
    """Write atomically, so an interrupted stage never leaves a half file for DVC to cache."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def write_json(path: str | Path, data: dict | list) -> None:
    """One JSON document (a metrics file, a manifest), indented and atomically written like `write`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
