"""The one batched decoding loop over transformers: the evaluation stages and the HF server worker decode through it.

    from vietlegal.model import chat, decoding
    from vietlegal.model.sampling import SamplingRequest
    ids = chat.encode_prompt(tokenizer, messages)
    [done] = decoding.generate(model, tokenizer, [SamplingRequest(ids, max_new_tokens=64)])
    done.text, done.finish_reason, done.prompt_tokens, done.completion_tokens

    stream = decoding.stream(model, tokenizer, requests)     # one step of the whole batch at a time
    for deltas in stream:                                      # list[Delta], one per still-running request
        ...; stream.cancel(i)                                  # e.g. its client went away
        ...; stream.add(more)                                  # joins the batch at the next step

Why our own loop rather than `model.generate`: a batch served together needs per-request temperature,
top_p, seed, token budget and stop strings, per-token deltas for several streams at once, and the
ability to drop one sequence mid-way (finished or disconnected) so the rest run on a smaller batch.
Prompts are left-padded with the tokenizer's pad token (never EOS); a sequence ends on any of the
model's end ids (<|eot_id|>, <|eom_id|>, <|end_of_text|>; not with ignore_eos) or its stop_token_ids, on a stop
string, or on its budget. Each row's next token is chosen by `model.sampler` (penalties, top-k, min-p, top-p,
numerically safe at any temperature); rows that need none of it take the batch's argmax.

Failures stay with their request: an exception while choosing or reading one row's token ends that row alone
(finish_reason "error", `Completion.error` says why) and the batch goes on; one in the batched forward pass ends
the rows of that pass, and the stream can still take new requests.

Counting: `prompt_tokens` is len(prompt_ids); `completion_tokens` is every token the model sampled,
including the end token that stopped it (it was computed) and tokens after a stop string's start.
Text is decoded without special tokens and without "clean up" of spaces, so the concatenated stream
deltas always equal the non-streamed text.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from vietlegal.errors import GenerationError
from vietlegal.model import sampler
from vietlegal.model.base import context_window
from vietlegal.model.sampler import nucleus  # noqa: F401 - part of this module's interface (tests, callers)
from vietlegal.model.sampling import SamplingRequest, check

END_TOKENS = ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>")
STOP = "stop"
LENGTH = "length"
CANCELLED = "cancelled"  # internal only: the caller dropped the sequence (e.g. client disconnect)
ERROR = "error"  # internal only: this sequence failed (Completion.error); the others went on


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" | "length" | "cancelled" | "error"
    prompt_tokens: int
    completion_tokens: int
    logprobs: list | None = None  # request.logprobs: per new token (logprob, [(id, logprob), ...]) (model.sampler)
    prompt_logprobs: list | None = None  # request.prompt_logprobs: None for the first prompt token, then records
    error: str | None = None  # finish_reason "error": what went wrong


@dataclass
class Delta:
    index: int  # the request's position: in the list given to `stream`, then on in the order `add` took them
    text: str  # new text since this request's previous delta ("" while a stop string may be starting)
    token_id: int  # the token sampled at this step (-1: none, e.g. max_new_tokens 0)
    finish_reason: str | None = None
    completion: Completion | None = None  # set on a request's last delta
    logprob: tuple | None = None  # request.logprobs: this token's record (model.sampler.logprob_record)


def end_token_ids(model, tokenizer) -> set[int]:
    """Every id that ends a turn: the model's generation config, its config and the Llama-3.1 end tokens."""
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None), tokenizer):
        value = getattr(source, "eos_token_id", None)
        ids.update([value] if isinstance(value, int) else list(value or []))
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in END_TOKENS if t in vocab)
    return ids


def context_length(model) -> int:
    return context_window(model.config)


@dataclass
class _Sequence:
    """Decoding state of one request."""

    index: int
    request: SamplingRequest
    budget: int
    generator: torch.Generator | None
    token_ids: list[int] = field(default_factory=list)
    text: str = ""  # decoded text of token_ids[:read_offset] (complete characters only)
    prefix_offset: int = 0  # token_ids[prefix_offset:read_offset] decode to the end of `text`
    read_offset: int = 0
    emitted: str = ""  # text already handed out in deltas
    matcher: object = None  # response_format: the sequence's grammar state (model.structure.Matcher)
    stop_ids: frozenset = frozenset()  # ids that end this sequence
    logprobs: list = field(default_factory=list)  # request.logprobs: one record per sampled token
    prompt_logprobs: list | None = None
    failed: str | None = None  # why choosing its last token failed


@dataclass
class _Batch:
    """The sequences decoding together: their KV cache, attention mask, next positions and next-token logits."""

    active: list[_Sequence]
    cache: object  # transformers.DynamicCache
    mask: torch.Tensor
    next_position: torch.Tensor
    logits: torch.Tensor

    def select(self, keep: list[int]) -> None:
        index = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask, self.next_position, self.logits = self.mask[index], self.next_position[index], self.logits[index]
        self.active = [self.active[k] for k in keep]

    def merged_into(self, running: _Batch | None) -> _Batch:
        """This (just prefilled) batch joined to `running`: caches and masks left-padded to one width."""
        if running is None:
            return self
        from transformers import DynamicCache

        width = max(running.mask.shape[1], self.mask.shape[1])
        cache = DynamicCache()
        for layer, (a, b) in enumerate(zip(running.cache.layers, self.cache.layers)):
            cache.update(torch.cat([_left_pad(a.keys, width), _left_pad(b.keys, width)]),
                         torch.cat([_left_pad(a.values, width), _left_pad(b.values, width)]), layer)
        mask = torch.cat([_left_pad(running.mask, width), _left_pad(self.mask, width)])
        return _Batch(running.active + self.active, cache, mask, torch.cat([running.next_position, self.next_position]),
                      torch.cat([running.logits, self.logits]))


def _route_adapters(model, rows: list[_Sequence]) -> None:
    """A mixed-adapter batch (a server with several versions): each row through its own adapter
    (model.mixed_lora); rows naming none get the base. Requests that name no adapter use the model as loaded."""
    names = [row.request.adapter for row in rows]
    if any(name is not None for name in names):
        from vietlegal.model import mixed_lora

        mixed_lora.route(model, names)


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """Zeros on the left of the sequence axis (-1 for a mask, -2 for keys and values) up to `width`."""
    axis = -1 if t.dim() == 2 else -2
    missing = width - t.shape[axis]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[axis] = missing
    return torch.cat([t.new_zeros(shape), t], dim=axis)


class Stream:
    """Iterates one decoding step of a batch at a time, yielding a list of `Delta`s per step.

    `cancel(index)` drops a request before the next step (its last delta has finish_reason
    "cancelled"); the remaining rows keep decoding on a smaller batch. `add(requests)` joins new
    requests at the next step (continuous batching): they start at once, without waiting for the batch.
    """

    def __init__(self, model, tokenizer, requests: Sequence[SamplingRequest]):
        if not requests:
            raise GenerationError("requests: empty batch")
        if tokenizer.pad_token_id is None:
            raise GenerationError("tokenizer has no pad token; load it with vietlegal.model.base.load_tokenizer")
        self.model, self.tokenizer = model, tokenizer
        self.device = next(model.parameters()).device
        self.end_ids = end_token_ids(model, tokenizer)
        self.rows: list[_Sequence] = []
        self._cancelled: set[int] = set()
        self._joining: list[_Sequence] = []
        self.add(requests)
        self._steps = self._run()

    def cancel(self, index: int) -> None:
        self._cancelled.add(index)

    def generated(self, index: int) -> int:
        """Tokens sampled so far for request `index`."""
        return len(self.rows[index].token_ids)

    def __iter__(self) -> Iterator[list[Delta]]:
        return self

    def __next__(self) -> list[Delta]:
        return next(self._steps)

    def _matcher(self, request: SamplingRequest):
        if request.json_schema is None and not request.json_object:
            return None
        from vietlegal.model import structure

        vocab = self.model.config.vocab_size
        grammar = structure.compile_for(self.tokenizer, vocab, self.end_ids, request.json_schema, request.json_object)
        return structure.Matcher(grammar, vocab, structure.control_tokens(self.tokenizer, vocab, tuple(sorted(self.end_ids))))

    def _generator(self, request: SamplingRequest) -> torch.Generator | None:
        if sampler.is_greedy(request):
            return None
        gen = torch.Generator(device=self.device)
        gen.manual_seed(request.seed if request.seed is not None else random.SystemRandom().getrandbits(63))
        return gen

    def add(self, requests: Sequence[SamplingRequest]) -> list[int]:
        """Join requests to the running batch at its next step (continuous batching); returns their indices.
        Their prompts are prefilled together and their KV cache is merged, left-padded, into the batch's."""
        context = context_length(self.model)
        for r in requests:
            check(r, context)
        rows = [_Sequence(len(self.rows) + i, r, min(r.max_new_tokens, context - len(r.prompt_ids)), self._generator(r),
                          matcher=self._matcher(r), stop_ids=self._stop_ids(r)) for i, r in enumerate(requests)]
        self.rows += rows
        self._joining += rows
        return [row.index for row in rows]

    def _stop_ids(self, request: SamplingRequest) -> frozenset:
        return frozenset(request.stop_token_ids) | (frozenset() if request.ignore_eos else frozenset(self.end_ids))

    @torch.inference_mode()
    def _run(self) -> Iterator[list[Delta]]:
        batch: _Batch | None = None
        while True:
            if self._joining:
                joining, self._joining = self._joining, []
                try:
                    batch = self._prefill(joining).merged_into(batch)
                except Exception as exc:  # noqa: BLE001 - the joining requests fail; the running batch goes on
                    yield [self._fail(row, exc) for row in joining]
            if batch is None:
                if self._joining:
                    continue
                return
            active = batch.active
            done = [k for k, row in enumerate(active) if row.budget <= 0]  # max_new_tokens 0: the prompt only
            if done:
                yield [self._finish(active[k], LENGTH, "", -1) for k in done]
                batch = self._without(batch, done)
                if batch is None:
                    continue
                active = batch.active
            tokens = self._sample(batch.logits, active)
            deltas = [self._advance_safely(row, token) for row, token in zip(active, tokens)]
            yield deltas
            keep = [k for k, d in enumerate(deltas) if d.finish_reason is None and active[k].index not in self._cancelled]
            for k, row in enumerate(active):
                if deltas[k].finish_reason is None and k not in keep:
                    yield [self._finish(row, CANCELLED, "", row.token_ids[-1])]
            if not keep:
                batch = None  # what joined meanwhile starts a new batch
                continue
            if len(keep) < len(active):
                batch.select(keep)
                tokens = [tokens[k] for k in keep]
            batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch.active), 1))], dim=1)
            step = torch.tensor(tokens, device=self.device).unsqueeze(1)
            try:
                batch.logits = self._forward(step, batch.mask, batch.next_position.unsqueeze(1), batch.cache,
                                             batch.active)
            except Exception as exc:  # noqa: BLE001 - this pass's rows fail; requests that join later still run
                yield [self._fail(row, exc) for row in batch.active]
                batch = None
                continue
            batch.next_position = batch.next_position + 1

    @staticmethod
    def _without(batch: _Batch, drop: list[int]) -> _Batch | None:
        keep = [k for k in range(len(batch.active)) if k not in drop]
        if not keep:
            return None
        batch.select(keep)
        return batch

    def _prefill(self, rows: list[_Sequence]) -> _Batch:
        from transformers import DynamicCache

        ids, mask = self._left_padded([r.request.prompt_ids for r in rows])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        every = any(r.request.prompt_logprobs is not None for r in rows)
        logits = self._forward(ids, mask, positions, cache, rows, every_position=every)
        if every:
            for k, row in enumerate(rows):
                if row.request.prompt_logprobs is not None:
                    row.prompt_logprobs = self._prompt_logprobs(logits[k], row.request)
            logits = logits[:, -1, :]
        return _Batch(list(rows), cache, mask, positions[:, -1] + 1, logits)

    @staticmethod
    def _prompt_logprobs(logits: torch.Tensor, request: SamplingRequest) -> list:
        """None for the first prompt token (nothing predicts it), then each token's record given what precedes it;
        `logits` are the row's left-padded positions: the prompt is its last len(prompt_ids)."""
        prompt = list(request.prompt_ids)
        rows = logits[logits.shape[0] - len(prompt):]
        return [None] + [sampler.logprob_record(sampler.finite(rows[t - 1]), prompt[t], request.prompt_logprobs)
                         for t in range(1, len(prompt))]

    def _left_padded(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(map(len, prompts))
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        return ids, mask

    def _forward(self, ids, mask, positions, cache, rows: list[_Sequence], every_position: bool = False) -> torch.Tensor:
        """Next-token logits (float32) of each row's last position, or of every position."""
        _route_adapters(self.model, rows)
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True,
            logits_to_keep=0 if every_position else 1,
        )
        return out.logits.float() if every_position else out.logits[:, -1, :].float()

    def _sample(self, logits: torch.Tensor, rows: list[_Sequence]) -> list[int]:
        """One token per row (-1 for a row whose choice failed: row.failed says why)."""
        for k, row in enumerate(rows):
            if row.matcher is not None:
                try:
                    row.matcher.mask(logits[k:k + 1])
                except Exception as exc:  # noqa: BLE001 - this row fails alone
                    row.failed = _reason(exc)
        best = logits.argmax(dim=-1, keepdim=True)
        greedy, finite = best.squeeze(1).tolist(), torch.isfinite(logits.gather(1, best)).squeeze(1).tolist()
        out = []
        for k, row in enumerate(rows):
            if row.failed:
                out.append(-1)
                continue
            try:
                out.append(self._choose(logits[k], row, greedy[k] if finite[k] else None))
            except Exception as exc:  # noqa: BLE001 - this row fails alone
                row.failed = _reason(exc)
                out.append(-1)
        return out

    def _choose(self, logits: torch.Tensor, row: _Sequence, argmax: int | None) -> int:
        """`argmax`: the row's best token when its score is finite (else None: the careful path)."""
        request = row.request
        banned = row.stop_ids if len(row.token_ids) < request.min_tokens else ()
        if not banned and sampler.plain(request) and argmax is not None:
            if row.generator is None:
                return argmax  # the batch's argmax: greedy rows cost nothing more
            return sampler.choose(logits.clone(), request, row.generator)
        scores = sampler.finite(logits)
        raw = scores.clone() if request.logprobs is not None else None
        if banned:
            scores[[i for i in banned if i < scores.shape[-1]]] = float("-inf")
            scores = sampler.finite(scores)
        token = sampler.choose(sampler.penalised(scores, request, request.prompt_ids, row.token_ids), request,
                               row.generator)
        if raw is not None:
            row.logprobs.append(sampler.logprob_record(raw, token, request.logprobs))
        return token

    def _advance_safely(self, row: _Sequence, token: int) -> Delta:
        if row.failed:
            return self._fail(row, row.failed)
        try:
            return self._advance(row, token)
        except Exception as exc:  # noqa: BLE001 - e.g. a token the grammar refuses: this row fails alone
            return self._fail(row, exc)

    def _fail(self, row: _Sequence, exc: Exception | str) -> Delta:
        delta = self._finish(row, ERROR, row.emitted, -1)
        delta.completion.error = exc if isinstance(exc, str) else _reason(exc)
        return delta

    def _advance(self, row: _Sequence, token: int) -> Delta:
        row.token_ids.append(token)
        ends = token in row.stop_ids
        if row.matcher is not None and not (ends or token in self.end_ids):
            row.matcher.accept(token)
        if ends:
            return self._finish(row, STOP, row.text + self._pending(row, len(row.token_ids) - 1), token)
        searched_to = len(row.text)
        self._detokenize(row)
        cut = first_stop(row.text, row.request.stop, start=searched_to) if len(row.token_ids) > row.request.min_tokens else None
        if cut is not None:
            return self._finish(row, STOP, row.text[:cut], token)
        if len(row.token_ids) >= row.budget:
            return self._finish(row, LENGTH, row.text + self._pending(row, len(row.token_ids)), token)
        safe = len(row.text) - held_back(row.text, row.request.stop)
        new = row.text[len(row.emitted):safe] if safe > len(row.emitted) else ""
        row.emitted += new
        return Delta(row.index, new, token, logprob=row.logprobs[-1] if row.request.logprobs is not None else None)

    def _detokenize(self, row: _Sequence) -> None:
        """Extend row.text with the new token's characters, decoding only a short window (O(1) per step).

        Byte-level BPE can split one character over several tokens; until it is complete the window
        decodes to U+FFFD and the text waits for the next token.
        """
        new = self._pending(row, len(row.token_ids))
        if new and not new.endswith("\ufffd"):
            row.text += new
            row.prefix_offset, row.read_offset = row.read_offset, len(row.token_ids)

    def _pending(self, row: _Sequence, end: int) -> str:
        """Text of token_ids[read_offset:end] (decoded in context of the previous window)."""
        prefix = self._decode(row.token_ids[row.prefix_offset:row.read_offset])
        return self._decode(row.token_ids[row.prefix_offset:end])[len(prefix):]

    def _finish(self, row: _Sequence, reason: str, text: str, token: int) -> Delta:
        # The final text always extends what was streamed, so deltas concatenate to Completion.text.
        rest = text[len(row.emitted):] if text.startswith(row.emitted) else ""
        row.emitted += rest
        logprobs = row.logprobs[:len(row.token_ids)] if row.request.logprobs is not None else None
        completion = Completion(row.emitted, list(row.token_ids), reason, len(row.request.prompt_ids), len(row.token_ids),
                                logprobs, row.prompt_logprobs)
        last = logprobs[-1] if logprobs and token >= 0 and reason not in (ERROR, CANCELLED) else None
        return Delta(row.index, rest, token, reason, completion, logprob=last)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def first_stop(text: str, stops: Sequence[str], start: int = 0) -> int | None:
    """Where the earliest stop string begins, looking only at matches that end after `start`
    (text before it was searched already)."""
    found = [i for i in (text.find(s, max(0, start - len(s) + 1)) for s in stops if s) if i >= 0]
    return min(found) if found else None


def held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of text that could still become a stop string."""
    longest = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:n]):
                longest = n
                break
    return longest


def stream(model, tokenizer, requests: Sequence[SamplingRequest]) -> Stream:
    """Decode requests as one left-padded batch, one step at a time (see `Stream`)."""
    return Stream(model, tokenizer, requests)


def generate(
    model, tokenizer, requests: Sequence[SamplingRequest], batch_size: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list[Completion]:
    """Completions in request order. With batch_size, requests run in batches of similar prompt length
    (less padding); on_batch(n) is called after each batch of n requests (progress bars)."""
    order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_ids))
    size = batch_size or max(len(requests), 1)
    done: dict[int, Completion] = {}
    for start in range(0, len(order), size):
        chunk = order[start:start + size]
        for deltas in stream(model, tokenizer, [requests[i] for i in chunk]):
            for d in deltas:
                if d.completion is not None:
                    done[chunk[d.index]] = d.completion
        if on_batch:
            on_batch(len(chunk))
    return [done[i] for i in range(len(requests))]
