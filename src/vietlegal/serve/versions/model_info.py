"""What the HTTP process knows about the served model without loading its weights.

The tokenizer (to build and count prompts), the context window (to refuse what cannot fit)
and the base it was trained on; each version's hash is the catalog's (serve/catalog.py). All of it
comes from the adapter directory and its manifest, so a machine that only pulled the adapter can serve it;
for a model served whole (`--model`: a merged directory or a base alone), from that model's own files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vietlegal.model import adapter
from vietlegal.model import base as base_model
from vietlegal.serve.versions.version import BaseVersion


@dataclass
class ModelInfo:
    manifest: adapter.AdapterManifest | None  # None for a base served alone
    base: BaseVersion  # the base the adapters (or the merged one) were trained on, or the base served alone
    tokenizer: object
    context: int
    vocab_size: int  # the model's output vocabulary: what a grammar's token mask covers


def load(adapter_dir: str | Path) -> ModelInfo:
    adapter_dir = Path(adapter_dir)
    manifest = adapter.read_manifest(adapter_dir)
    base = base_model.resolve(manifest.base_model, manifest.base_revision)
    tokenizer = adapter.load_tokenizer(adapter_dir, base.model_id)
    return _info(manifest, BaseVersion(base.model_id, base.revision), tokenizer, base_model.config_of(base))


def load_whole(model: base_model.ResolvedBase, manifest: adapter.AdapterManifest | None) -> ModelInfo:
    """A model served as it is: its own tokenizer and config. A merged directory's base is only named (from its
    manifest), never resolved: the in-house machine need not have it."""
    base = BaseVersion(manifest.base_model, manifest.base_revision) if manifest else BaseVersion(model.model_id,
                                                                                                 model.revision)
    return _info(manifest, base, base_model.load_tokenizer(model), base_model.config_of(model))


def _info(manifest, base: BaseVersion, tokenizer, config) -> ModelInfo:
    return ModelInfo(manifest, base, tokenizer, base_model.context_window(config), int(config.vocab_size))
