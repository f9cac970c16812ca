"""Token-weighted perplexity of the test answers, base and adapter.

    data/processed/test.jsonl + models/adapter  ->  data/generated/perplexity.json

Its own stage because it needs the model: changing a scoring param (BLEU tokenizer, chrF order)
reruns only `evaluate`, which merges this file into metrics/eval.json.
"""
from __future__ import annotations

import sys
from pathlib import Path

from vietlegal import jsonl, paths
from vietlegal.data.splits import read_test_split
from vietlegal.metrics.likelihood import perplexity
from vietlegal.stage_cli import stage_args

FILES = {"test": paths.TEST_SPLIT, "adapter": paths.ADAPTER, "out": paths.PERPLEXITY}


def run(test_path: Path, adapter_dir: Path, out_path: Path, max_length: int, batch_size: int,
        threads: int | None = None) -> dict:
    from tqdm import tqdm

    from vietlegal.model.adapter import load_for_inference
    from vietlegal.model.device import cpu_threads, inference_device

    cases = read_test_split(test_path)
    device, dtype = inference_device()
    cpu_threads(threads, device)
    model, tokenizer, _manifest = load_for_inference(adapter_dir, device, dtype)
    conversations = [c.messages for c in cases]
    with tqdm(total=2 * len(cases), desc="perplexity", unit="conversation", file=sys.stderr) as bar:
        tuned = perplexity(model, tokenizer, conversations, max_length, batch_size, bar.update)
        with model.disable_adapter():
            base = perplexity(model, tokenizer, conversations, max_length, batch_size, bar.update)
    report = {
        "base": base.summary(),
        "tuned": tuned.summary(),
        "per_example": {
            c.id: {"base": b, "tuned": t} for c, b, t in zip(cases, base.per_example, tuned.per_example)
        },
    }
    jsonl.write_json(out_path, report)
    return report


def main(argv: list[str] | None = None) -> int:
    params, args = stage_args(__name__, __doc__, argv, FILES)
    report = run(args.test, args.adapter, args.out, params.base.max_seq_length, params.evaluate.ppl_batch_size,
                 params.generate.cpu_threads)
    print(
        f"perplexity: base {report['base']['perplexity']:.3f}, tuned {report['tuned']['perplexity']:.3f} "
        f"over {report['tuned']['answer_tokens']} answer tokens -> {args.out}",
        file=sys.stderr,
    )
    return 0
