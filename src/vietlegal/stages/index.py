"""Build the retrieval index (BM25 + dense) over the provision corpus.

    data/corpus/*.jsonl  ->  models/index/{manifest.json, bm25.json, bm25s/, dense.faiss}   (see vietlegal.rag.retriever)

Paths come from params (rag.corpus_dir, rag.index_dir), because `serve --rag` reads the same keys.
"""
from __future__ import annotations

import sys
from pathlib import Path

from vietlegal.rag.corpus import load_corpus
from vietlegal.rag.retriever import build, query_date
from vietlegal.stage_cli import stage_args

FILES = {"corpus": None, "out": None}  # default: rag.corpus_dir, rag.index_dir
PARAM_FILES = ("rag.corpus_dir", "rag.index_dir")


def main(argv: list[str] | None = None) -> int:
    params, args = stage_args(__name__, __doc__, argv, FILES)
    cfg = params.rag
    corpus = load_corpus(args.corpus or cfg.corpus_dir)
    out = args.out or Path(cfg.index_dir)
    manifest = build(corpus, cfg, out)
    on = query_date(cfg)
    in_force = sum(corpus.in_force_mask(on))
    dense = manifest["dense"]
    kind = f"dense {dense['kind']} ({dense['model']}, dim {dense['dim']})" if dense else "no dense"
    print(f"index: {len(corpus)} provisions ({in_force} in force on {on}), BM25 {manifest['bm25']['terms']} terms, "
          f"{kind}, {manifest['build_seconds']}s -> {out}", file=sys.stderr)
    return 0
