"""Stage `perplexity`: token-weighted perplexity of the test split's reference answers, base and tuned.

    data/processed/test.jsonl + models/adapter  ->  data/generated/perplexity.json

Its own stage because it needs the model: changing a scoring param (BLEU tokenizer, chrF order)
reruns only `evaluate`, which merges this file into metrics/eval.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vietlegal import jsonl
from vietlegal.answers import read_test_split
from vietlegal.config import load_params
from vietlegal.metrics.perplexity import perplexity


def run(test_path: Path, adapter_dir: Path, out_path: Path, max_length: int, batch_size: int) -> dict:
    from tqdm import tqdm

    from vietlegal.adapter import load_for_inference
    from vietlegal.generate import device_and_dtype

    cases = read_test_split(test_path)
    model, tokenizer, _settings = load_for_inference(adapter_dir, *device_and_dtype())
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
    ap = argparse.ArgumentParser(prog="vietlegal perplexity", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--test", type=Path, default=Path("data/processed/test.jsonl"))
    ap.add_argument("--adapter", type=Path, default=Path("models/adapter"))
    ap.add_argument("--out", type=Path, default=Path("data/generated/perplexity.json"))
    args = ap.parse_args(argv)
    params = load_params(args.params)
    report = run(args.test, args.adapter, args.out, params["base"].max_seq_length, params["evaluate"].ppl_batch_size)
    print(
        f"perplexity: base {report['base']['perplexity']:.3f}, tuned {report['tuned']['perplexity']:.3f} "
        f"over {report['tuned']['answer_tokens']} answer tokens -> {args.out}",
        file=sys.stderr,
    )
    return 0
