"""Build the embedded tiny Llama model (cached) and print its directory and revision.

The committed tokenizer (resources/tiny_tokenizer.json) was trained, deterministically, with
`vietlegal tiny --retrain-tokenizer ../shared/seeds/*.md data/sample/legal_qa.jsonl data/corpus/provisions.jsonl`
(the project's seed documents, the bundled sample and its provisions).
"""
from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vietlegal tiny", description=__doc__.splitlines()[0])
    ap.add_argument("--retrain-tokenizer", metavar="FILE", nargs="+",
                    help="retrain the committed byte-level BPE from these text/JSONL files (changes the model revision)")
    args = ap.parse_args(argv)
    from vietlegal.model import tiny

    if args.retrain_tokenizer:
        tiny.retrain_tokenizer(args.retrain_tokenizer)
    path, revision = tiny.ensure_built()
    print(f"{path}\nrevision {revision}")
    return 0
