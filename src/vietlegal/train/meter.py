"""Counts the tokens the training forward passes really process: real ones and padding.

A forward pre-hook on the model sees every training batch exactly as the model does (after the
sampler, the collator and any DDP wrapper), so padding efficiency is measured, not estimated.
Evaluation batches are skipped (the model is in eval mode then); gradient checkpointing recomputes
layers, not the model's forward, so nothing is counted twice.
"""
from __future__ import annotations


class TokenMeter:
    def __init__(self) -> None:
        self.real = 0
        self.processed = 0
        self.batches = 0

    def attach(self, model) -> None:
        model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs) -> None:
        if not module.training:
            return
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if input_ids is None:
            return
        mask = kwargs.get("attention_mask")
        self.processed += input_ids.numel()
        self.real += int(mask.sum()) if mask is not None else input_ids.numel()
        self.batches += 1

    def totals(self, accelerator=None) -> tuple[int, int]:
        """(real, processed) summed over all processes."""
        if accelerator is None or accelerator.num_processes == 1:
            return self.real, self.processed
        import torch

        counts = torch.tensor([self.real, self.processed], device=accelerator.device)
        real, processed = accelerator.reduce(counts, reduction="sum").tolist()
        return int(real), int(processed)

    @staticmethod
    def efficiency(real: int, processed: int) -> float | None:
        return real / processed if processed else None  # None: this run trained no step (resumed at the end)
