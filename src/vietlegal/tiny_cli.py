"""`vietlegal tiny`: build the embedded tiny model (cached) and print its directory and revision."""
from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vietlegal tiny", description=__doc__)
    ap.add_argument("--retrain-tokenizer", metavar="JSONL", nargs="+",
                    help="retrain the committed byte-level BPE from these Q&A files (changes the model revision)")
    args = ap.parse_args(argv)
    from vietlegal import tiny

    if args.retrain_tokenizer:
        retrain(args.retrain_tokenizer)
    path, revision = tiny.ensure_built()
    print(f"{path}\nrevision {revision}")
    return 0


def retrain(paths: list[str]) -> None:
    import json
    from importlib import resources

    from vietlegal import tiny

    texts = []
    for p in paths:
        for line in open(p, encoding="utf-8"):
            if line.strip():
                texts.extend(v for v in json.loads(line).values() if isinstance(v, str))
    target = resources.files("vietlegal.resources").joinpath(tiny.TOKENIZER_RESOURCE)
    tiny.train_tokenizer(texts).save(str(target))
