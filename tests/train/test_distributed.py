"""Data-parallel training through the documented `accelerate launch` command: 2 CPU processes (gloo)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from vietlegal.train import dataset

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_one_adapter(tmp_path, processed_dir, tiny_tokenizer):
    params = {"train": {"max_steps": 4, "batch_size": 2, "grad_accum": 1, "warmup_steps": 0, "logging_steps": 1, "eval_steps": 2,
                        "save_steps": 2, "cpu_threads": 1}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    accelerate = str(Path(sys.executable).parent / "accelerate")
    cmd = [accelerate, "launch", "--config_file", str(ROOT / "recipes" / "accelerate" / "ddp.yaml"),
           "--num_processes", "2", "--main_process_port", str(free_port()),
           "-m", "vietlegal.cli", "train", "--data", str(processed_dir)]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-3000:]

    metrics = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert metrics["processes"] == 2 and metrics["global_step"] == 4
    # 4 steps x 2 processes x 2 examples = two passes over the 8 examples, counted over both ranks
    split = dataset.encode_split("train", processed_dir / "train.jsonl", tiny_tokenizer, 512, False)
    assert metrics["train_tokens"] == 2 * sum(len(e.input_ids) for e in split.examples)
    assert metrics["label_audit"]["share_ending_in_eot"] == 1.0
    settings = json.loads((tmp_path / "models" / "adapter" / "vietlegal.json").read_text())
    assert settings["hardware"]["processes"] == 2
    assert done.stderr.count("train: adapter -> models/adapter") == 1, "only the main process writes"
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["adapter", "checkpoints"], "no staging left"
