"""Bring a law corpus in: `vietlegal corpus import FILE... --out data/corpus/NAME.jsonl` (Zalo, ALQAC, flat rows).

    vietlegal corpus import legal_corpus.json --out data/corpus/zalo.jsonl
        -> data/corpus/zalo.jsonl          one provision per line, the schema of vietlegal.rag.corpus
           data/corpus/zalo.import.json    what was imported, what was rejected (file:line, reason), dates taken

Shapes: see `vietlegal.rag.importing`. Then `dvc add data/corpus/zalo.jsonl` (or commit it, if small) and
`dvc repro index`: the index, the retrieval stage and `serve --rag` read it like any provision file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vietlegal import jsonl, paths
from vietlegal.errors import DataError
from vietlegal.rag.importing import import_files

SHOWN = 20


def report_path(out: Path) -> Path:
    """Next to the corpus, not *.jsonl: the corpus reader reads every *.jsonl of its directory."""
    return out.with_name(out.name.removesuffix(".jsonl") + ".import.json")


def run_import(files: list[Path], out: Path) -> dict:
    if out.suffix != ".jsonl":
        raise DataError(f"--out {out}: must end in .jsonl (the corpus directory's provision files are *.jsonl)")
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise DataError(f"not found: {', '.join(missing)}")
    report = import_files(files)
    if not report.provisions:
        shown = "\n  ".join(f"{r['source']}: {r['reason']}: {r['detail']}" for r in report.rejects[:SHOWN])
        raise DataError(f"no provision could be imported from {', '.join(map(str, files))}" + (f":\n  {shown}" if shown else ""))
    jsonl.write(out, report.provisions)
    summary = {"files": [str(f) for f in files], "out": str(out), **report.summary(), "rejects": report.rejects}
    jsonl.write_json(report_path(out), summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vietlegal corpus", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="action", required=True)
    imp = sub.add_parser("import", help="turn public law-corpus files into provision records")
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE", help=".json, .jsonl(.gz), .csv or .parquet")
    imp.add_argument("--out", type=Path, required=True, help=f"{paths.CORPUS}/NAME.jsonl: a provision file of the corpus directory")
    args = ap.parse_args(argv)
    s = run_import(args.files, args.out)
    print(f"corpus import: {s['provisions']} provisions from {s['laws']} laws -> {s['out']}; {s['rejected']} rejected"
          + (f" ({', '.join(f'{n} {r}' for r, n in s['rejects_by_reason'].items())})" if s["rejected"] else "")
          + f"; {s['no_effective_date_taken_as_in_force']} without an effective date, taken as in force", file=sys.stderr)
    for src, fields in s["ignored_fields"].items():
        print(f"  {src}: fields left out: " + ", ".join(f"{k} ({n})" for k, n in fields.items()), file=sys.stderr)
    for r in s["rejects"][:SHOWN]:
        print(f"  {r['source']}: {r['reason']}: {r['detail']}", file=sys.stderr)
    if s["rejected"] > SHOWN:
        print(f"  ... and {s['rejected'] - SHOWN} more in {report_path(args.out)}", file=sys.stderr)
    return 0
