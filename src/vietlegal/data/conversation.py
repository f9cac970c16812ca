"""The one conversation type: a chat-format record from raw data, a processed split or an answers prompt.

    Conversation(id, source, messages, extra)
      id        content hash of the normalised messages (prepare), kept through every later stage
      source    the raw record's file:line: what a user fixes when a record is wrong
      messages  [system?, user, assistant, ...], NFC, the reference answer last
      extra     any other fields of the row (stage ground adds retrieved_provisions, no_hit)

and the checks every conversation passes wherever it comes from (raw data, a processed split, a request, a
review): `check_messages` (roles, strings, a system message only first; NFC) and `with_system`.
"""
from __future__ import annotations

import reprlib
from dataclasses import dataclass, field
from functools import lru_cache

from vietlegal.errors import ChatError
from vietlegal.text import nfc

ROLES = ("system", "user", "assistant")


def check_messages(messages: object) -> list[dict]:
    """Validate a conversation and return it NFC-normalised; raise ChatError naming the field."""
    if not isinstance(messages, list) or not messages:
        raise ChatError("messages: must be a non-empty list")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ChatError(f"messages[{i}]: must be an object with 'role' and 'content'")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise ChatError(f"messages[{i}].role: {reprlib.repr(role)} is not one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ChatError(f"messages[{i}].content: must be a string")
        if role == "system" and i != 0:
            raise ChatError(f"messages[{i}]: a system message may only come first")
        out.append({"role": role, "content": nfc(content)})
    return out


@lru_cache(maxsize=64)
def _system(prompt: str) -> dict:
    """One system message object per distinct prompt: 1M records share it instead of holding 1M copies."""
    return {"role": "system", "content": nfc(prompt)}


def with_system(messages: list[dict], system_prompt: str | None) -> list[dict]:
    """`messages` with `system_prompt` first, unless they already open with a system message (or none is given)."""
    if system_prompt and messages[0]["role"] != "system":
        return [_system(system_prompt)] + messages
    return messages


@dataclass(frozen=True)
class Conversation:
    id: str
    source: str
    messages: list[dict]
    extra: dict = field(default_factory=dict)

    @property
    def prompt(self) -> list[dict]:
        """Everything before the reference answer: what a model is asked."""
        return self.messages[:-1]

    @property
    def question(self) -> str:
        return next(m["content"] for m in reversed(self.prompt) if m["role"] == "user")

    @property
    def reference(self) -> str:
        return self.messages[-1]["content"]

    def row(self) -> dict:
        """The JSONL row of a processed split: id, source, messages, then the extra fields."""
        return {"id": self.id, "source": self.source, "messages": self.messages, **self.extra}
