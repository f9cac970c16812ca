"""Resumable runs: checkpoints live under a key of everything that shapes the result.

    models/checkpoints/<run key>/checkpoint-<step>/   (a `persist: true` DVC output)

The run key hashes the base and train params, the resolved base revision, the training data, the
backend and the number of processes. On start the latest complete checkpoint of the same key is
resumed and every other key's directory is deleted, so a params or data change can never resume
stale state. transformers writes `trainer_state.json` last, so a checkpoint without it was cut
off mid-write (SIGKILL) and is discarded.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from pathlib import Path

from vietlegal.params import BaseConfig, TrainConfig

STATE_FILE = "trainer_state.json"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# Where things go and how fast, not what is learned: changing them must not restart training.
NOT_IN_KEY = ("out_dir", "checkpoint_dir", "cpu_threads")


def data_hash(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def key_of(payload: dict) -> str:
    """A short, stable hash of everything that shapes a result."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def run_key(base: BaseConfig, cfg: TrainConfig, revision: str | None, data: str, backend: str, processes: int) -> str:
    train = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_IN_KEY}
    return key_of({
        "base": {**dataclasses.asdict(base), "revision": revision},
        "train": train,
        "data": data,
        "backend": backend,
        "processes": processes,
    })


def step_of(checkpoint: Path) -> int | None:
    """The global step a checkpoint was saved at; None when it is incomplete."""
    if not CHECKPOINT.match(checkpoint.name):
        return None
    try:
        return int(json.loads((checkpoint / STATE_FILE).read_text())["global_step"])
    except (OSError, ValueError, KeyError):
        return None


def prepare(root: Path, key: str) -> Path | None:
    """Delete other keys' runs and half-written checkpoints; return the checkpoint to resume, if any."""
    root.mkdir(parents=True, exist_ok=True)
    for other in root.iterdir():
        if other.name != key:
            shutil.rmtree(other) if other.is_dir() else other.unlink()
    run_dir = root / key
    run_dir.mkdir(exist_ok=True)
    for child in run_dir.iterdir():
        if CHECKPOINT.match(child.name) and step_of(child) is None:
            shutil.rmtree(child)
    return latest(run_dir)


def resume_point(state, root: Path, key: str) -> Path | None:
    """The main process clears stale runs; then every process (accelerate `state`) finds the same checkpoint."""
    if state.is_main_process:
        prepare(root, key)
    state.wait_for_everyone()
    return latest(root / key)


def latest(run_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step (every process finds the same one after `prepare`)."""
    found = [c for c in run_dir.glob("checkpoint-*") if step_of(c) is not None]
    return max(found, key=step_of, default=None)
