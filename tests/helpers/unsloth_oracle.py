"""Answers with the real Unsloth (run by tests/helpers/gpu_packages.Oracle in the side environment), as
tests/helpers/vllm_oracle.py does for vLLM. The project's UnslothBackend is built first, so Unsloth is imported
the way the train stage imports it (before transformers, trl and peft; its compile location set by the project).

Without a GPU, `import unsloth` takes one of two shapes: with UNSLOTH_ALLOW_CPU=1 (Unsloth's own switch for
CPU-only CI) the GPU classes, whose signatures can be read but whose loading needs CUDA; without it, Unsloth's CPU
fallback (unsloth_zoo.cpu), which loads, wraps and trains the tiny model for real.

    {"op": "signatures"}                                  named parameters of the FastLanguageModel methods the backend calls
    {"op": "load", "from_pretrained": {...}, "peft": {...}}  the two calls, raw ("dtype" by name: "float32")
    {"op": "backend", "train": {TrainConfig fields}, "precision", "max_seq_length", "seed"}
                                                          the project's UnslothBackend.load_model on the tiny model
    {"op": "train", "work": DIR, "steps": N}              benchmarks/gpu_smoke.py's training step, backend unsloth
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import os
from pathlib import Path

from tests.helpers.gpu_packages import answer_requests, take_stdout

CHANNEL = take_stdout()
ROOT = Path(__file__).resolve().parents[2]

from vietlegal.train.unsloth_backend import UnslothBackend  # noqa: E402 - after the channel is set apart

BACKEND = UnslothBackend()  # sets UNSLOTH_COMPILE_LOCATION, imports unsloth first


def parameters(fn) -> list[list]:
    return [[p.name, p.kind.name] for p in inspect.signature(fn).parameters.values()]


def signatures() -> dict:
    from unsloth import FastLanguageModel

    return {"ok": True, "class": f"{FastLanguageModel.__module__}.{FastLanguageModel.__qualname__}",
            "from_pretrained": parameters(FastLanguageModel.from_pretrained),
            "get_peft_model": parameters(FastLanguageModel.get_peft_model),
            "patch_peft_model": parameters(FastLanguageModel.patch_peft_model)}


def lora_summary(model) -> dict:
    config = model.peft_config["default"]
    return {"r": config.r, "lora_alpha": config.lora_alpha, "lora_dropout": config.lora_dropout,
            "target_modules": sorted(config.target_modules), "modules_to_save": config.modules_to_save,
            "bias": config.bias, "dtype": str(next(model.parameters()).dtype), "type": type(model).__name__}


def load(from_pretrained: dict, peft: dict) -> dict:
    import torch
    from unsloth import FastLanguageModel

    if isinstance(from_pretrained.get("dtype"), str):
        from_pretrained["dtype"] = getattr(torch, from_pretrained["dtype"])
    try:
        model, _ = FastLanguageModel.from_pretrained(**from_pretrained)
    except Exception as exc:  # noqa: BLE001 - a refusal is an answer
        return {"ok": False, "stage": "from_pretrained", "error": f"{type(exc).__name__}: {str(exc)[:400]}"}
    try:
        return {"ok": True, **lora_summary(FastLanguageModel.get_peft_model(model, **peft))}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "stage": "get_peft_model", "error": f"{type(exc).__name__}: {str(exc)[:400]}"}


def backend(train: dict, precision: str, max_seq_length: int, seed: int) -> dict:
    from vietlegal.model import base as base_model
    from vietlegal.params import TrainConfig

    model = BACKEND.load_model(base_model.resolve("vietlegal/tiny-llama"), TrainConfig(**train), max_seq_length, seed,
                               precision)
    return {"ok": True, **lora_summary(model), "overrides": BACKEND.trainer_overrides(TrainConfig(**train)),
            "compile_location": os.environ.get("UNSLOTH_COMPILE_LOCATION")}


def train(work: str, steps: int) -> dict:
    spec = importlib.util.spec_from_file_location("gpu_smoke", ROOT / "benchmarks" / "gpu_smoke.py")
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    adapter, figure = smoke.train_adapter(Path(work), "unsloth", steps, precision="fp32")
    return {"ok": True, "figure": figure, "files": sorted(p.name for p in adapter.iterdir()),
            "manifest": json.loads((adapter / "vietlegal.json").read_text(encoding="utf-8"))}


def main() -> None:
    answer_requests(CHANNEL, {"signatures": signatures, "load": load, "backend": backend, "train": train})


if __name__ == "__main__":
    main()
