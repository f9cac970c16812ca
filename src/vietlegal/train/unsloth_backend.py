"""Unsloth on one CUDA GPU: the seed's setup (4-bit when configured, Unsloth gradient checkpointing).

`unsloth` is imported when this backend is built and never on a CPU machine. The params ->
Unsloth argument mapping is in two pure functions so it can be checked without a GPU.
"""
from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from vietlegal.errors import BaseModelError
from vietlegal.model.tiny import cache_root
from vietlegal.params import TrainConfig
from vietlegal.train.lora import DTYPES, lora_settings

COMPILE_LOCATION = "UNSLOTH_COMPILE_LOCATION"


def compile_location() -> Path:
    """Where Unsloth writes the modules it generates: the user's cache, per Unsloth version, never the checkout
    (its default is ./unsloth_compiled_cache, which dvc and git would then see). A location already set wins."""
    if os.environ.get(COMPILE_LOCATION):
        return Path(os.environ[COMPILE_LOCATION])
    try:
        version = importlib.metadata.version("unsloth")
    except importlib.metadata.PackageNotFoundError:  # a source checkout of unsloth: no version to separate by
        version = "unversioned"
    return cache_root() / "unsloth_compiled_cache" / version


class UnslothBackend:
    name = "unsloth"

    def __init__(self) -> None:
        # Unsloth reads the location once, when unsloth_zoo.compiler is first imported.
        os.environ[COMPILE_LOCATION] = str(compile_location())
        import unsloth  # noqa: F401  - patches transformers/trl/peft; must come before them

    def load_model(self, base, cfg: TrainConfig, max_seq_length: int, seed: int, precision: str):
        from unsloth import FastLanguageModel

        model = load_base(base, cfg, max_seq_length, seed, precision)
        return FastLanguageModel.get_peft_model(model, **peft_kwargs(cfg, seed))

    def load_adapter(self, base, adapter_dir: Path, cfg: TrainConfig, max_seq_length: int, seed: int,
                     precision: str):
        from peft import PeftModel
        from unsloth import FastLanguageModel

        model = load_base(base, cfg, max_seq_length, seed, precision)
        # What FastLanguageModel.from_pretrained does itself when given an adapter directory (unsloth 2026.10.9,
        # models/loader.py): the base as configured, PeftModel.from_pretrained(is_trainable=True), patch_peft_model.
        # Loading the base here keeps base.revision and use_exact_model_name, which its own path reads elsewhere.
        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
        return FastLanguageModel.patch_peft_model(model, "unsloth" if cfg.gradient_checkpointing else False)

    def trainer_overrides(self, cfg: TrainConfig) -> dict:
        # Unsloth checkpoints through get_peft_model(use_gradient_checkpointing="unsloth"); HF's would double it
        return {"gradient_checkpointing": False}


def load_base(base, cfg: TrainConfig, max_seq_length: int, seed: int, precision: str):
    from unsloth import FastLanguageModel

    try:
        model, _ = FastLanguageModel.from_pretrained(**from_pretrained_kwargs(base, cfg, max_seq_length, seed, precision))
    except OSError as exc:
        raise BaseModelError(
            f"could not load the weights of {base.model_id!r} (revision {base.revision}): "
            f"{str(exc).splitlines()[0] if str(exc) else exc!r}"
        ) from exc
    # Unsloth's own tokenizer is discarded: training, evaluation and serving share vietlegal.model.base.load_tokenizer's
    return model


def from_pretrained_kwargs(base, cfg: TrainConfig, max_seq_length: int, seed: int, precision: str) -> dict:
    import torch

    return {
        "model_name": base.path,
        "revision": base.revision if base.hub_kwargs() else None,
        "token": base.hub_kwargs().get("token"),
        "max_seq_length": max_seq_length,
        # Explicit, fp32 too: Unsloth's None means its own pick (bf16 where the hardware has it), which would
        # train a model in another precision than the trainer's.
        "dtype": getattr(torch, DTYPES[precision]),
        "load_in_4bit": cfg.load_in_4bit,
        # Unsloth swaps hub ids for its own pre-quantised mirrors unless told not to; the pinned
        # base.revision is a commit of the repo the user named, so load exactly that repo.
        "use_exact_model_name": True,
        "resize_model_vocab": None,
        "random_state": seed,
    }


def peft_kwargs(cfg: TrainConfig, seed: int) -> dict:
    return {
        **lora_settings(cfg),
        "use_gradient_checkpointing": "unsloth" if cfg.gradient_checkpointing else False,
        "random_state": seed,
        "use_rslora": False,
        "modules_to_save": None,  # vLLM cannot serve adapters with modules_to_save
    }
