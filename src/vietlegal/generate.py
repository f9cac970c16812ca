"""Stage `generate`: answer the test split with the fine-tuned adapter and with its base model.

    data/processed/test.jsonl + models/adapter  ->  data/generated/answers.jsonl

Both systems decode through `vietlegal.generation` (the core serving uses too: left-padded batches,
the Llama-3.1 end tokens, greedy when temperature is 0) from prompts built by `chat.encode_prompt`,
with the same params. The base model is the adapter's own base with the adapter switched off, so the
two columns differ only by the LoRA weights.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from vietlegal import chat, generation
from vietlegal.answers import DataError, TestCase, read_test_split, write_jsonl
from vietlegal.config import ConfigError, GenerateConfig, load_params


def device_and_dtype():
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return "cpu", None


def check_params(cfg: GenerateConfig, context: int) -> None:
    if cfg.batch_size < 1:
        raise ConfigError(f"generate.batch_size: must be >= 1, got {cfg.batch_size}")
    try:
        generation.check(generation.Request([0], cfg.max_new_tokens, cfg.temperature, cfg.top_p), context)
    except generation.GenerationError as exc:
        raise ConfigError(f"generate.{exc}") from exc


def requests_for(cases: list[TestCase], tokenizer, cfg: GenerateConfig, context: int) -> list[generation.Request]:
    requests = []
    for i, case in enumerate(cases):
        ids = chat.encode_prompt(tokenizer, case.prompt)
        if len(ids) >= context:
            raise DataError(f"{case.source}: the prompt is {len(ids)} tokens, the model's context is {context}; shorten it")
        # With sampling, the same seed for base and tuned: the columns differ by the model, not by luck.
        requests.append(generation.Request(ids, cfg.max_new_tokens, cfg.temperature, cfg.top_p, seed=cfg.seed + i))
    return requests


def answer_both(model, tokenizer, requests: list[generation.Request], batch_size: int) -> dict[str, list[generation.Completion]]:
    from tqdm import tqdm

    with tqdm(total=2 * len(requests), desc="generate", unit="answer", file=sys.stderr) as bar:
        tuned = generation.generate(model, tokenizer, requests, batch_size, on_batch=bar.update)
        with model.disable_adapter():
            base = generation.generate(model, tokenizer, requests, batch_size, on_batch=bar.update)
    return {"base": base, "tuned": tuned}


def rows_for(cases: list[TestCase], completions: dict[str, list[generation.Completion]]) -> list[dict]:
    rows = []
    for k, case in enumerate(cases):
        row = {"id": case.id, "source": case.source, "question": case.question, "reference": case.reference}
        for system, done in completions.items():
            row[system] = done[k].text
        for system, done in completions.items():
            row[f"{system}_finish_reason"] = done[k].finish_reason
            row[f"{system}_completion_tokens"] = done[k].completion_tokens
        rows.append(row)
    return rows


def answer_cases(cfg: GenerateConfig, cases: list[TestCase], adapter_dir: Path) -> list[dict]:
    """Base and tuned answers, a row per case: the one path `generate` and `generate_rag` share."""
    from vietlegal.adapter import load_for_inference

    device, dtype = device_and_dtype()
    model, tokenizer, _settings = load_for_inference(adapter_dir, device, dtype)
    context = generation.context_length(model)
    check_params(cfg, context)
    return rows_for(cases, answer_both(model, tokenizer, requests_for(cases, tokenizer, cfg, context), cfg.batch_size))


def run(cfg: GenerateConfig, test_path: Path, adapter_dir: Path, out_path: Path) -> list[dict]:
    rows = answer_cases(cfg, read_test_split(test_path, cfg.limit), adapter_dir)
    write_jsonl(out_path, rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vietlegal generate", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--test", type=Path, default=Path("data/processed/test.jsonl"))
    ap.add_argument("--adapter", type=Path, default=Path("models/adapter"))
    ap.add_argument("--out", type=Path, default=Path("data/generated/answers.jsonl"))
    args = ap.parse_args(argv)
    cfg = load_params(args.params)["generate"]
    t0 = time.perf_counter()
    rows = run(cfg, args.test, args.adapter, args.out)
    stopped = {s: sum(r[f"{s}_finish_reason"] == generation.STOP for r in rows) for s in ("base", "tuned")}
    print(
        f"generate: {len(rows)} test questions x 2 systems in {time.perf_counter() - t0:.1f}s; "
        f"ended on an end token: base {stopped['base']}/{len(rows)}, tuned {stopped['tuned']}/{len(rows)} "
        f"(the rest hit generate.max_new_tokens={cfg.max_new_tokens}) -> {args.out}",
        file=sys.stderr,
    )
    return 0
