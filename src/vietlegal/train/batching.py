"""Batches of similar length, padded with the pad token.

transformers' LengthGroupedSampler sorts pools of at most len(data)/4 examples, which on the
~150-example sample leaves >10% of every batch as padding. Here each epoch shuffles the data,
sorts pools of `POOL_BATCHES` batches by length (ties in random order), cuts them into batches and
shuffles the batch order: near-minimal padding on small data, random pools on large data.
The order depends only on (seed, epoch), so every process of a distributed run, and a run
resumed mid-epoch, sees the same batches.
"""
from __future__ import annotations

from dataclasses import dataclass

from vietlegal.model.chat import IGNORE_INDEX

POOL_BATCHES = 64


class LengthGroupedBatches:
    """A sampler whose consecutive `batch_size` indices form one length-homogeneous batch."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, shuffle: bool = True) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        return iter(self.order())

    def order(self) -> list[int]:
        import torch

        n = len(self.lengths)
        if not self.shuffle:
            return sorted(range(n), key=lambda i: self.lengths[i])
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        shuffled = torch.randperm(n, generator=g).tolist()
        pool = self.batch_size * POOL_BATCHES
        batches = []
        for start in range(0, n, pool):
            members = sorted(shuffled[start : start + pool], key=lambda i: self.lengths[i])  # stable: random ties
            batches += [members[i : i + self.batch_size] for i in range(0, len(members), self.batch_size)]
        # Keep a short final batch last: accelerate and drop_last expect full batches before it.
        full = [b for b in batches if len(b) == self.batch_size]
        short = [b for b in batches if len(b) < self.batch_size]
        ordered = [full[i] for i in torch.randperm(len(full), generator=g).tolist()] + short
        return [i for batch in ordered for i in batch]


@dataclass
class PadCollator:
    """Right-pads a batch with the pad token; labels are -100 on padding only, so the real
    `<|eot_id|>` (never the pad token) stays supervised."""

    pad_token_id: int

    def __call__(self, features: list[dict]) -> dict:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            input_ids[row, :n] = torch.as_tensor(f["input_ids"])
            labels[row, :n] = torch.as_tensor(f["labels"])
            attention_mask[row, :n] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
