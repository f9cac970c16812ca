"""LLM-as-judge: an LLM grades an answer against the reference (reference-guided single-answer grading).

MT-Bench style, on the seed's axes: accuracy, completeness, clarity, practicality, overall, each 0-10;
temperature 0; JSON output. Any OpenAI-compatible server works: `OPENAI_API_KEY`, and `OPENAI_BASE_URL` for a
server other than OpenAI's. Verdicts are cached on disk by (question, reference, answer, judge model, rubric
version), so a rerun pays only for answers it has not seen. Rate limits and server errors are retried with
exponential backoff (honouring Retry-After), then counted as failed; a verdict that is not the JSON asked for is
counted as unparseable. Empty answers are not sent: they score 0 on every axis and are counted.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from vietlegal import jsonl
from vietlegal.errors import ConfigError
from vietlegal.params import JudgeConfig

AXES = ("accuracy", "completeness", "clarity", "practicality", "overall")

# A rubric's text never changes under the same version: edit it under a new key and bump judge.rubric_version.
RUBRICS = {
    "v1": (
        "You are a senior Vietnamese lawyer grading an AI legal assistant. You receive a legal question, a "
        "reference answer written by a lawyer, and the assistant's answer. Grade the assistant's answer against "
        "the reference on five axes, each an integer from 0 to 10:\n"
        "- accuracy (độ chính xác): is the legal content correct and consistent with the reference? A cited "
        "article of the wrong law, or of a superseded version of the law, is an accuracy error.\n"
        "- completeness (độ đầy đủ): does it cover the points and conditions the reference covers?\n"
        "- clarity (độ rõ ràng): is it clear, well organised, correct Vietnamese?\n"
        "- practicality (tính thực tiễn): can the person act on it?\n"
        "- overall (điểm tổng thể): your overall judgement, not an average.\n"
        "An empty, off-topic or non-Vietnamese answer scores low on every axis. Do not reward length.\n"
        'Reply with one JSON object only: {"accuracy": n, "completeness": n, "clarity": n, '
        '"practicality": n, "overall": n, "rationale": "<one sentence>"}'
    ),
}

OK, UNPARSEABLE, FAILED, EMPTY = "ok", "unparseable", "failed", "empty"

# The verdict's shape, asked for as a json_schema response format: vLLM and this project's server enforce it by
# constrained decoding, OpenAI follows it. Scores are enumerated (0-10) and the rationale bounded, so even a
# small model under the grammar finishes a verdict; not `strict`, because OpenAI's strict subset has no length
# bounds.
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {**{axis: {"type": "integer", "enum": list(range(11))} for axis in AXES},
                   "rationale": {"type": "string", "maxLength": 300}},
    "required": [*AXES, "rationale"],
    "additionalProperties": False,
}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": False}}
MAX_VERDICT_TOKENS = 512  # room for the scores and a 300-character rationale


@dataclass
class Verdict:
    status: str
    scores: dict[str, float] | None = None
    raw: str = ""
    error: str = ""
    cached: bool = False
    attempts: int = 0  # API calls made for this verdict (0 when cached or empty)


def rubric(version: str) -> str:
    if version not in RUBRICS:
        raise ConfigError(f"judge.rubric_version: {version!r} is not defined; known versions: {', '.join(RUBRICS)}")
    return RUBRICS[version]


def judge_messages(version: str, question: str, reference: str, answer: str) -> list[dict]:
    user = f"## Question\n{question}\n\n## Reference answer\n{reference}\n\n## Assistant's answer\n{answer}"
    return [{"role": "system", "content": rubric(version)}, {"role": "user", "content": user}]


def cache_key(question: str, reference: str, answer: str, model: str, version: str) -> str:
    return hashlib.sha256(json.dumps([question, reference, answer, model, version], ensure_ascii=False).encode()).hexdigest()


def parse_verdict(text: str) -> dict[str, float] | None:
    """The five axis scores from a judge reply, or None if it is not the JSON asked for."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        data = json.loads(text[start:end + 1])
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    scores = {}
    for axis in AXES:
        value = data.get(axis)
        if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10:
            return None
        scores[axis] = float(value)
    return scores


class VerdictCache:
    """Append-only JSONL of verdicts by cache key; safe to share between the judge's threads."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = {}
        if path.exists():
            # Collecting: a line a killed run cut short is only a verdict asked again, not a reason to stop.
            for _, entry in jsonl.read_objects(path, ConfigError, rejects=[]):
                if isinstance(entry.get("key"), str):
                    self._entries[entry["key"]] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    def get(self, key: str) -> dict | None:
        return self._entries.get(key)

    def put(self, entry: dict) -> None:
        with self._lock:
            self._entries[entry["key"]] = entry
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def __len__(self) -> int:
        return len(self._entries)


def make_client(cfg: JudgeConfig):
    import openai

    if not os.environ.get("OPENAI_API_KEY"):
        raise ConfigError(
            "judge.enabled is true but OPENAI_API_KEY is not set; export it (and OPENAI_BASE_URL for a server "
            "other than OpenAI's), or set judge.enabled: false"
        )
    # Retries are ours (counted, with Retry-After); the client's own would hide them.
    return openai.OpenAI(max_retries=0, timeout=cfg.timeout_s)


@dataclass
class Judge:
    cfg: JudgeConfig
    client: object
    cache: VerdictCache
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0

    def verdict(self, question: str, reference: str, answer: str) -> Verdict:
        if not answer.strip():
            return Verdict(EMPTY, {axis: 0.0 for axis in AXES})
        key = cache_key(question, reference, answer, self.cfg.model, self.cfg.rubric_version)
        hit = self.cache.get(key)
        if hit is not None:
            return Verdict(hit["status"], hit["scores"], hit["raw"], cached=True)
        raw, attempts, error = self._complete(judge_messages(self.cfg.rubric_version, question, reference, answer))
        if raw is None:
            return Verdict(FAILED, error=error, attempts=attempts)  # not cached: a later run tries again
        scores = parse_verdict(raw)
        v = Verdict(OK if scores else UNPARSEABLE, scores, raw, attempts=attempts)
        # At temperature 0 an unparseable reply would come back the same: cache it too, never pay twice.
        self.cache.put({"key": key, "model": self.cfg.model, "rubric_version": self.cfg.rubric_version,
                        "status": v.status, "scores": scores, "raw": raw})
        return v

    def _complete(self, messages: list[dict]) -> tuple[str | None, int, str]:
        import openai

        retryable = (openai.RateLimitError, openai.APIConnectionError, openai.InternalServerError, openai.ConflictError)
        fatal = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)
        for attempt in range(self.cfg.max_retries + 1):
            try:
                reply = self.client.chat.completions.create(
                    model=self.cfg.model, messages=messages, temperature=0, response_format=RESPONSE_FORMAT,
                    max_completion_tokens=MAX_VERDICT_TOKENS,
                )
                return reply.choices[0].message.content or "", attempt + 1, ""
            except fatal as exc:
                # Every request would fail the same way: stop with what to fix.
                raise ConfigError(f"judge: {type(exc).__name__} from the judge server for model {self.cfg.model!r}: "
                                  f"{exc}; check OPENAI_API_KEY, OPENAI_BASE_URL and judge.model") from exc
            except retryable as exc:
                error = f"{type(exc).__name__}: {exc}"
                if attempt < self.cfg.max_retries:
                    time.sleep(self._delay(attempt, exc))
            except openai.APIStatusError as exc:  # 400/422: this request is bad, retrying will not help
                return None, attempt + 1, f"{type(exc).__name__}: {exc}"
        return None, self.cfg.max_retries + 1, error

    def _delay(self, attempt: int, exc: Exception) -> float:
        response = getattr(exc, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        try:
            return min(self.max_backoff_s, float(retry_after))
        except (TypeError, ValueError):
            return min(self.max_backoff_s, self.backoff_s * 2 ** attempt)


def summarise(verdicts: list[Verdict]) -> dict:
    counts = Counter(v.status for v in verdicts)
    scored = [v.scores for v in verdicts if v.status in (OK, EMPTY)]
    means = {axis: sum(s[axis] for s in scored) / len(scored) for axis in AXES} if scored else {}
    return {**means, "scored": len(scored), **{s: counts[s] for s in (EMPTY, UNPARSEABLE, FAILED)}}
