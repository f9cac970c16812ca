"""Continued language-model training of the tiny base on statute text (the `pretrain` stage's loop).

The embedded default's base starts random (vietlegal.model.tiny: the Llama-3.1 architecture and tokenizer at a
laptop's size); a few minutes of next-token training on the codes' own text give it Vietnamese legal language,
so that fine-tuning has something to build on. Plain PyTorch, full weights, fp32 on the CPU: the model is a
few MB and a trainer's machinery would cost more than its steps.

    documents -> <|begin_of_text|> text <|end_of_text|>, concatenated and cut into blocks of `seq_length` tokens
    AdamW, linear warm-up then cosine decay to a tenth; the block order is a seeded permutation per epoch
    every `eval_every` steps (and the last): loss on held-out blocks -> the curve (step, seconds, loss, ppl); the
    seconds are wall time and this process's CPU time: on one thread and an idle machine they agree, on a shared
    machine the CPU time is what the run would take alone
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

END_OF_TEXT = "<|end_of_text|>"


@dataclass(frozen=True)
class Schedule:
    steps: int
    batch_size: int
    seq_length: int
    learning_rate: float
    warmup_steps: int
    weight_decay: float
    eval_every: int
    seed: int

    def lr_factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class Curve:
    points: list[dict] = field(default_factory=list)  # {"step", "seconds", "cpu_seconds", "tokens", "eval_loss", ...}
    started: float = field(default_factory=time.perf_counter)
    cpu_started: float = field(default_factory=time.process_time)

    def add(self, step: int, tokens: int, loss: float) -> None:
        self.points.append({"step": step, "seconds": round(time.perf_counter() - self.started, 2),
                            "cpu_seconds": round(time.process_time() - self.cpu_started, 2), "tokens": tokens,
                            "eval_loss": round(loss, 4), "eval_perplexity": round(math.exp(loss), 2)})


def blocks(tokenizer, documents: list[str], seq_length: int):
    """The documents' ids, each between BOS and <|end_of_text|>, as a (n, seq_length) tensor (the tail dropped)."""
    import torch

    end = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    ids: list[int] = []
    # The fast tokenizer's backend: no per-call length warning (an article is longer than a block, by design).
    for encoded in tokenizer.backend_tokenizer.encode_batch(documents, add_special_tokens=True):  # BOS first
        ids.extend(encoded.ids)
        ids.append(end)
    n = len(ids) // seq_length
    return torch.tensor(ids[: n * seq_length], dtype=torch.long).view(n, seq_length)


def evaluate(model, data, batch_size: int) -> float:
    """Mean next-token loss over the blocks (every block has the same number of predicted tokens)."""
    import torch

    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            batch = data[i:i + batch_size]
            total += model(input_ids=batch, labels=batch).loss.item() * len(batch)
            n += len(batch)
    model.train()
    return total / max(n, 1)


def train(model, train_blocks, eval_blocks, schedule: Schedule, on_eval=None) -> Curve:
    """`schedule.steps` optimizer steps over `train_blocks`; the held-out loss every `eval_every` steps."""
    import torch

    torch.manual_seed(schedule.seed)
    generator = torch.Generator().manual_seed(schedule.seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": schedule.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=schedule.learning_rate, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.lr_factor)
    curve, order, cursor = Curve(), torch.empty(0, dtype=torch.long), 0
    model.train()
    for step in range(schedule.steps):
        if step % schedule.eval_every == 0:
            curve.add(step, step * schedule.batch_size * schedule.seq_length, evaluate(model, eval_blocks, schedule.batch_size))
            if on_eval:
                on_eval(curve.points[-1])
        if cursor + schedule.batch_size > len(order):
            order, cursor = torch.randperm(len(train_blocks), generator=generator), 0
        batch = train_blocks[order[cursor:cursor + schedule.batch_size]]
        cursor += schedule.batch_size
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    curve.add(schedule.steps, schedule.steps * schedule.batch_size * schedule.seq_length,
              evaluate(model, eval_blocks, schedule.batch_size))
    if on_eval:
        on_eval(curve.points[-1])
    return curve
