"""What the inference worker sends the HTTP process for one request at one flush.

LitServe's batched streaming loop moves the whole batch in lockstep: every flush carries one
item per request, so a request with nothing new (or already finished) gets "" (no piece).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass
class Piece:
    text: str = ""
    finish_reason: str | None = None  # set on a request's last piece: "stop" | "length" | "cancelled"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None  # this request failed; the others in its batch go on

    def encode(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def decode(cls, data: str) -> Piece | None:
        return cls(**json.loads(data)) if data else None


NOTHING = ""  # the encoded form of "no piece for this request at this flush"
