"""What the HTTP process knows about the served model without loading its weights.

The tokenizer (to build and count prompts), the context window (to refuse what cannot fit)
and the base it was trained on; each version's hash is the catalog's (serve/catalog.py). All of it
comes from the adapter directory and its manifest, so a machine that only pulled the adapter can serve it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vietlegal.model import adapter
from vietlegal.model import base as base_model


@dataclass
class ModelInfo:
    adapter_dir: Path
    manifest: adapter.AdapterManifest
    base: base_model.ResolvedBase
    tokenizer: object
    context: int
    vocab_size: int  # the model's output vocabulary: what a grammar's token mask covers


def load(adapter_dir: str | Path) -> ModelInfo:
    adapter_dir = Path(adapter_dir)
    manifest = adapter.read_manifest(adapter_dir)
    base = base_model.resolve(manifest.base_model, manifest.base_revision)
    tokenizer = adapter.load_tokenizer(adapter_dir, base.model_id)
    config = base_model.config_of(base)
    return ModelInfo(adapter_dir, manifest, base, tokenizer, base_model.context_window(config), int(config.vocab_size))
