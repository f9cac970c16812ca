"""`vietlegal tiny`: build the embedded tiny model (cached) and print its directory and revision.

The committed tokenizer (resources/tiny_tokenizer.json) was trained, deterministically, with
`vietlegal tiny --retrain-tokenizer ../shared/seeds/*.md data/sample/legal_qa.jsonl data/corpus/provisions.jsonl`
(the project's seed documents, the bundled sample and its provisions).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vietlegal tiny", description=__doc__.splitlines()[0])
    ap.add_argument("--retrain-tokenizer", metavar="FILE", nargs="+",
                    help="retrain the committed byte-level BPE from these text/JSONL files (changes the model revision)")
    args = ap.parse_args(argv)
    from vietlegal import tiny

    if args.retrain_tokenizer:
        retrain(args.retrain_tokenizer)
    path, revision = tiny.ensure_built()
    print(f"{path}\nrevision {revision}")
    return 0


def _texts(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".jsonl":
        return [text]
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [v for row in rows for v in row.values() if isinstance(v, str)]


def retrain(paths: list[str]) -> None:
    from importlib import resources

    from vietlegal import tiny

    texts = [t for p in sorted(paths) for t in _texts(Path(p))]
    target = resources.files("vietlegal.resources").joinpath(tiny.TOKENIZER_RESOURCE)
    tiny.train_tokenizer(texts).save(str(target))
