"""The default training run, timed, and what its batching and threading choices are worth.

    python benchmarks/bench_train.py [--params params.yaml] [--data data/processed] [--compare]

Without --data it prepares the bundled sample (data/sample/legal_qa.jsonl) into a temp directory. Runs the
train stage with the given params in a temp directory (nothing in the project is written) and prints wall
time, train tokens/s, padding efficiency, peak memory and eval loss (base -> tuned).
--compare also runs random batches (train.group_by_length: false) and torch's default thread count
(train.cpu_threads: null), one change at a time. The 2 cores are usually shared with other
work: figures are pessimistic and vary run to run.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def sample_splits(tmp: Path) -> Path:
    from vietlegal.stages import prepare
    from vietlegal.params import BaseConfig, PrepareConfig

    sample = ROOT / "data" / "sample" / "legal_qa.jsonl"
    if not sample.exists():
        sys.exit(f"{sample} not found: pass --data <dir with train.jsonl and val.jsonl>")
    prepare.run(PrepareConfig(raw_dir=str(tmp / "no-raw"), sample=str(sample), out_dir=str(tmp / "processed")),
                BaseConfig(), root=Path("/"))
    return tmp / "processed"


def one_run(label: str, base_cfg, cfg, data: Path) -> dict:
    """Each variant in its own process: torch's thread count and accelerate's state are per process."""
    with tempfile.TemporaryDirectory() as work:
        params = Path(work) / "params.yaml"
        params.write_text(yaml.safe_dump({"base": dataclasses.asdict(base_cfg), "train": dataclasses.asdict(cfg)}))
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "vietlegal.cli", "train", "--params", str(params), "--data", str(data)],
                              cwd=work, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"{label}: failed\n{done.stderr[-3000:]}")
        m = json.loads((Path(work) / "metrics" / "train.json").read_text())
    print(f"{label:<36} {wall:6.1f}s wall  {m['train_seconds']:6.1f}s train  {m['train_tokens_per_second'] or 0:7.0f} tok/s  "
          f"padding eff {m['label_audit']['padding_efficiency']:.3f}  peak {m['peak_memory_gb']:.2f} GB  "
          f"eval loss {m['base_eval_loss'] or float('nan'):.3f} -> {m['eval_loss'] or float('nan'):.3f}", flush=True)
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--data", default=None)
    ap.add_argument("--compare", action="store_true")
    args = ap.parse_args()

    from vietlegal.params import load_params

    params = load_params(args.params)
    base_cfg, cfg = params.base, params.train
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else sample_splits(Path(tmp))
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {base_cfg.model}, "
              f"{cfg.epochs} epochs x batch {cfg.batch_size}, lr {cfg.learning_rate}", flush=True)
        one_run("default", base_cfg, cfg, data)
        if args.compare:
            one_run("random batches (no length grouping)", base_cfg, dataclasses.replace(cfg, group_by_length=False), data)
            one_run("torch default threads", base_cfg, dataclasses.replace(cfg, cpu_threads=None), data)


if __name__ == "__main__":
    main()
