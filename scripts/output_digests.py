"""Print a digest of every output of the default pipeline, so two checkouts (say, before and after a refactor)
can be compared: `python scripts/output_digests.py > a.txt` in each, then `diff a.txt b.txt`.

Run from a project root after `dvc repro`. Wall-clock fields (train seconds, tokens/s, peak memory, index
build time) are dropped before hashing: they differ on every run, and so did the order of adapter_config.json's
target_modules before `train` sorted them, so that list is compared sorted.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

TIMING = {"train_seconds", "wall_seconds", "train_tokens_per_second", "peak_memory_gb", "build_seconds"}
TREES = ("data/processed", "data/training", "data/generated", "data/judge", "metrics", "models/index", "dvclive")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "chat_template.jinja")


def digest(path: Path) -> str:
    data = path.read_bytes()
    if path.name == "adapter_config.json":  # target_modules in PEFT's set order, which varies with PYTHONHASHSEED
        config = json.loads(data)
        config["target_modules"] = sorted(config.get("target_modules") or [])
        data = json.dumps(config, sort_keys=True).encode()
    if path.suffix == ".json" and path.name != "tokenizer.json":
        parsed = json.loads(data)
        if isinstance(parsed, dict) and TIMING & parsed.keys():
            data = json.dumps({k: v for k, v in parsed.items() if k not in TIMING}, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def main(root: Path) -> int:
    rows = []
    for tree in TREES:
        rows += [(p.relative_to(root).as_posix(), digest(p)) for p in sorted((root / tree).rglob("*")) if p.is_file()]
    rows += [(f"models/adapter/{name}", digest(root / "models/adapter" / name)) for name in ADAPTER_FILES
             if (root / "models/adapter" / name).exists()]
    for name, value in rows:
        print(f"{value}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")))
