"""Answer the test split with the base model and the adapter (and the aligned adapter, when stage align trained one).

    data/processed/test.jsonl + models/adapter (+ models/aligned)  ->  data/generated/answers.jsonl

Both systems decode through `vietlegal.answering` (left-padded batches, the Llama-3.1 end tokens,
greedy when temperature is 0), the path `generate_rag` takes too.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from vietlegal import paths
from vietlegal.data.answers import systems_of, write_answers
from vietlegal.data.splits import read_test_split
from vietlegal.answering import answer_cases, select_backend
from vietlegal.model.adapter import SETTINGS_FILE
from vietlegal.model.decoding import STOP
from vietlegal.params import GenerateConfig
from vietlegal.stage_cli import stage_args

FILES = {"test": paths.TEST_SPLIT, "adapter": paths.ADAPTER, "out": paths.ANSWERS, "meta": paths.ANSWERS_META,
         "aligned": paths.ALIGNED}


def run(cfg: GenerateConfig, test_path: Path, adapter_dir: Path, out_path: Path, meta_path: Path | None = None,
        aligned_dir: Path | None = None) -> list[dict]:
    backend = select_backend(cfg.backend)
    # models/aligned holds an adapter only when stage align trained one (else NOT_TRAINED.txt saying why)
    aligned = aligned_dir if aligned_dir is not None and (aligned_dir / SETTINGS_FILE).exists() else None
    rows = answer_cases(cfg, read_test_split(test_path, cfg.limit), adapter_dir, backend, aligned)
    write_answers(rows, out_path, meta_path, backend, cfg.tensor_parallel_size)
    return rows


def main(argv: list[str] | None = None) -> int:
    params, args = stage_args(__name__, __doc__, argv, FILES)
    cfg = params.generate
    t0 = time.perf_counter()
    rows = run(cfg, args.test, args.adapter, args.out, args.meta, args.aligned)
    systems = systems_of(rows)
    stopped = ", ".join(f"{s} {sum(r[f'{s}_finish_reason'] == STOP for r in rows)}/{len(rows)}" for s in systems)
    print(
        f"generate: {len(rows)} test questions x {len(systems)} systems in {time.perf_counter() - t0:.1f}s; "
        f"ended on an end token: {stopped} "
        f"(the rest hit generate.max_new_tokens={cfg.max_new_tokens}) -> {args.out}",
        file=sys.stderr,
    )
    return 0
