"""The adapter directory: what `train` writes and `evaluate` / `serve` read.

    models/adapter/
      adapter_config.json, adapter_model.safetensors   PEFT LoRA (no modules_to_save, vocab unchanged)
      tokenizer.json, tokenizer_config.json, ...       the tokenizer with its chat template
      vietlegal.json                                   resolved settings: base model id + revision, params,
                                                       data hash, library versions, backend, hardware

`vietlegal.json` is enough to rebuild the base on a machine that never trained (serving droplet).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

SETTINGS_FILE = "vietlegal.json"


class AdapterError(RuntimeError):
    pass


def read_settings(adapter_dir: str | Path) -> dict:
    path = Path(adapter_dir) / SETTINGS_FILE
    if not path.exists():
        raise AdapterError(
            f"{path}: not found. Train one with `dvc repro train`, or fetch the pushed one with "
            f"`dvc pull {Path(adapter_dir).as_posix()}`"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def content_hash(adapter_dir: str | Path) -> str:
    """A short hash of the adapter's weights and config: names the version being served."""
    h = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        p = Path(adapter_dir) / name
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def load_base_for(settings: dict, device: str = "cpu", dtype=None):
    """Load the base model and tokenizer an adapter was trained on."""
    from transformers import AutoModelForCausalLM

    from vietlegal import base_model

    base = base_model.resolve(settings["base"]["model"], settings["base"].get("revision"))
    tokenizer = base_model.load_tokenizer(base)
    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=dtype or "auto", **base.hub_kwargs())
    return model.to(device).eval(), tokenizer


def load_for_inference(adapter_dir: str | Path, device: str = "cpu", dtype=None):
    """(model with the adapter applied, the adapter's tokenizer, settings)."""
    from peft import PeftModel

    settings = read_settings(adapter_dir)
    model, _ = load_base_for(settings, device, dtype)
    model = PeftModel.from_pretrained(model, str(adapter_dir)).to(device).eval()
    return model, load_tokenizer(adapter_dir, settings["base"]["model"]), settings


def load_tokenizer(adapter_dir: str | Path, model_id: str):
    """The tokenizer saved with the adapter (its chat template is the one training used)."""
    from transformers import AutoTokenizer

    from vietlegal.base_model import ensure_pad_token

    return ensure_pad_token(AutoTokenizer.from_pretrained(str(adapter_dir)), model_id)
