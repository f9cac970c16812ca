"""What both backends share and nothing else decides: the LoRA settings and the dtype names.

Its own module so that `backends` (which picks a backend) and `trl_backend` / `unsloth_backend` (which it
imports) both import down to it, never each other."""
from __future__ import annotations

from vietlegal.params import TrainConfig

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}  # precision -> torch dtype name


def lora_settings(cfg: TrainConfig) -> dict:
    """LoRA settings both backends share. No `modules_to_save` and no embedding targets (TrainConfig refuses
    them): vLLM's LoRA loader rejects both, and the vocabulary is never resized."""
    return {"r": cfg.lora_r, "lora_alpha": cfg.lora_alpha, "lora_dropout": cfg.lora_dropout,
            "target_modules": list(cfg.target_modules), "bias": "none"}
