"""The training splits, grounded with retrieved provisions if rag.train_with_context.

    data/processed/{train,val}.jsonl + models/index + data/corpus
        -> data/training/{train,val}.jsonl   the prepare rows; grounded: the system message carries the top-k
                                             provisions, plus "retrieved_provisions" (ids) and "no_hit"
           data/training/context.json        {"with_context": false}, or the retrieval settings used
           metrics/ground.json               per split: examples, no-hit count, cited provisions in the context

Off (the default) the splits are copied byte for byte and context.json is a constant, so a rag param change
reruns only this cheap stage: its outputs stay identical, and DVC (which compares deps by hash) skips `train`.
On, each example is grounded by `vietlegal.rag.context.ground`, the function `generate_rag` and `serve --rag`
build their prompts with, so training and inference see one layout. Retrieval reads only the question, so the
reference answer never leaks into the prompt; the answer is trained on as it is.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from vietlegal import jsonl, paths
from vietlegal.data.conversation import Conversation
from vietlegal.data.splits import read_split
from vietlegal.errors import DataError
from vietlegal.params import RagConfig
from vietlegal.rag.context import ground
from vietlegal.rag.recall import gold_pairs, provision_pair
from vietlegal.rag.retriever import Retriever
from vietlegal.stage_cli import stage_args

FILES = {"processed": paths.PROCESSED, "out": paths.TRAINING, "metrics": paths.GROUND_METRICS}
PARAM_FILES = ("rag.corpus_dir", "rag.index_dir")
SPLITS = ("train", "val")
CONTEXT_FILE = "context.json"
# What shapes a grounded prompt; recorded in context.json and (through train) in the adapter's vietlegal.json.
PROMPT_KEYS = ("top_k", "method", "embedding_model", "query_prefix", "dense_min_similarity", "rrf_k",
               "in_force_on", "max_provision_chars")


def ground_row(retriever: Retriever, conversation: Conversation) -> dict:
    """The row with its prompt grounded; the answer (the last message) is kept as it is."""
    g = ground(retriever, conversation.prompt)
    return {**conversation.row(), "messages": g.messages + [conversation.messages[-1]],
            "retrieved_provisions": g.provision_ids, "no_hit": g.no_hit}


def split_report(retriever: Retriever, rows: list[dict]) -> dict:
    """How much of what the answers cite the context holds: what the model can learn to copy."""
    pair_of = {p.id: provision_pair(p) for p in retriever.corpus.provisions}
    cited = found = 0
    for row in rows:
        gold = gold_pairs(row["messages"][-1]["content"])
        given = {pair_of.get(i) for i in row["retrieved_provisions"]}
        cited, found = cited + len(gold), found + len(gold & given)
    return {
        "examples": len(rows),
        "no_hit": sum(r["no_hit"] for r in rows),
        "cited_provisions": cited,
        "cited_in_context": found / cited if cited else 0.0,
    }


def context_settings(rag: RagConfig) -> dict:
    if not rag.train_with_context:
        return {"with_context": False}
    return {"with_context": True, **{k: getattr(rag, k) for k in PROMPT_KEYS}}


def run(rag: RagConfig, processed: Path, out_dir: Path) -> dict:
    splits = {name: processed / f"{name}.jsonl" for name in SPLITS}
    for path in splits.values():
        if not path.exists():
            raise DataError(f"{path}: not found; run `vietlegal prepare` (or `dvc repro prepare`) first")
    out_dir.mkdir(parents=True, exist_ok=True)
    report = context_settings(rag)
    if rag.train_with_context:
        retriever = Retriever.load(rag.index_dir, rag.corpus_dir, rag)
        for name, path in splits.items():
            rows = [ground_row(retriever, c) for c in read_split(path)]
            jsonl.write(out_dir / path.name, rows)
            report[name] = split_report(retriever, rows)
    else:
        for path in splits.values():
            copy_atomically(path, out_dir / path.name)
    jsonl.write_json(out_dir / CONTEXT_FILE, context_settings(rag))
    return report


def copy_atomically(src: Path, dst: Path) -> None:
    tmp = dst.with_suffix(dst.suffix + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def summary(report: dict) -> str:
    if not report["with_context"]:
        return "off: splits copied as they are (set rag.train_with_context: true to train with retrieved provisions)"
    parts = []
    for name in SPLITS:
        r = report[name]
        parts.append(f"{name} {r['examples']} examples, {r['no_hit']} without a hit, "
                     f"{r['cited_in_context']:.1%} of cited provisions in the context")
    return f"top-{report['top_k']} {report['method']} provisions; " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    params, args = stage_args(__name__, __doc__, argv, FILES)
    t0 = time.perf_counter()
    report = run(params.rag, args.processed, args.out)
    jsonl.write_json(args.metrics, report)
    print(f"ground: {summary(report)} in {time.perf_counter() - t0:.1f}s -> {args.out}", file=sys.stderr)
    return 0
