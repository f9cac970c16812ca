"""Which adapter version is being served: the md5 DVC gives its directory, confirmed by dvc.lock when tracked.

The hash is computed from the files, the way DVC computes a directory output's md5, so a version copied over
a tracked directory is never named after the stale dvc.lock entry; `source` says whether dvc.lock records
exactly these bytes. The served model id and `system_fingerprint` carry it, so every answer traces back to
the params and data recorded for that version in dvc.lock / git.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from vietlegal.model.adapter import dir_md5

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


def adapter_version(adapter_dir: str | Path, tracked_as: str | Path | None = None,
                    digests: dict[str, str] | None = None) -> AdapterVersion:
    """`tracked_as`: where dvc.lock knows the directory, when `adapter_dir` is a copy of it (a snapshot);
    `digests`: its files' md5s (model.adapter.file_digests with the manifest), when already computed."""
    md5 = dir_md5(adapter_dir, digests)
    return AdapterVersion(md5[:12], "dvc.lock" if dvc_hash(Path(tracked_as or adapter_dir)) == md5 else "content")


@dataclass(frozen=True)
class BaseVersion:
    """The base model with no adapter (listed and answered like vLLM's base entry)."""

    model_id: str
    revision: str | None = None
    source: str = "base"

    @property
    def hash(self) -> str:
        return "base"

    @property
    def fingerprint(self) -> str:
        return "fp_base" + (f"_{self.revision[:12]}" if self.revision else "")


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
