"""Two ways to build the LoRA model, one way to train it.

    unsloth   FastLanguageModel (fused kernels, 4-bit, `use_gradient_checkpointing="unsloth"`): one CUDA GPU
    trl       transformers + PEFT: anywhere, and the only one for several processes (accelerate launch)

Both return a PEFT model (a new LoRA, or the SFT adapter to continue) that the same TRL trainers, data,
collators and chat template train, so the backend changes speed and memory, not what is learned. `auto` picks Unsloth only when a
CUDA GPU and the unsloth package are both there and the run is a single process. GPU-only
packages are imported inside the backend that uses them.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol

from vietlegal.errors import ConfigError, HardwareError
from vietlegal.params import TRAIN_BACKENDS, TrainConfig
from vietlegal.train.hardware import Hardware

CHOICES = TRAIN_BACKENDS


class Backend(Protocol):
    name: str

    def load_model(self, base, cfg: TrainConfig, max_seq_length: int, seed: int, precision: str):
        """The base model with LoRA applied, ready for SFTTrainer."""

    def load_adapter(self, base, adapter_dir: Path, cfg: TrainConfig, max_seq_length: int, seed: int,
                     precision: str):
        """The base model with a trained LoRA adapter on it, trainable: what preference tuning continues."""

    def trainer_overrides(self, cfg: TrainConfig) -> dict:
        """SFTConfig fields this backend sets differently."""


def unsloth_installed() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def select(requested: str, hw: Hardware, processes: int, has_unsloth: bool | None = None) -> str:
    if requested not in CHOICES:
        raise ConfigError(f"params.yaml: train.backend {requested!r} is not one of {', '.join(CHOICES)}")
    has_unsloth = unsloth_installed() if has_unsloth is None else has_unsloth
    if requested == "trl":
        return "trl"
    if requested == "unsloth":
        if hw.device != "cuda":
            raise HardwareError("train.backend: unsloth needs a CUDA GPU; use train.backend: auto (or trl) on this machine")
        if not has_unsloth:
            raise HardwareError("train.backend: unsloth but the unsloth package is not installed: "
                                "`make gpu` (requirements-gpu.txt), or use train.backend: auto")
        if processes > 1:
            raise HardwareError(f"train.backend: unsloth trains on one GPU, but {processes} processes were launched; "
                                "use train.backend: auto (or trl) with accelerate launch")
        return "unsloth"
    return "unsloth" if hw.device == "cuda" and has_unsloth and processes == 1 else "trl"


def get(name: str) -> Backend:
    """The backend object; importing Unsloth's module also imports unsloth itself, which must
    happen before transformers/trl/peft are imported so that its patches apply."""
    if name == "unsloth":
        from vietlegal.train.unsloth_backend import UnslothBackend

        return UnslothBackend()
    from vietlegal.train.trl_backend import TrlBackend

    return TrlBackend()

