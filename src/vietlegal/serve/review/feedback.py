"""`POST /v1/feedback`: a reviewer's verdict, checked and appended as one JSON line to serve.feedback_dir.

The body is a review as `vietlegal.data.feedback` describes it (without id and time, which are added here).
Each line goes to `<feedback_dir>/<UTC date>.jsonl` in ONE write(2) on a descriptor opened with O_APPEND,
then fsync: concurrent writers never interleave, and a crash loses at most the line being written (a cut
last line is reported by prepare as malformed, by file:line, never half-used).
"""
from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

from vietlegal.data.feedback import BadReview, Review, parse_review
from vietlegal.serve.protocol.errors import ApiError


def review_from_body(raw: bytes) -> Review:
    """The checked review, or a 400 ApiError whose `param` names the field."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}", None, "invalid_json") from None
    try:
        return parse_review(body)
    except BadReview as exc:
        raise ApiError(400, str(exc), exc.field, "invalid_value") from None


def stamped(review: Review, now: datetime | None = None) -> Review:
    now = now or datetime.now(timezone.utc)
    return Review(**{**vars(review), "id": "fb-" + uuid.uuid4().hex,
                     "time": now.isoformat(timespec="milliseconds").replace("+00:00", "Z")})


def append(directory: str | Path, review: Review) -> Path:
    """Append the stamped review as one line; returns the file written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    day = (review.time or "")[:10] or datetime.now(timezone.utc).date().isoformat()
    path = directory / f"{day}.jsonl"
    line = (json.dumps(review.row(), ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
        if written != len(line):  # a full disk: say so rather than leave a cut line unnoticed
            raise OSError(f"{path}: wrote {written} of {len(line)} bytes")
        os.fsync(fd)
    finally:
        os.close(fd)
    return path
