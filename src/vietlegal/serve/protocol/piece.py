"""What the inference worker sends the HTTP process for one request: the text since its last piece and, on its
last, the finish reason and the token counts (or the error that ended it). Both backends send the same."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class Piece:
    text: str = ""
    finish_reason: str | None = None  # on a request's last piece: "stop" | "length" | "cancelled" | "done" (control)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None  # this request failed; the others in its batch go on
    status: int = 500  # with error: the HTTP status it is answered with (503: retry, the worker restarted)
    token_ids: list[int] = field(default_factory=list)  # the tokens this piece's text came from
    logprobs: list | None = None  # request.logprobs: one record per token of token_ids (model.sampler.logprob_record)
    prompt_logprobs: list | None = None  # request.prompt_logprobs: on the first piece

    def encode(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def decode(cls, data: str) -> Piece | None:
        return cls(**json.loads(data)) if data else None
