"""Reading Q&A sources into conversations, and saying exactly what was rejected and what was left out.

Sources and their formats: `vietlegal.data.sources`; record shapes: `vietlegal.data.shapes`. Every record that
cannot be used becomes a Reject naming file:line and the reason (its raw text kept); every field a usable
record carries that its shape does not read is counted per file (`Reading.ignored_fields`), unless
prepare.keep_fields keeps it as metadata on the processed record (`meta`). Nothing is dropped silently.

Any shape may carry `split` ("train", "val" or "test"): the record's split is fixed by its source (the generated
statute Q&A, split by article; a benchmark's official test questions) and `data.splitting` keeps it there.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from vietlegal.data.conversation import Conversation
from vietlegal.data.shapes import BadRecord, to_messages
from vietlegal.data.sources import SourceError, Malformed, find_sources, read_source
from vietlegal.text import nfc

__all__ = ["BadRecord", "Reject", "Reading", "find_files", "read_records", "record_id"]
SPLITS = ("train", "val", "test")


@dataclass
class Reject:
    source: str
    reason: str
    detail: str
    raw: str = ""


@dataclass
class Reading:
    records: list[Conversation] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    ignored_fields: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # file -> field -> count


def find_files(raw_dir: Path, *bundled: Path | None) -> list[Path]:
    """The bundled files that are set (the sample, the generated statute Q&A), then every source under raw_dir."""
    return [b for b in bundled if b] + find_sources(raw_dir)


def record_id(messages: list[dict]) -> str:
    """Content hash of a normalised conversation: equal ids are exact duplicates."""
    text = "\x1e".join(f"{m['role']}\x1f{m['content']}" for m in messages)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _meta_value(value: object) -> object:
    """A kept field as JSON: text NFC, containers kept, anything else (a date from parquet) as its string."""
    if isinstance(value, str):
        return nfc(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_meta_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _meta_value(v) for k, v in value.items()}
    return str(value)


def _raw(obj: object, raw: str) -> str:
    return raw or json.dumps(obj, ensure_ascii=False, default=str)


def read_records(files: list[Path], root: Path, system_prompt: str, context_template: str = "{context}\n\n{question}",
                 keep_fields: tuple[str, ...] = ()) -> Reading:
    """Every usable record as a Conversation (id = its content hash, `meta` = its kept fields), every unusable
    one as a Reject, and per file the fields no shape read."""
    out = Reading()
    keep = set(keep_fields)
    for path in files:
        label = _label(path, root)
        ignored = out.ignored_fields[label]
        try:
            for line, obj, raw in read_source(path):
                where = f"{label}:{line}"
                if isinstance(obj, Malformed):
                    out.rejects.append(Reject(where, obj.reason, obj.msg, raw))
                    continue
                try:
                    messages, used = to_messages(obj, system_prompt, context_template)
                except BadRecord as exc:
                    out.rejects.append(Reject(where, exc.reason, exc.detail, _raw(obj, raw)))
                    continue
                split = obj.get("split")
                if split is not None and split not in SPLITS:
                    out.rejects.append(Reject(where, "bad_split", f"split {split!r} is not one of {', '.join(SPLITS)}",
                                              _raw(obj, raw)))
                    continue
                present = {k for k, v in obj.items() if v is not None}
                ignored.update(present - used - keep - {"split"})
                meta = {k: _meta_value(obj[k]) for k in keep_fields if k in present and k not in used}
                extra = ({"meta": meta} if meta else {}) | ({"split": split} if split else {})
                out.records.append(Conversation(record_id(messages), where, messages, extra))
        except SourceError as exc:
            out.rejects.append(Reject(f"{label}:{exc.line}", exc.reason, exc.detail))
        if not ignored:
            del out.ignored_fields[label]
    return out


def _label(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
