"""The adapter directory: what `train` writes and `generate`, `perplexity` and `serve` read.

    models/adapter/  (and models/aligned/, the same layout: stage align's preference-tuned copy)
      adapter_config.json, adapter_model.safetensors   PEFT LoRA (no modules_to_save, vocab unchanged)
      tokenizer.json, tokenizer_config.json, ...       the tokenizer with its chat template
      vietlegal.json                                   the manifest: base model id + revision, params,
                                                       data hash, library versions, backend, hardware,
                                                       and the md5 of every other file (`files`)

`vietlegal.json` is read only through `AdapterManifest`; it is enough to rebuild the base on a machine that
never trained (serving droplet).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from vietlegal.errors import AdapterError, AdapterIncomplete

SETTINGS_FILE = "vietlegal.json"
BASE_ADAPTER = "__base__"  # PEFT's name, in a mixed-adapter batch, for rows decoded without an adapter
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
    files: dict = field(default_factory=dict)  # relpath -> md5 of every other file: a half-copied directory shows
    align: dict | None = None  # stage align: preference tuning of the SFT adapter (params, its version, pairs)
    # Set on an export (vietlegal.export): the adapter folded into the weights, {"adapter_version": its directory
    # md5, "dtype": ...}; such a directory is a whole model, loaded without PEFT.
    merged: dict = field(default_factory=dict)

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
            "files": self.files,
            **({"align": self.align} if self.align is not None else {}),  # an SFT adapter's file is unchanged
            **({"merged": self.merged} if self.merged else {}),  # absent on adapters: their bytes stay as they were
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> AdapterManifest:
        base = data.get("base") if isinstance(data, dict) else None
        if not isinstance(base, dict) or not isinstance(base.get("model"), str) or not base["model"]:
            raise AdapterError(f"{where}: missing base.model; retrain or fix the file")
        fields = {k: data[k] for k in ("max_seq_length", "seed", "train", "data_hash", "run_key", "versions",
                                       "backend", "hardware", "context", "files", "align", "merged") if data.get(k) is not None}
        return cls(base["model"], base.get("revision"), **fields)

    def write(self, adapter_dir: str | Path) -> None:
        text = json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n"
        (Path(adapter_dir) / SETTINGS_FILE).write_text(text, encoding="utf-8")


def read_manifest(adapter_dir: str | Path) -> AdapterManifest:
    path = Path(adapter_dir) / SETTINGS_FILE
    if not path.exists():
        why = Path(adapter_dir) / "NOT_TRAINED.txt"  # stage align with nothing to train says why there
        if why.is_file():
            raise AdapterIncomplete(f"{adapter_dir}: no adapter was trained here: "
                                    f"{why.read_text(encoding='utf-8').strip()} (docs/review.md: `dvc repro align`)")
        raise AdapterIncomplete(
            f"{path}: not found. Train one with `dvc repro train`, or fetch the pushed one with "
            f"`dvc pull {Path(adapter_dir).as_posix()}`"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterIncomplete(f"{path}: not valid JSON ({exc}); retrain, or `dvc pull` the adapter again") from None
    return AdapterManifest.from_json(data, str(path))


def file_digests(adapter_dir: str | Path, manifest_too: bool = False) -> dict[str, str]:
    """relpath -> md5 of every file in the directory (DVC's per-file hash), sorted; the manifest only if asked."""
    root = Path(adapter_dir)
    found = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
    return {rel: _md5(p) for rel, p in sorted(found.items()) if manifest_too or rel != SETTINGS_FILE}


def dir_md5(adapter_dir: str | Path, digests: dict[str, str] | None = None) -> str:
    """The md5 DVC records for this directory as an output (`<md5>.dir` in dvc.lock): the md5 of its sorted
    file list, so the same bytes get the same version whether or not DVC tracks them. `digests`: the directory's
    `file_digests(..., manifest_too=True)`, when already computed."""
    digests = file_digests(adapter_dir, manifest_too=True) if digests is None else digests
    entries = [{"md5": md5, "relpath": rel} for rel, md5 in sorted(digests.items())]
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest()


def check_complete(adapter_dir: str | Path, digests: dict[str, str] | None = None) -> AdapterManifest:
    """The manifest, once every file it lists is there with its md5; AdapterError naming the first that is not
    (a copy or `dvc pull` still writing, or a broken copy). `digests`: the directory's `file_digests`, if known."""
    manifest = read_manifest(adapter_dir)
    if not manifest.files:
        raise AdapterError(f"{Path(adapter_dir) / SETTINGS_FILE}: lists no files, so a half-copied directory cannot "
                           "be told from a complete one; retrain with this version (it records them)")
    digests = file_digests(adapter_dir) if digests is None else digests
    for name, md5 in sorted(manifest.files.items()):
        path = Path(adapter_dir) / name
        if name not in digests:
            raise AdapterIncomplete(f"{path}: missing (the manifest lists it)")
        if digests[name] != md5:
            raise AdapterIncomplete(f"{path}: md5 differs from the manifest's (still being written, or not this version)")
    return manifest


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_base_for(manifest: AdapterManifest, device: str = "cpu", dtype=None):
    """Load the base model and tokenizer an adapter was trained on."""
    from vietlegal.model import base as base_model

    base = base_model.resolve(manifest.base_model, manifest.base_revision)
    return base_model.load_model(base, device, dtype), base_model.load_tokenizer(base)


def load_for_inference(adapter_dir: str | Path, device: str = "cpu", dtype=None):
    """(model with the adapter applied, the adapter's tokenizer, manifest)."""
    from peft import PeftModel

    manifest = read_manifest(adapter_dir)
    model, _ = load_base_for(manifest, device, dtype)
    model = PeftModel.from_pretrained(model, str(adapter_dir)).to(device).eval()
    return model, load_tokenizer(adapter_dir, manifest.base_model), manifest


def load_adapters(adapters: dict[str, str | Path], device: str = "cpu", dtype=None):
    """One copy of the base with every adapter loaded under its name (a PeftModel whose rows `model.mixed_lora`
    routes each through its own adapter, `BASE_ADAPTER` for none). All must share the base and revision."""
    from peft import PeftModel

    (first, first_dir), *rest = adapters.items()
    manifest = read_manifest(first_dir)
    for name, adapter_dir in rest:
        other = read_manifest(adapter_dir)
        if (other.base_model, other.base_revision) != (manifest.base_model, manifest.base_revision):
            raise AdapterError(f"{adapter_dir}: trained on {other.base_model}@{other.base_revision}, but {first_dir} on "
                               f"{manifest.base_model}@{manifest.base_revision}: adapters served together share one base")
    model, _ = load_base_for(manifest, device, dtype)
    model = PeftModel.from_pretrained(model, str(first_dir), adapter_name=first)
    for name, adapter_dir in rest:
        model.load_adapter(str(adapter_dir), adapter_name=name)
    return model.to(device).eval()


def load_tokenizer(adapter_dir: str | Path, model_id: str):
    """The tokenizer saved with the adapter (its chat template is the one training used)."""
    from transformers import AutoTokenizer

    from vietlegal.model.base import ensure_pad_token

    return ensure_pad_token(AutoTokenizer.from_pretrained(str(adapter_dir)), model_id)
