"""Which adapter version is being served: its DVC hash from dvc.lock, else a hash of its files.

The served model id and `system_fingerprint` carry it, so every answer traces back to the
params and data recorded for that version in dvc.lock / git.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from vietlegal.model.adapter import content_hash

MODEL_PREFIX = "vietlegal-"


@dataclass(frozen=True)
class AdapterVersion:
    hash: str  # 12 hex digits
    source: str  # "dvc.lock" or "content"

    @property
    def model_id(self) -> str:
        return MODEL_PREFIX + self.hash

    @property
    def fingerprint(self) -> str:
        return "fp_" + self.hash


def adapter_version(adapter_dir: str | Path) -> AdapterVersion:
    locked = dvc_hash(Path(adapter_dir))
    if locked:
        return AdapterVersion(locked[:12], "dvc.lock")
    return AdapterVersion(content_hash(adapter_dir), "content")


def dvc_hash(adapter_dir: Path) -> str | None:
    """The md5 dvc.lock records for an output at adapter_dir (the nearest dvc.lock above it)."""
    target = adapter_dir.resolve()
    for root in target.parents:
        lock = root / "dvc.lock"
        if lock.is_file():
            return _locked_md5(lock, target)
    return None


def _locked_md5(lock: Path, target: Path) -> str | None:
    data = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
    for stage in (data.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if (lock.parent / out.get("path", "")).resolve() == target and out.get("md5"):
                return str(out["md5"]).removesuffix(".dir")
    return None
