"""Response bodies and stream chunks, shaped as OpenAI's spec defines them (validated against it in
tests/serve/test_openai_contract.py): chat.completion, chat.completion.chunk, text_completion, their logprobs."""
from __future__ import annotations

import json
import time
import uuid

from vietlegal.serve.protocol.piece import Piece


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class Tokens:
    """Token ids -> the strings and bytes logprobs show (each token decoded alone, special tokens included)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def text(self, token: int) -> str:
        return self.tokenizer.decode([token], skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def chat_entry(self, token: int, record) -> dict:
        value, top = record
        text = self.text(token)
        return {"token": text, "logprob": value, "bytes": list(text.encode("utf-8")),
                "top_logprobs": [{"token": (t := self.text(i)), "logprob": v, "bytes": list(t.encode("utf-8"))}
                                 for i, v in top]}

    def chat_logprobs(self, tokens: list[int], records: list | None) -> dict | None:
        if records is None:
            return None
        return {"content": [self.chat_entry(t, r) for t, r in zip(tokens, records)], "refusal": None}

    def completion_logprobs(self, tokens: list[int], records: list, offset: int = 0) -> dict:
        """The legacy shape: tokens, token_logprobs, top_logprobs ({text: logprob}), text_offset; a record of
        None (the first prompt token) gives null entries, as vLLM does."""
        out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        for token, record in zip(tokens, records):
            text = self.text(token)
            out["tokens"].append(text)
            out["text_offset"].append(offset)
            offset += len(text)
            if record is None:
                out["token_logprobs"].append(None)
                out["top_logprobs"].append(None)
                continue
            value, top = record
            out["token_logprobs"].append(value)
            shown = {self.text(i): v for i, v in top}
            shown.setdefault(text, value)  # the sampled token is always listed (vLLM, OpenAI)
            out["top_logprobs"].append(shown)
        return out


class Choice:
    """One choice being collected from its pieces."""

    def __init__(self, index: int):
        self.index, self.parts, self.tokens, self.records = index, [], [], []
        self.prompt_records: list | None = None
        self.last = Piece()
        self.echoed = False  # a stream: the prompt was sent
        self.call_id = "call_" + uuid.uuid4().hex[:24]  # its tool call's id, when a named tool is called
        self.called = False  # a stream: the tool call's head (id, name) was sent

    def add(self, piece: Piece) -> None:
        self.parts.append(piece.text)
        self.tokens += piece.token_ids
        if piece.logprobs:
            self.records += piece.logprobs
        if piece.prompt_logprobs is not None:
            self.prompt_records = piece.prompt_logprobs
        self.last = piece

    @property
    def text(self) -> str:
        return "".join(self.parts)


def chat_message(text: str, tool: str | None = None, call_id: str | None = None) -> dict:
    """`refusal` is required by the spec (null: this model never refuses in a separate field). With a named tool
    the text is that call's arguments, and the content is null (as OpenAI answers a forced call)."""
    if tool is None:
        return {"role": "assistant", "content": text, "refusal": None}
    return {"role": "assistant", "content": None, "refusal": None, "tool_calls": [tool_call(call_id, tool, text)]}


def tool_call(call_id: str, name: str, arguments: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_call_delta(call_id: str | None, name: str | None, arguments: str) -> dict:
    """A stream's piece of a call: the first carries its id, type and name, the rest only arguments."""
    call = {"index": 0, "function": {"arguments": arguments}}
    if call_id is not None:
        call = {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    return {"tool_calls": [call]}


def head(job_id: str, kind: str, version) -> dict:
    return {"id": job_id, "object": kind, "created": int(time.time()), "model": version.model_id,
            "system_fingerprint": version.fingerprint}


def event(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"
