"""What ran: the adapter manifest (vietlegal.json) a training run (train, align) writes beside its weights."""
from __future__ import annotations

import dataclasses
from importlib import metadata

from vietlegal.model.adapter import NO_CONTEXT, AdapterManifest
from vietlegal.params import AlignConfig, BaseConfig, TrainConfig

LIBRARIES = ("vietlegal", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers", "dvclive",
             "unsloth", "bitsandbytes")


def versions() -> dict:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def adapter_manifest(base: BaseConfig, revision: str | None, cfg: TrainConfig, *, data_hash: str, run_key: str,
                     backend: str, hardware: dict, context: dict | None = None) -> AdapterManifest:
    """Enough to rebuild the base and to trace the adapter back to its inputs."""
    return AdapterManifest(
        base_model=base.model,
        base_revision=revision,
        max_seq_length=base.max_seq_length,
        seed=base.seed,
        train=dataclasses.asdict(cfg),
        data_hash=data_hash,
        run_key=run_key,
        versions=versions(),
        backend=backend,
        hardware=hardware,
        context=context or dict(NO_CONTEXT),  # retrieved provisions in the training prompts (stage ground)
    )


def aligned_manifest(sft: AdapterManifest, sft_version: str, base: BaseConfig, cfg: AlignConfig, *, data_hash: str,
                     run_key: str, backend: str, hardware: dict, pairs: dict) -> AdapterManifest:
    """The SFT adapter's manifest carried over (same base, LoRA shape, training context), plus what aligned it:
    the align params, the SFT version it started from, and the pairs it was trained and scored on."""
    return dataclasses.replace(
        sft, max_seq_length=base.max_seq_length, seed=base.seed, data_hash=data_hash, run_key=run_key,
        versions=versions(), backend=backend, hardware=hardware, files={},
        align={"params": dataclasses.asdict(cfg), "sft": {"version": sft_version, "run_key": sft.run_key,
                                                          "data_hash": sft.data_hash}, "pairs": pairs},
    )
