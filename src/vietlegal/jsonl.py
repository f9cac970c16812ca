"""JSON Lines in and out (one object per line, errors naming file:line) and JSON out; writes are never half done."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator


def read_objects(path: Path, error: type[Exception], missing: str | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line; `error` names file:line for anything else.
    `missing` says what to run when the file does not exist."""
    if not path.exists():
        raise error(f"{path}: not found; {missing or 'run the stage that writes it (`dvc repro`)'}")
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{number}: not valid JSON ({exc.msg}); each line must be one JSON object") from exc
            if not isinstance(row, dict):
                raise error(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            yield number, row


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
