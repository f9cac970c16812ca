"""Constrained decoding for `response_format` (json_object, json_schema) on the HF loop, through xgrammar.

xgrammar was chosen by measurement (REFERENCE.md, and again here): a schema compiles in ~3 ms for the tiny
model's tokenizer, and its matcher + token-bitmask API works per sequence, which a batched loop of one's own
needs (lm-format-enforcer and outlines hook `model.generate` instead); it is also what vLLM uses by default, so
both backends enforce the same grammar. JSON is compact (no free whitespace): a model then cannot spend its
token budget on blanks. That rule is ANY_WHITESPACE, one constant for both backends: vLLM takes it only from its
engine's `structured_outputs_config` (`disable_any_whitespace`; a per-request value is ignored there), which
`model.vllm_engine.engine_kwargs` sets from it, and the HF grammar below compiles with it.
Schemas nested deeper than vLLM's limit (MAX_NESTING, 64) are refused by `check_nesting` on both backends, before
anything is compiled or queued.

    grammar = compile_for(tokenizer, vocab_size, end_ids, request)   # None for free text; cached per schema
    matcher = Matcher(grammar, vocab_size)
    matcher.mask(logits_row)      # before sampling: every token the grammar forbids gets -inf
    matcher.accept(token)         # after sampling

When the JSON is complete the grammar allows only the end-of-turn ids, so the sequence ends as any other.
Tokens holding a raw control character (U+0000-U+001F) are masked too: JSON never needs one unescaped (this
grammar writes no whitespace), and xgrammar 0.2.9's rule for strings with maxLength admits them, which a random
model then samples and a strict JSON parser refuses.
xgrammar is imported on first use: a server that is never asked for JSON never loads it.
"""
from __future__ import annotations

import functools
import json
import re

from vietlegal.errors import GenerationError


@functools.lru_cache(maxsize=8)
def _compiler(tokenizer, vocab_size: int, end_ids: tuple[int, ...]):
    import xgrammar as xgr

    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=list(end_ids))
    return xgr.GrammarCompiler(info)


ANY_WHITESPACE = False  # False: compact JSON on both backends (vLLM: disable_any_whitespace=True)
MAX_NESTING = 64  # vLLM's MAX_STRUCTURED_OUTPUT_JSON_NESTING: objects and arrays of a schema nest at most this deep
_GRAMMARS: dict[tuple, object] = {}  # (tokenizer, vocab, end ids, schema) -> compiled grammar
MAX_GRAMMARS = 256
ANY_OBJECT = '{"type":"object"}'


def _compile(tokenizer, vocab_size: int, end_ids: tuple[int, ...], json_schema: str | None):
    key = (id(tokenizer), vocab_size, end_ids, json_schema)
    if key not in _GRAMMARS:
        compiler = _compiler(tokenizer, vocab_size, end_ids)
        # json_object is "any JSON object" (OpenAI's meaning; xgrammar's builtin JSON grammar allows any value).
        grammar = compiler.compile_json_schema(json_schema or ANY_OBJECT, any_whitespace=ANY_WHITESPACE)
        if len(_GRAMMARS) >= MAX_GRAMMARS:
            _GRAMMARS.pop(next(iter(_GRAMMARS)))  # the oldest: a bounded cache of what clients asked for
        _GRAMMARS[key] = grammar
    return _GRAMMARS[key]


def compile_for(tokenizer, vocab_size: int, end_ids, json_schema: str | None, json_object: bool):
    """The compiled grammar of a request's structure, or None when it asks for free text; GenerationError naming
    response_format when the schema cannot be compiled."""
    if json_schema is None and not json_object:
        return None
    try:
        return _compile(tokenizer, vocab_size, tuple(sorted(end_ids)), json_schema)
    except ImportError:
        raise GenerationError("response_format: this server cannot enforce JSON: its xgrammar package is missing "
                              "(`pip install --no-deps -r requirements-nodeps.txt`)") from None
    except Exception as exc:  # noqa: BLE001 - whatever the compiler refuses in a client's schema is the client's to fix
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        first = re.sub(r"^\[[\d:]+\] \S+: ", "", first)  # xgrammar's "[time] file.cc:line: " prefix
        raise GenerationError(f"response_format: the JSON schema cannot be enforced: {first}") from None


def check_nesting(schema: object) -> None:
    """GenerationError when a schema's objects and arrays nest deeper than MAX_NESTING (vLLM's rule: level by level,
    iteratively, so any depth the JSON parser accepted is measured without recursion)."""
    level = [schema]
    for _ in range(MAX_NESTING):
        level = [child for node in level if isinstance(node, (dict, list))
                 for child in (node.values() if isinstance(node, dict) else node) if isinstance(child, (dict, list))]
        if not level:
            return
    raise GenerationError(f"response_format.json_schema.schema: nested too deeply: objects and arrays may nest at most "
                          f"{MAX_NESTING} levels (vLLM's limit, kept on both backends)")


def schema_text(schema: object) -> str:
    """A schema as the compact, key-sorted JSON text requests carry (and the compile cache is keyed by)."""
    return json.dumps(schema, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=8)
def control_tokens(tokenizer, vocab_size: int, end_ids: tuple[int, ...]):
    """Ids whose text holds a raw control character (end-of-turn ids excepted), as a tensor for indexing."""
    import torch

    size = min(vocab_size, len(tokenizer))
    texts = tokenizer.batch_decode([[i] for i in range(size)], skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)
    ids = [i for i, text in enumerate(texts) if i not in end_ids and any(ord(c) < 0x20 for c in text)]
    return torch.tensor(ids, dtype=torch.long)


class Matcher:
    """One sequence's position in its grammar."""

    def __init__(self, grammar, vocab_size: int, forbidden=None):
        import xgrammar as xgr

        self._xgr = xgr
        self.matcher = xgr.GrammarMatcher(grammar)
        self.bitmask = xgr.allocate_token_bitmask(1, vocab_size)
        self.forbidden = forbidden  # control_tokens(...)

    def mask(self, logits_row) -> None:
        """Forbid, in place, every token the grammar does not allow next (logits_row: shape (1, vocab))."""
        self.matcher.fill_next_token_bitmask(self.bitmask)
        self._xgr.apply_token_bitmask_inplace(logits_row, self.bitmask.to(logits_row.device))
        if self.forbidden is not None and len(self.forbidden):
            logits_row[:, self.forbidden.to(logits_row.device)] = float("-inf")

    def accept(self, token: int) -> None:
        if not self.matcher.accept_token(token):
            raise GenerationError(f"response_format: token {token} broke the grammar (a decoding bug, not the request)")
