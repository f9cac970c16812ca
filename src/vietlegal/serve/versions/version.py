"""Which adapter version is being served: the md5 DVC gives its directory, confirmed by dvc.lock when tracked.

The hash is computed from the files, the way DVC computes a directory output's md5, so a version copied over
a tracked directory is never named after the stale dvc.lock entry; `source` says whether dvc.lock records
exactly these bytes. The served model id and `system_fingerprint` carry it, so every answer traces back to
the params and data recorded for that version in dvc.lock / git. A merged model directory (`vietlegal export`)
answers under the version of the adapter folded into it (`source` "merged"): the same id `--adapter` gives that
adapter, so its answers trace to the same training run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from vietlegal.errors import AdapterError
from vietlegal.model.adapter import SETTINGS_FILE, AdapterManifest, dir_md5

MODEL_PREFIX = "vietlegal-"
MERGED_SOURCE = "merged"  # the version named by a merged directory's manifest, not by its own bytes


@dataclass(frozen=True)
class AdapterVersion:
    hash: str  # 12 hex digits
    source: str  # "dvc.lock", "content" or "merged"

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


def merged_version(manifest: AdapterManifest, merged_dir: str | Path) -> AdapterVersion:
    """The version of the adapter a merged directory holds: its manifest's `merged.adapter_version` (the adapter
    directory's md5 when it was exported), shortened as `adapter_version` shortens it."""
    md5 = manifest.merged.get("adapter_version")
    if not isinstance(md5, str) or len(md5) != 32 or not all(c in "0123456789abcdef" for c in md5):
        raise AdapterError(f"{Path(merged_dir) / SETTINGS_FILE}: merged.adapter_version is {md5!r}, not an md5; "
                           "export it again with `dvc repro export`")
    return AdapterVersion(md5[:12], MERGED_SOURCE)


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
