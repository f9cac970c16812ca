"""Record shapes: one raw record of any supported shape -> a conversation, and the fields the shape used.

    chat                 messages: [{"role": "system"|"user"|"assistant", "content"}]            multi-turn
    ShareGPT             conversations: [{"from": "system"|"human"|"user"|"gpt"|"assistant", "value"}]  multi-turn
                         (LLaMA-Factory's and axolotl's format; {"role", "content"} items are read too)
    prompt-completion    prompt, completion (TRL): strings, or lists of chat messages
    reading comprehension context, question (or instruction), answer | output: the context goes into the user
                         turn ahead of the question, through prepare.context_template
    alpaca               instruction, input (optional), output
    FAQ                  question, answer | output;  instruction, answer

Any shape may carry `system` (a string): the record's own system prompt, used instead of prepare.system_prompt.
A record that fits none, or fits one badly, raises BadRecord(reason, detail) naming the field.
"""
from __future__ import annotations

from vietlegal.data.conversation import check_messages, with_system
from vietlegal.errors import ChatError
from vietlegal.text import nfc

SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
ANSWER_KEYS = ("output", "answer")


class BadRecord(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _text(record: dict, key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRecord("bad_field_type", f"field '{key}' must be a string, got {type(value).__name__}")
    return value.strip()


def _context(record: dict) -> str | None:
    """A string, or a list of passages (joined by a blank line)."""
    value = record.get("context")
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n\n".join(v.strip() for v in value if v.strip())
    return _text(record, "context")


def _checked(messages: object, field: str) -> list[dict]:
    try:
        messages = check_messages(messages)
    except ChatError as exc:
        raise BadRecord(f"bad_{field}", str(exc).replace("messages", field, 1)) from None
    if messages[-1]["role"] != "assistant":
        raise BadRecord("missing_answer", f"the last turn of '{field}' must be the assistant's answer")
    if not any(m["role"] == "user" for m in messages):
        raise BadRecord("missing_question", f"no user turn in '{field}'")
    if any(m["role"] == "assistant" and not m["content"] for m in messages):
        raise BadRecord("empty_answer", f"an assistant turn of '{field}' is empty")
    return messages


def _sharegpt(turns: object) -> list[dict]:
    if not isinstance(turns, list) or not turns:
        raise BadRecord("bad_conversations", "conversations: must be a non-empty list of {\"from\", \"value\"}")
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise BadRecord("bad_conversations", f"conversations[{i}]: must be an object with 'from' and 'value'")
        speaker = turn.get("from", turn.get("role"))
        if speaker not in SHAREGPT_ROLES:
            raise BadRecord("bad_conversations", f"conversations[{i}].from: {speaker!r} is not one of "
                                                 f"{', '.join(SHAREGPT_ROLES)}")
        out.append({"role": SHAREGPT_ROLES[speaker], "content": turn.get("value", turn.get("content"))})
    return out


def _turns(value: object, field: str, role: str) -> list[dict]:
    """prompt/completion: a string is one turn of `role`; a list is chat messages."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list):
        return list(value)
    raise BadRecord("bad_field_type", f"field '{field}' must be a string or a list of messages, got {type(value).__name__}")


def to_messages(record: object, system_prompt: str, context_template: str) -> tuple[list[dict], set[str]]:
    """(the conversation with a system prompt, the record's fields this shape read); BadRecord otherwise."""
    if not isinstance(record, dict):
        raise BadRecord("unknown_shape", f"expected a JSON object, got {type(record).__name__}")
    system = _text(record, "system")
    used = {"system"} if system is not None else set()
    prompt = system or system_prompt
    if "messages" in record:
        return with_system(_checked(record["messages"], "messages"), prompt), used | {"messages"}
    if "conversations" in record:
        return with_system(_checked(_sharegpt(record["conversations"]), "conversations"), prompt), used | {"conversations"}
    if "prompt" in record:
        if "completion" not in record:
            raise BadRecord("missing_answer", "record has 'prompt' but no 'completion'")
        turns = _turns(record["prompt"], "prompt", "user") + _turns(record["completion"], "completion", "assistant")
        return with_system(_checked(turns, "prompt"), prompt), used | {"prompt", "completion"}
    question_key = "question" if "question" in record else "instruction" if "instruction" in record else None
    if question_key is None:
        keys = ", ".join(sorted(record)) or "none"
        raise BadRecord("unknown_shape", f"no messages/conversations/prompt/instruction/question field (fields: {keys})")
    used.add(question_key)
    question = _text(record, question_key)
    answer_key = next((k for k in ANSWER_KEYS if k in record), None)
    if answer_key is None:
        raise BadRecord("missing_answer", f"record has '{question_key}' but no 'output' or 'answer'")
    used.add(answer_key)
    answer = _text(record, answer_key)
    extra = None
    if question_key == "instruction" and "input" in record:
        extra = _text(record, "input")
        used.add("input")
    user = "\n".join(part for part in (question, extra) if part)
    if not user:
        raise BadRecord("empty_question", f"'{question_key}' is empty")
    if not answer:
        raise BadRecord("empty_answer", f"'{answer_key}' is empty")
    if "context" in record:
        used.add("context")
        context = _context(record)
        if not context:
            raise BadRecord("empty_context", "'context' is empty; drop the field for a question without a text")
        user = context_template.format(context=context, question=user)
    messages = check_messages([{"role": "user", "content": user}, {"role": "assistant", "content": answer}])
    return with_system(messages, prompt), used
