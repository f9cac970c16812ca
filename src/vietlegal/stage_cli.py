"""The command line every stage shares: `--params` and one flag per file the stage reads or writes.

Each flag defaults to the file's path in `vietlegal.paths`, which is what dvc.yaml runs the stage with; a
flag whose default is None takes its path from params.yaml (say `rag.corpus_dir`). The stage's name is its
module's (`vietlegal.stages.generate_rag` -> `vietlegal generate-rag`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from vietlegal import paths
from vietlegal.params import Params, load_params


def stage_args(module: str, doc: str, argv: list[str] | None, files: dict[str, str | None]) -> tuple[Params, argparse.Namespace]:
    """(the params, the parsed flags) of `vietlegal <stage> [--params FILE] [--<file flag> PATH ...]`."""
    name = module.rsplit(".", 1)[-1].replace("_", "-")
    ap = argparse.ArgumentParser(prog=f"vietlegal {name}", description=doc.strip().splitlines()[0])
    ap.add_argument("--params", default=paths.PARAMS, help="params file (default: %(default)s)")
    for flag, default in files.items():
        ap.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=Path,
                        default=None if default is None else Path(default),
                        help=f"default: {default}" if default else "default: its path in params.yaml")
    args = ap.parse_args(argv)
    return load_params(args.params), args
