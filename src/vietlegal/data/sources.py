"""Raw Q&A sources: which files under data/raw are read, and each one streamed as (line, record, raw).

    .jsonl, .jsonl.gz   one JSON object per line                     (streamed line by line)
    .json               a list of records, or {"data": [...]}         (read whole: prefer JSONL for big files)
    .csv                a header row; quoted cells may span lines     (streamed row by row)
    .parquet            what `datasets` exports and the hub serves    (streamed in record batches)
    a directory written by `datasets.Dataset.save_to_disk` (arrow files + dataset_info.json + state.json), or by
    `DatasetDict.save_to_disk` (dataset_dict.json + one such directory per split, each one source): ONE source,
    its arrow files streamed in order                                                                 (memory-mapped batches)

The number after `file:` is the line where the record starts (JSON, CSV), or its 1-based row (parquet,
arrow). A file that cannot be read at all (not UTF-8, not gzip, not parquet, an unknown extension) becomes one
SourceError naming it; the caller reports it, nothing is skipped without a word.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import os
import zlib
from pathlib import Path
from typing import Callable, Iterable, Iterator

from vietlegal import jsonl

EXTENSIONS = (".jsonl.gz", ".jsonl", ".json", ".csv", ".parquet")
IGNORED_NAMES = {"README.md", ".gitignore", ".gitkeep"}
# data/raw/feedback/ holds reviewers' verdicts (docs/review.md), not Q&A pairs: prepare reads it with
# vietlegal.data.feedback (its DIRECTORY), so discovery here never lists it as a Q&A source.
FEEDBACK_DIR = "feedback"
BATCH_ROWS = 4096  # parquet / arrow record batch: bounded memory whatever the file's size
CSV_FIELD_LIMIT = 64 * 1024 * 1024  # a whole law article in one cell exceeds csv's default of 128 KiB


class SourceError(Exception):
    """A source that cannot be read: (line, reason, detail)."""

    def __init__(self, line: int, reason: str, detail: str):
        super().__init__(detail)
        self.line, self.reason, self.detail = line, reason, detail


def extension(path: Path) -> str:
    name = path.name.lower()
    return next((ext for ext in EXTENSIONS if name.endswith(ext)), path.suffix.lower())


def saved_dataset_kind(path: Path) -> str | None:
    """'dataset' or 'dataset_dict' for a `save_to_disk` directory, else None."""
    if not path.is_dir():
        return None
    if (path / "dataset_dict.json").is_file():
        return "dataset_dict"
    if (path / "state.json").is_file() and (path / "dataset_info.json").is_file():
        return "dataset"
    return None


def find_sources(raw_dir: Path) -> list[Path]:
    """Every file and `save_to_disk` directory under raw_dir, sorted; hidden entries, README/.gitignore, DVC
    pointer files and data/raw/feedback/ are not sources."""
    found: list[Path] = []
    if not raw_dir.exists():
        return found
    for dirpath, dirnames, filenames in os.walk(raw_dir):
        here = Path(dirpath)
        if here == raw_dir and FEEDBACK_DIR in dirnames:
            dirnames.remove(FEEDBACK_DIR)  # the review page's verdicts: see FEEDBACK_DIR
        datasets = [d for d in dirnames if saved_dataset_kind(here / d)]
        for d in datasets:  # a DatasetDict: each split is one source (raw/qa/train, raw/qa/test)
            found += _splits(here / d) if saved_dataset_kind(here / d) == "dataset_dict" else [here / d]
        dirnames[:] = sorted(d for d in dirnames if d not in datasets and not d.startswith("."))
        found += [here / f for f in filenames
                  if f not in IGNORED_NAMES and not f.endswith(".dvc") and not f.startswith(".")]
    return sorted(found)


def _splits(path: Path) -> list[Path]:
    splits = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", [])
    return [path / s for s in splits]


def read_source(path: Path) -> Iterator[tuple[int, object, str]]:
    """(line or row, record, raw text) for every record of one source; raises SourceError if it cannot be read."""
    if saved_dataset_kind(path) == "dataset":
        yield from _saved_dataset(path)
        return
    ext = extension(path)
    if ext not in EXTENSIONS:
        raise SourceError(0, "unsupported_file", f"extension {ext!r}; use .jsonl, .jsonl.gz, .json, .csv, .parquet "
                                                 "or a datasets.save_to_disk directory")
    if ext == ".parquet":
        yield from _parquet(path)
        return
    opener: Callable[[], io.BufferedIOBase] = (lambda: gzip.open(path, "rb")) if ext == ".jsonl.gz" else (lambda: open(path, "rb"))
    _check_utf8(opener)
    if ext == ".json":
        with opener() as f:
            yield from _json(f.read().decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n"))
        return
    with opener() as binary:
        yield from (_csv(io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")) if ext == ".csv" else _jsonl(binary))


def _check_utf8(opener: Callable[[], io.BufferedIOBase]) -> None:
    """The whole file must be UTF-8 (a file saved as cp1258 is re-saved, not half read): one streaming pass."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines, offset = 1, 0
    try:
        with opener() as f:
            while chunk := f.read(1 << 20):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    pending = len(exc.object) - len(chunk)
                    line = lines + exc.object.count(b"\n", 0, exc.start)
                    raise SourceError(line, "not_utf8", f"byte 0x{exc.object[exc.start]:02x} at offset "
                                      f"{offset - pending + exc.start} is not UTF-8; re-save the file as UTF-8") from None
                lines += chunk.count(b"\n")
                offset += len(chunk)
            decoder.decode(b"", final=True)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise SourceError(0, "unreadable_file", f"not a complete gzip file ({exc})") from None
    except UnicodeDecodeError:
        raise SourceError(lines, "not_utf8", "the file ends inside a UTF-8 character; re-save the file as UTF-8") from None


def _jsonl(lines: Iterable[bytes]) -> Iterator[tuple[int, object, str]]:
    """The project's one JSON Lines reader (`vietlegal.jsonl.parse`); a bad line becomes a Malformed record."""
    for n, value, raw in jsonl.parse(lines):
        yield n, Malformed(value.reason, value.detail) if isinstance(value, jsonl.BadLine) else value, raw


class Malformed:
    """A line or row that is no record (not JSON, too many CSV cells): the record reader rejects it."""

    def __init__(self, reason: str, msg: str):
        self.reason, self.msg = reason, msg


def _json(text: str) -> Iterator[tuple[int, object, str]]:
    """A JSON array (or {"data": [...]}) with each element's own line number."""
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(exc.lineno, "malformed_json", exc.msg) from None
    if isinstance(whole, dict) and isinstance(whole.get("data"), list):
        start = text.index("[", text.index('"data"'))
    elif isinstance(whole, list):
        start = text.index("[")
    else:
        raise SourceError(1, "unknown_shape", "a .json file must hold a list of records or {\"data\": [...]}")
    decoder, i = json.JSONDecoder(), start + 1
    line = text.count("\n", 0, i) + 1
    while True:
        while i < len(text) and text[i] in " \t\n,":
            line += text[i] == "\n"
            i += 1
        if i >= len(text) or text[i] == "]":
            return
        obj, end = decoder.raw_decode(text, i)
        yield line, obj, text[i:end]
        line += text.count("\n", i, end)
        i = end


def _csv(text: io.TextIOBase) -> Iterator[tuple[int, object, str]]:
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.DictReader(text)
    line = 1
    try:
        for row in reader:
            start, line = line + 1, reader.line_num
            if None in row:
                yield start, Malformed("malformed_csv", "more fields than the header names"), ""
                continue
            # Cells keep their own line breaks: CRLF inside a quoted cell is read as one "\n".
            yield start, {k.strip(): v.replace("\r\n", "\n").replace("\r", "\n")
                          for k, v in row.items() if k and v is not None and v != ""}, ""
    except csv.Error as exc:
        raise SourceError(line + 1, "malformed_csv", str(exc)) from None


def _rows(batches) -> Iterator[tuple[int, object, str]]:
    n = 0
    for batch in batches:
        for row in batch.to_pylist():
            n += 1
            # A null cell is an absent field, as an empty CSV cell is.
            yield n, {k: v for k, v in row.items() if v is not None}, ""


def _parquet(path: Path) -> Iterator[tuple[int, object, str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(0, "unreadable_file", f"not a parquet file ({exc})") from None
    yield from _rows(pf.iter_batches(batch_size=BATCH_ROWS))


def _saved_dataset(path: Path) -> Iterator[tuple[int, object, str]]:
    """A `Dataset.save_to_disk` directory's rows, its arrow files in the order state.json lists them."""
    import pyarrow as pa

    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    files = [path / f["filename"] for f in state.get("_data_files", [])]
    missing = [f.name for f in files if not f.is_file()]
    if missing or not files:
        raise SourceError(0, "unreadable_file", f"state.json names arrow files that are missing: {missing or 'none listed'}")

    def batches():
        for file in files:
            try:
                with pa.memory_map(str(file)) as source:
                    yield from pa.ipc.open_stream(source)
            except pa.ArrowInvalid as exc:
                raise SourceError(0, "unreadable_file", f"{file.name} is not an arrow stream ({exc})") from None

    yield from _rows(batches())
