"""Score any predictions JSONL with the evaluation metrics: `vietlegal score --predictions FILE [--out FILE.json]`.

    vietlegal score --predictions FILE [--references FILE] [--out FILE.json]
    vietlegal score --ask http://127.0.0.1:8000 --model v13 --questions data/processed/test.jsonl \
                    --predictions v13.jsonl [--out v13.json]
    vietlegal score --ask http://127.0.0.1:8080 --questions data/processed/test.jsonl --predictions q4.jsonl \
                    --perplexity models/export/merged [--out q4.json]

With --ask, a running server answers the split's questions first (greedy, as the pipeline's generate stage),
through the model named (an adapter name, a pinned version `vietlegal-<hash>` or a route); each line of
--predictions then holds the version that answered. Run it once per model to compare versions on the
same questions through the live server. --perplexity adds the perplexity of the references under the served
model (llama.cpp's server or vLLM: it needs /v1/completions with token ids, logprobs and logit_bias;
metrics.asking), given the model's tokenizer directory: how the export stage measures what each GGUF format costs.

Each line is an object with string fields `prediction` and `reference` (say, another system's answers),
or with `--references FILE`, predictions and references come from two files, line by line. The JSON
written has the layout of metrics/eval.json: {"<field>": {metric: value}, "signatures": {...}}, so
`--prediction-field tuned` on data/generated/answers.jsonl gives the same numbers as the `tuned` block.
A prediction that is a structured legal answer (JSON per resources/legal_answer.schema.json, what a client gets
with that schema as its response_format) is scored as its answer plus its citations, read from the JSON.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vietlegal import jsonl, paths
from vietlegal.data.conversation import Conversation
from vietlegal.data.splits import read_test_split
from vietlegal.errors import ConfigError, PredictionsError
from vietlegal.metrics import structured_answer
from vietlegal.metrics.asking import ask, served_perplexity
from vietlegal.metrics.scoring import METRIC_NAMES, score_all
from vietlegal.params import BaseConfig, EvaluateConfig


def read_field(path: Path, field: str) -> list[tuple[int, dict, str]]:
    """(line number, row, value of `field`) for every non-blank line; PredictionsError naming file:line."""
    rows = []
    for number, row in jsonl.read_objects(path, PredictionsError):
        if field not in row:
            raise PredictionsError(
                f"{path}:{number}: missing field {field!r} (fields present: {', '.join(sorted(row)) or 'none'})"
            )
        value = row[field]
        if value is None:
            value = ""  # a system that answered nothing: scored as an empty answer and counted
        if not isinstance(value, str):
            raise PredictionsError(f"{path}:{number}: field {field!r} must be a string, got {type(value).__name__}")
        rows.append((number, row, value))
    if not rows:
        raise PredictionsError(f"{path}: no predictions (the file is empty)")
    return rows


def pair_up(predictions_path: Path, references_path: Path | None, prediction_field: str, reference_field: str) -> tuple[list[str], list[str]]:
    predicted = read_field(predictions_path, prediction_field)
    if references_path is None:
        expected = read_field(predictions_path, reference_field)
    else:
        expected = read_field(references_path, reference_field)
        if len(predicted) != len(expected):
            shorter, longer = (predicted, expected) if len(predicted) < len(expected) else (expected, predicted)
            short_path, long_path = (predictions_path, references_path) if shorter is predicted else (references_path, predictions_path)
            raise PredictionsError(
                f"{long_path}:{longer[len(shorter)][0]}: has no counterpart: {short_path} has {len(shorter)} rows, "
                f"{long_path} has {len(longer)}; the two files must line up row by row"
            )
        for (pn, prow, _), (rn, rrow, _) in zip(predicted, expected):
            if "id" in prow and "id" in rrow and prow["id"] != rrow["id"]:
                raise PredictionsError(
                    f"{predictions_path}:{pn}: id {prow['id']!r} does not match {references_path}:{rn} id {rrow['id']!r}"
                )
    return [p for _, _, p in predicted], [r for _, _, r in expected]


def ask_server(url: str, api_key: str | None, model: str | None, questions: Path, out: Path, max_tokens: int,
               limit: int | None = None) -> tuple[list[Conversation], dict[str, int]]:
    """Each question of the split answered by the server (greedy) into `out`; the cases and answers per version."""
    cases = read_test_split(questions, limit)
    rows, versions = ask(client_for(url, api_key), model or "vietlegal", cases, max_tokens)
    jsonl.write(out, rows)
    return cases, versions


def client_for(url: str, api_key: str | None):
    import openai

    return openai.OpenAI(base_url=url.rstrip("/").removesuffix("/v1") + "/v1", api_key=api_key or "none",
                         max_retries=2, timeout=600)


def ask_perplexity(url: str, api_key: str | None, model: str | None, cases: list[Conversation], tokenizer_dir: Path,
                   max_length: int) -> dict:
    """Perplexity of the split's reference answers under the served model (metrics.asking)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    return served_perplexity(client_for(url, api_key), model or "vietlegal", tokenizer, cases, max_length).summary()


def table(name: str, metrics: dict, signatures: dict) -> str:
    lines = [f"{'metric':<22} {name:>10}"]
    for key in (*METRIC_NAMES, "empty_predictions", "examples"):
        value = metrics[key]
        lines.append(f"{key:<22} {value:>10.4f}" if isinstance(value, float) else f"{key:<22} {value:>10}")
    lines += [f"BLEU signature: {signatures['bleu']}", f"chrF signature: {signatures['chrf']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vietlegal score", description=__doc__.splitlines()[0])
    ap.add_argument("--predictions", required=True, type=Path, help="JSONL with prediction (and reference) fields")
    ap.add_argument("--references", type=Path, help="JSONL with the reference field, line by line with --predictions")
    ap.add_argument("--prediction-field", default="prediction")
    ap.add_argument("--reference-field", default="reference")
    ap.add_argument("--out", type=Path, help="write the scores as JSON here")
    defaults = EvaluateConfig()
    ap.add_argument("--bleu-tokenize", default=defaults.bleu_tokenize, help="sacrebleu tokenizer (13a, intl, char, none)")
    ap.add_argument("--chrf-word-order", type=int, default=defaults.chrf_word_order, help="2 = chrF++")
    ap.add_argument("--ask", metavar="URL", help="a running server: answer --questions there, into --predictions")
    ap.add_argument("--model", help="with --ask: the model to ask (default: the server's)")
    ap.add_argument("--questions", type=Path, help="with --ask: a split (data/processed/test.jsonl)")
    ap.add_argument("--max-tokens", type=int, default=256, help="with --ask: max_tokens per answer")
    ap.add_argument("--api-key", default=os.environ.get("VIETLEGAL_API_KEY"), help="with --ask: Bearer key")
    ap.add_argument("--limit", type=int, help="with --ask: the first N questions only")
    ap.add_argument("--perplexity", metavar="TOKENIZER_DIR", type=Path,
                    help="with --ask: also the perplexity of the references under the served model, through "
                         f"/v1/completions (llama.cpp's server, vLLM); the model's tokenizer directory, e.g. "
                         f"{paths.EXPORT_MERGED}")
    ap.add_argument("--max-length", type=int, default=BaseConfig().max_seq_length,
                    help="with --perplexity: conversations are cut at this many tokens (base.max_seq_length)")
    args = ap.parse_args(argv)
    perplexity = None
    if args.perplexity and not args.ask:
        raise ConfigError("--perplexity needs --ask URL (a running server)")
    if args.ask:
        if not args.questions:
            raise ConfigError("--ask needs --questions (a split such as data/processed/test.jsonl)")
        cases, versions = ask_server(args.ask, args.api_key, args.model, args.questions, args.predictions,
                                     args.max_tokens, args.limit)
        print(f"answered by {', '.join(f'{v} ({n})' for v, n in versions.items())}", file=sys.stderr)
        if args.perplexity:
            perplexity = ask_perplexity(args.ask, args.api_key, args.model, cases, args.perplexity, args.max_length)
    predictions, references = pair_up(args.predictions, args.references, args.prediction_field, args.reference_field)
    # A structured legal answer (response_format with resources/legal_answer.schema.json) is scored as its
    # answer plus its citations written out; free text as it is.
    read = [structured_answer.as_text(p) for p in predictions]
    structured = sum(r is not None for r in read)
    predictions = [r if r is not None else p for r, p in zip(read, predictions)]
    scored = score_all(predictions, references, args.bleu_tokenize, args.chrf_word_order)
    print(table(args.prediction_field, scored["metrics"], scored["signatures"]))
    if perplexity:
        print(f"perplexity {perplexity['perplexity']:.4f} over {perplexity['answer_tokens']} answer tokens")
    if structured:
        print(f"structured answers (answer + citations): {structured} of {len(predictions)}")
    if args.out:
        report = {args.prediction_field: scored["metrics"], "signatures": scored["signatures"],
                  "predictions": str(args.predictions), "structured_answers": structured,
                  **({"perplexity": perplexity} if perplexity else {})}
        jsonl.write_json(args.out, report)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
