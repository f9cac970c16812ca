"""Write the adapter directory atomically (see vietlegal.model.adapter for its layout).

Everything goes to a temporary sibling first and is renamed into place at the end, so a crash at
any point leaves either the previous adapter or none, never a half-written one that `serve` or
`dvc push` would pick up.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

from vietlegal.model.adapter import AdapterManifest, file_digests

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# A pickle of TrainingArguments (vietlegal.json holds the settings) and PEFT's model-card template, which
# names this machine's cache path as the base.
NOT_SHIPPED = ("training_args.bin", "README.md")


def staging_dir(out_dir: Path) -> Path:
    return out_dir.parent / f".{out_dir.name}.partial"


def save_weights(trainer, out_dir: Path) -> Path:
    """All processes call this: FSDP and ZeRO-3 gather the sharded LoRA weights collectively."""
    staging = staging_dir(out_dir)
    if trainer.accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(staging))
    trainer.accelerator.wait_for_everyone()
    return staging


def finish(staging: Path, out_dir: Path, tokenizer, manifest: AdapterManifest) -> None:
    """Main process only: tokenizer, settings, checks, then the rename."""
    for name in NOT_SHIPPED:
        (staging / name).unlink(missing_ok=True)
    tokenizer.save_pretrained(str(staging))
    config_path = staging / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    check_servable(config, staging)
    # The local cache path PEFT recorded means nothing on another machine; name the base instead.
    config["base_model_name_or_path"] = manifest.base_model
    config["revision"] = manifest.base_revision
    # PEFT keeps target_modules as a set and writes it in hash order, which differs with every process's
    # PYTHONHASHSEED: sorted, the adapter's bytes (its content hash, its DVC md5) are a function of the params.
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    # Written last and listing every other file's md5: a server watching the directory loads it only once all
    # of them match (serve --watch), never a half-copied version.
    dataclasses.replace(manifest, files=file_digests(staging)).write(staging)
    replace_dir(staging, out_dir)


def check_servable(config: dict, staging: Path) -> None:
    missing = [n for n in ADAPTER_FILES if not (staging / n).exists()]
    if missing:
        raise RuntimeError(f"adapter save wrote no {missing} in {staging}")
    if config.get("modules_to_save"):
        raise RuntimeError(f"adapter has modules_to_save={config['modules_to_save']}; vLLM cannot serve it")
    from safetensors import safe_open

    with safe_open(str(staging / "adapter_model.safetensors"), framework="pt") as f:
        full = [k for k in f.keys() if "lora_" not in k]
    if full:
        raise RuntimeError(f"adapter carries full (non-LoRA) tensors such as {full[0]}; vLLM cannot serve it")


def replace_dir(new: Path, target: Path) -> None:
    old = target.parent / f".{target.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)
