"""What was asked for (checked before anything loads) and what ran (written to vietlegal.json)."""
from __future__ import annotations

import dataclasses
from importlib import metadata

from vietlegal.config import BaseConfig, ConfigError, TrainConfig

SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay")
LIBRARIES = ("vietlegal", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers", "dvclive",
             "unsloth", "bitsandbytes")


def check(cfg: TrainConfig, base: BaseConfig, source: str = "params.yaml") -> None:
    positive = ("lora_r", "lora_alpha", "batch_size", "grad_accum", "logging_steps", "eval_steps", "save_steps")
    for key in positive:
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{source}: train.{key} must be at least 1, got {getattr(cfg, key)}")
    if not 0 <= cfg.lora_dropout < 1:
        raise ConfigError(f"{source}: train.lora_dropout must be in [0, 1), got {cfg.lora_dropout}")
    if cfg.cpu_threads is not None and cfg.cpu_threads < 1:
        raise ConfigError(f"{source}: train.cpu_threads must be at least 1 or null, got {cfg.cpu_threads}")
    if cfg.learning_rate <= 0:
        raise ConfigError(f"{source}: train.learning_rate must be positive, got {cfg.learning_rate}")
    if cfg.max_steps < 1 and cfg.epochs <= 0:
        raise ConfigError(f"{source}: set train.epochs > 0 or train.max_steps >= 1")
    if cfg.warmup_steps < 0 or cfg.weight_decay < 0:
        raise ConfigError(f"{source}: train.warmup_steps and train.weight_decay must not be negative")
    if cfg.lr_scheduler not in SCHEDULERS:
        raise ConfigError(f"{source}: train.lr_scheduler {cfg.lr_scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    if base.max_seq_length < 16:
        raise ConfigError(f"{source}: base.max_seq_length {base.max_seq_length} is too short for a chat prompt")


def versions() -> dict:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def adapter_settings(base: BaseConfig, revision: str | None, cfg: TrainConfig, *, data_hash: str, run_key: str,
                     backend: str, hardware: dict, context: dict | None = None) -> dict:
    """vietlegal.json: enough to rebuild the base and to trace the adapter back to its inputs."""
    return {
        "base": {"model": base.model, "revision": revision},
        "max_seq_length": base.max_seq_length,
        "seed": base.seed,
        "train": dataclasses.asdict(cfg),
        "data_hash": data_hash,
        "run_key": run_key,
        "versions": versions(),
        "backend": backend,
        "hardware": hardware,
        "context": context or {"with_context": False},  # retrieved provisions in the training prompts (stage ground)
    }
