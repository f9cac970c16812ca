"""THE one way retrieved provisions enter a prompt: appended to the system message, before the question.

Training with context, evaluation with retrieval and `serve --rag` all call `ground` (or
`with_context`), so the model sees the same layout at training and at inference. The template:

    <system prompt>

    Căn cứ pháp lý tham khảo (các điều luật đang có hiệu lực liên quan đến câu hỏi; chỉ dẫn chiếu điều luật thực sự áp dụng):
    [1] khoản 1 Điều 139 Bộ luật Lao động 2019 - Nghỉ thai sản
    Lao động nữ được nghỉ thai sản trước và sau khi sinh con là 06 tháng; ...

    [2] Điều 141 Bộ luật Lao động 2019 - Trợ cấp trong thời gian chăm sóc con ốm đau, thai sản
    ...

Each provision is headed by its citation in the form the reference answers use ("Điều N <văn bản>
<năm>"), so citing it is a copy, and its text is cut to rag.max_provision_chars. With no hit the
messages are left exactly as they were (a closed-book prompt) and `no_hit` is set, so the caller
can flag the answer as ungrounded.
"""
from __future__ import annotations

from dataclasses import dataclass

from vietlegal.data.conversation import check_messages, with_system
from vietlegal.rag.retriever import Hit, Retriever

HEADER = (
    "Căn cứ pháp lý tham khảo (các điều luật đang có hiệu lực liên quan đến câu hỏi; "
    "chỉ dẫn chiếu điều luật thực sự áp dụng):"
)


@dataclass
class Grounded:
    messages: list[dict]  # the conversation with the context in its system message
    provision_ids: list[str]  # what was put there, in order
    no_hit: bool  # nothing was retrieved: the messages are unchanged


def clip(text: str, max_chars: int) -> str:
    """Cut at a word boundary so no syllable is split."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:") + " …"


def context_block(hits: list[Hit], max_chars: int) -> str:
    entries = []
    for i, hit in enumerate(hits, start=1):
        p = hit.provision
        heading = f"[{i}] {p.citation}" + (f" - {p.title}" if p.title else "")
        entries.append(f"{heading}\n{clip(p.text, max_chars)}")
    return HEADER + "\n" + "\n\n".join(entries)


def with_context(messages: list[dict], hits: list[Hit], system_prompt: str | None = None,
                 max_chars: int = 800) -> Grounded:
    """`messages` (with `system_prompt` if they have no system message) plus the hits' context block."""
    messages = with_system(check_messages(messages), system_prompt)
    if not hits:
        return Grounded(messages, [], True)
    block = context_block(hits, max_chars)
    if messages[0]["role"] == "system":
        system = {"role": "system", "content": messages[0]["content"] + "\n\n" + block}
        messages = [system] + messages[1:]
    else:
        messages = [{"role": "system", "content": block}] + messages
    return Grounded(messages, [h.provision.id for h in hits], False)


def last_question(messages: list[dict]) -> str:
    """What is retrieved for: the last user turn (earlier turns were answered already)."""
    for m in reversed(messages):
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            return m["content"]
    return ""


def ground(retriever: Retriever, messages: list[dict], system_prompt: str | None = None) -> Grounded:
    """Retrieve for the last user message and put the top-k provisions into the system message."""
    question = last_question(messages)
    hits = retriever.search(question) if question.strip() else []
    return with_context(messages, hits, system_prompt, retriever.cfg.max_provision_chars)
