"""The evaluation contract: the answers file `generate` (and `generate_rag`) write, and the perplexity file.

    data/generated/answers.jsonl   {"id", "source", "question", "reference", "base", "tuned",
                                    "base_finish_reason", "tuned_finish_reason",
                                    "base_completion_tokens", "tuned_completion_tokens"}     (generate)
                                   + "aligned", "aligned_finish_reason", "aligned_completion_tokens" when stage
                                   align trained models/aligned
    data/generated/answers_meta.json {"backend": "hf" | "vllm", "questions", "tensor_parallel_size"}  (generate)
    data/generated/perplexity.json {"base": {...}, "tuned": {...}, "per_example": {id: ...}}  (perplexity)

The answers file has the same rows and fields whichever backend wrote it; the backend is in its meta file.

`evaluate`, `evaluate_rag` and `judge` read these through here, so a malformed line stops with file:line.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vietlegal import jsonl
from vietlegal.data.conversation import Conversation
from vietlegal.errors import DataError

SYSTEMS = ("base", "tuned")
ALIGNED = "aligned"  # a third system when stage align trained models/aligned (generate answers with it too)
ANSWER_FIELDS = ("id", "question", "reference", *SYSTEMS)


def systems_of(rows: list[dict]) -> tuple[str, ...]:
    """The systems an answers file holds: base and tuned, and aligned when every row has its answer."""
    return SYSTEMS + ((ALIGNED,) if rows and all(isinstance(r.get(ALIGNED), str) for r in rows) else ())


def answer_rows(cases: Sequence[Conversation], completions: dict[str, list]) -> list[dict]:
    """One row per case: the question, its reference, then per system its text, finish reason and token count
    (`completions[system][k]` has .text, .finish_reason, .completion_tokens)."""
    rows = []
    for k, case in enumerate(cases):
        row = {"id": case.id, "source": case.source, "question": case.question, "reference": case.reference}
        for system, done in completions.items():
            row[system] = done[k].text
        for system, done in completions.items():
            row[f"{system}_finish_reason"] = done[k].finish_reason
            row[f"{system}_completion_tokens"] = done[k].completion_tokens
        rows.append(row)
    return rows


def answers_meta(backend: str | None, questions: int, tensor_parallel_size: int) -> dict:
    """The meta file beside an answers file: what wrote it (backend None: the stage was off)."""
    return {"backend": backend, "questions": questions,
            "tensor_parallel_size": tensor_parallel_size if backend == "vllm" else None}


def write_answers(rows: list[dict], out_path: str | Path, meta_path: str | Path | None, backend: str | None,
                  tensor_parallel_size: int) -> None:
    """The answers file and, beside it, its meta file."""
    jsonl.write(out_path, rows)
    if meta_path is not None:
        jsonl.write_json(meta_path, answers_meta(backend, len(rows), tensor_parallel_size))


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


def read_perplexity(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; run `dvc repro perplexity` (or `vietlegal perplexity`)")
    return json.loads(path.read_text(encoding="utf-8"))
