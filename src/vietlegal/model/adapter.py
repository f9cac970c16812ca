"""The adapter directory: what `train` writes and `generate`, `perplexity` and `serve` read.

    models/adapter/
      adapter_config.json, adapter_model.safetensors   PEFT LoRA (no modules_to_save, vocab unchanged)
      tokenizer.json, tokenizer_config.json, ...       the tokenizer with its chat template
      vietlegal.json                                   the manifest: base model id + revision, params,
                                                       data hash, library versions, backend, hardware

`vietlegal.json` is read only through `AdapterManifest`; it is enough to rebuild the base on a machine that
never trained (serving droplet).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from vietlegal.errors import AdapterError

SETTINGS_FILE = "vietlegal.json"
NO_CONTEXT = {"with_context": False}


@dataclass(frozen=True)
class AdapterManifest:
    """vietlegal.json: enough to rebuild the base and to trace the adapter back to its inputs."""

    base_model: str
    base_revision: str | None = None
    max_seq_length: int | None = None
    seed: int | None = None
    train: dict = field(default_factory=dict)  # the resolved train section
    data_hash: str | None = None
    run_key: str | None = None
    versions: dict = field(default_factory=dict)
    backend: str | None = None
    hardware: dict = field(default_factory=dict)
    context: dict = field(default_factory=lambda: dict(NO_CONTEXT))  # retrieved provisions in training prompts

    @property
    def trained_with_context(self) -> bool:
        return bool(self.context.get("with_context"))

    def to_json(self) -> dict:
        return {
            "base": {"model": self.base_model, "revision": self.base_revision},
            "max_seq_length": self.max_seq_length,
            "seed": self.seed,
            "train": self.train,
            "data_hash": self.data_hash,
            "run_key": self.run_key,
            "versions": self.versions,
            "backend": self.backend,
            "hardware": self.hardware,
            "context": self.context,
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> AdapterManifest:
        base = data.get("base") if isinstance(data, dict) else None
        if not isinstance(base, dict) or not isinstance(base.get("model"), str) or not base["model"]:
            raise AdapterError(f"{where}: missing base.model; retrain or fix the file")
        fields = {k: data[k] for k in ("max_seq_length", "seed", "train", "data_hash", "run_key", "versions",
                                       "backend", "hardware", "context") if data.get(k) is not None}
        return cls(base["model"], base.get("revision"), **fields)

    def write(self, adapter_dir: str | Path) -> None:
        text = json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n"
        (Path(adapter_dir) / SETTINGS_FILE).write_text(text, encoding="utf-8")


def read_manifest(adapter_dir: str | Path) -> AdapterManifest:
    path = Path(adapter_dir) / SETTINGS_FILE
    if not path.exists():
        raise AdapterError(
            f"{path}: not found. Train one with `dvc repro train`, or fetch the pushed one with "
            f"`dvc pull {Path(adapter_dir).as_posix()}`"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterError(f"{path}: not valid JSON ({exc}); retrain, or `dvc pull` the adapter again") from None
    return AdapterManifest.from_json(data, str(path))


def content_hash(adapter_dir: str | Path) -> str:
    """A short hash of the adapter's weights and config: names the version being served."""
    h = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        p = Path(adapter_dir) / name
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def load_base_for(manifest: AdapterManifest, device: str = "cpu", dtype=None):
    """Load the base model and tokenizer an adapter was trained on."""
    from transformers import AutoModelForCausalLM

    from vietlegal.model import base as base_model

    base = base_model.resolve(manifest.base_model, manifest.base_revision)
    tokenizer = base_model.load_tokenizer(base)
    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=dtype or "auto", **base.hub_kwargs())
    return model.to(device).eval(), tokenizer


def load_for_inference(adapter_dir: str | Path, device: str = "cpu", dtype=None):
    """(model with the adapter applied, the adapter's tokenizer, manifest)."""
    from peft import PeftModel

    manifest = read_manifest(adapter_dir)
    model, _ = load_base_for(manifest, device, dtype)
    model = PeftModel.from_pretrained(model, str(adapter_dir)).to(device).eval()
    return model, load_tokenizer(adapter_dir, manifest.base_model), manifest


def load_tokenizer(adapter_dir: str | Path, model_id: str):
    """The tokenizer saved with the adapter (its chat template is the one training used)."""
    from transformers import AutoTokenizer

    from vietlegal.model.base import ensure_pad_token

    return ensure_pad_token(AutoTokenizer.from_pretrained(str(adapter_dir)), model_id)
