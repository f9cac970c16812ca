"""`vietlegal serve --model`: a model served as it is, or the base the adapters are served over.

    --model DIR (merged)   a merged model directory (`vietlegal export`: models/export/merged, its vietlegal.json
                           with `merged`): checked complete like an adapter, loaded whole with from_pretrained(DIR),
                           no PEFT, its base never resolved; it answers as `vietlegal-<merged.adapter_version[:12]>`,
                           the id `--adapter` gives the adapter folded into it. It serves alone.
    --model BASE           a hub id, a local model directory without a manifest (models/pretrained) or the tiny
                           model's id: alone, the base answers under that id, as /v1/models lists a base today;
                           with adapters (--adapter or serve.adapters), it must be the base each was trained on,
                           and they are served over it exactly as without --model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vietlegal.errors import AdapterError, ConfigError
from vietlegal.model import base as base_model
from vietlegal.model.adapter import SETTINGS_FILE, AdapterManifest, read_manifest
from vietlegal.serve.versions import model_info
from vietlegal.serve.versions.catalog import MODEL_ALIAS, Served, served_merged

NOT_TRAINED = "NOT_TRAINED.txt"  # stage align's note where it trained nothing: an adapter directory
PEFT_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class WholeModel:
    model: base_model.ResolvedBase  # what the worker loads with from_pretrained: the merged directory, or the base
    served: Served | None  # a merged directory's name and version; None: the base alone


def open_model(value: str, adapters: dict[str, Path], named_by: str,
               watch: bool) -> tuple[model_info.ModelInfo, WholeModel | None]:
    """(what the HTTP side knows, the model the worker loads whole, or None: adapters over the base `value` names).
    `adapters`: the ones to serve, from `named_by` (--adapter, or serve.adapters in the params file)."""
    model, manifest = given(value)
    if manifest is not None:
        if adapters:
            raise ConfigError(f"--model {value}: a merged model (an adapter folded into {manifest.base_model}) "
                              f"serves alone, but {named_by} names {', '.join(adapters)}: drop them, or serve the "
                              f"adapters over its base: --model {manifest.base_model} --adapter NAME=DIR")
        refuse_watch(value, watch)
        served = served_merged(MODEL_ALIAS, Path(value))  # complete, before anything of it is loaded
        return model_info.load_whole(model, manifest), WholeModel(model, served)
    if not adapters:
        refuse_watch(value, watch)
        return model_info.load_whole(model, None), WholeModel(model, None)
    for name, path in adapters.items():
        check_trained_on(value, model, name, path)
    return model_info.load(next(iter(adapters.values()))), None


def given(value: str) -> tuple[base_model.ResolvedBase, AdapterManifest | None]:
    """(the model `--model value` names, its manifest when it is a merged directory); an adapter directory is
    refused with the flag that serves it."""
    path = Path(value)
    if (path / SETTINGS_FILE).is_file() or (path / NOT_TRAINED).is_file():
        manifest = read_manifest(path)  # a NOT_TRAINED directory says why there is none
        if not manifest.merged:
            raise ConfigError(f"--model {value}: an adapter directory (its {SETTINGS_FILE} has no `merged`), not a "
                              f"model: serve it with --adapter {value} (over --model BASE to name its base)")
        return base_model.ResolvedBase(value, value, None), manifest
    if (path / PEFT_CONFIG).is_file():
        raise ConfigError(f"--model {value}: a LoRA adapter ({PEFT_CONFIG}), not a model: serve it with --adapter "
                          f"{value}")
    return base_model.resolve(value), None


def check_trained_on(value: str, model: base_model.ResolvedBase, name: str, path: Path) -> None:
    """The adapter was trained on the model --model names (same directory or hub id, revisions agreeing)."""
    manifest = read_manifest(path)
    theirs = base_model.resolve(manifest.base_model, manifest.base_revision)
    if not base_model.same_model(model, theirs):
        trained_on = manifest.base_model + (f"@{manifest.base_revision}" if manifest.base_revision else "")
        raise AdapterError(f"--model {value}: adapter {name!r} ({path}) was trained on {trained_on}, not on this "
                           f"model: pass --model {manifest.base_model}, or drop --model (adapters name their base)")


def refuse_watch(value: str, watch: bool) -> None:
    if watch:
        raise ConfigError(f"--watch follows adapter directories, and --model {value} serves none: drop --watch, or "
                          "serve adapters with --adapter NAME=DIR")
