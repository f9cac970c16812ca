"""The one conversation type: a chat-format record from raw data, a processed split or an answers prompt.

    Conversation(id, source, messages, extra)
      id        content hash of the normalised messages (prepare), kept through every later stage
      source    the raw record's file:line: what a user fixes when a record is wrong
      messages  [system?, user, assistant, ...], NFC, the reference answer last
      extra     any other fields of the row (stage ground adds retrieved_provisions, no_hit)
"""
from __future__ import annotations

from dataclasses import dataclass, field


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
