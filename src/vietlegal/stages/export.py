"""Export the model for in-house serving: a merged model directory and GGUF files for llama.cpp and Ollama.

    models/adapter (export.adapter) + data/processed/test.jsonl + data/generated/{answers.jsonl,perplexity.json}
        -> models/export/merged/   the adapter merged into its base: transformers, vLLM without LoRA
           models/export/gguf/     vietlegal-<format>.gguf (export.formats), an Ollama Modelfile beside each,
                                   vietlegal.json (the adapter's manifest and the files' md5s)
           metrics/export.json     per format: size, tensor types, and through llama.cpp's own server the
                                   perplexity, citation F1 and ROUGE of the test answers

Off unless export.enabled: then models/export holds only a note and metrics/export.json {"enabled": false}.
llama.cpp's quantiser and server are built from source on first use and cached (`vietlegal llama-cpp` builds
them ahead). docs/export.md has the in-house day.
"""
from __future__ import annotations

import dataclasses
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

from vietlegal import jsonl, paths
from vietlegal.data.answers import read_answers, read_perplexity
from vietlegal.data.splits import read_test_split
from vietlegal.export import gguf_files, modelfile
from vietlegal.export.llama_cpp import LlamaCpp, ensure_built
from vietlegal.export.llama_server import ALIAS, LlamaServer
from vietlegal.export.merge import merge
from vietlegal.metrics.asking import ask, served_perplexity
from vietlegal.metrics.scoring import score_all
from vietlegal.model.adapter import AdapterManifest, file_digests
from vietlegal.model.base import context_window
from vietlegal.params import GGUF_FLOAT_FORMATS, Params
from vietlegal.stage_cli import stage_args

FILES = {"adapter": None, "test": paths.TEST_SPLIT, "answers": paths.ANSWERS, "perplexity": paths.PERPLEXITY,
         "out": paths.EXPORT, "metrics": paths.EXPORT_METRICS}
PARAM_FILES = ("export.adapter",)
DISABLED_NOTE = "DISABLED.txt"
MAX_CONTEXT = 4096  # llama-server's context when scoring: the prompts and answers fit; an 8B's full 128k would not
# The Modelfile's num_ctx: the model's window up to 8k tokens (Llama-3.1-8B's KV cache: 128 KiB a token, 1 GiB).
MAX_IN_HOUSE_CONTEXT = 8192


def write_files(params: Params, llama: LlamaCpp, adapter_dir: Path, out_dir: Path) -> tuple[AdapterManifest, dict]:
    """The merged directory and every GGUF file with its Modelfile; (the manifest, {format: file facts})."""
    from transformers import AutoConfig, AutoTokenizer

    merged_dir, gguf_dir = out_dir / "merged", out_dir / "gguf"
    manifest = merge(adapter_dir, merged_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(merged_dir))
    gguf_dir.mkdir(parents=True)
    facts = gguf_files.write_all(llama, merged_dir, gguf_dir, params.export.formats, tokenizer, gguf_metadata(manifest))
    context = min(MAX_IN_HOUSE_CONTEXT, context_window(AutoConfig.from_pretrained(str(merged_dir))))
    for fmt in facts.values():
        modelfile.write(gguf_dir / fmt["file"], params.prepare.system_prompt, context)
    # Written last, listing every other file's md5 (as the adapter's): a half-pulled directory shows.
    dataclasses.replace(manifest, files=file_digests(gguf_dir)).write(gguf_dir)
    return manifest, facts


def gguf_metadata(manifest: AdapterManifest) -> dict:
    """general.* keys of every GGUF file: which adapter version, base and data it holds."""
    version = manifest.merged["adapter_version"]
    return {"general.name": "vietlegal", "general.version": version[:12], "general.languages": ["vi"],
            "general.description": f"vietlegal adapter {version} merged into {manifest.base_model}"
                                   f"@{manifest.base_revision}; data {manifest.data_hash}"}


def context_for(params: Params) -> int:
    return min(MAX_CONTEXT, params.base.max_seq_length + params.generate.max_new_tokens)


def score_format(params: Params, llama: LlamaCpp, gguf: Path, tokenizer, cases, log_dir: Path) -> dict:
    """One GGUF file under llama-server: the test answers scored, and the references' perplexity."""
    import openai

    with LlamaServer(llama, gguf, log_dir / f"{gguf.stem}.log", context=context_for(params)) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=600)
        rows, _ = ask(client, ALIAS, cases, params.generate.max_new_tokens)
        ppl = served_perplexity(client, ALIAS, tokenizer, cases, params.base.max_seq_length)
    ev = params.evaluate
    scored = score_all([r["prediction"] for r in rows], [r["reference"] for r in rows], ev.bleu_tokenize,
                       ev.chrf_word_order)["metrics"]
    return {"rows": rows, "perplexity": ppl, "metrics": scored}


def reference_format(formats) -> str:
    """The float format the others are measured against (f16 by default)."""
    return next(f for f in formats if f in GGUF_FLOAT_FORMATS)


def compare(formats: dict, scored: dict, answers: dict[str, dict], transformers_ppl: float | None) -> dict:
    """metrics/export.json's per-format block: the file's facts, its scores, and its cost against the float file
    and against the transformers model (the adapter, as the perplexity and generate stages ran it)."""
    reference = reference_format(formats)
    out = {}
    for fmt, facts in formats.items():
        s, ref = scored[fmt], scored[reference]
        rows = s["rows"]
        out[fmt] = {
            **{k: facts[k] for k in ("file", "bytes", "tensor_types")},
            "perplexity": s["perplexity"].perplexity,
            f"perplexity_vs_{reference}": s["perplexity"].perplexity / ref["perplexity"].perplexity,
            "perplexity_vs_transformers": (s["perplexity"].perplexity / transformers_ppl) if transformers_ppl else None,
            **{k: s["metrics"][k] for k in ("citation_f1", "rougeL_f1", "bleu_0_100", "chrf_0_100")},
            f"same_answer_as_{reference}": sum(a["prediction"] == b["prediction"] for a, b in zip(rows, ref["rows"]))
            / len(rows),
            "same_answer_as_transformers": (sum(r["prediction"] == answers[r["id"]]["tuned"] for r in rows) / len(rows)
                                            if answers and all(r["id"] in answers for r in rows) else None),
            "ended_on_end_of_turn": sum(r["finish_reason"] == "stop" for r in rows) / len(rows),
        }
    return out


def run(params: Params, adapter_dir: Path, test_path: Path, answers_path: Path, perplexity_path: Path,
        out_dir: Path, metrics_path: Path) -> dict:
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    if not params.export.enabled:
        (out_dir / DISABLED_NOTE).write_text("export.enabled is false in params.yaml: set it to true and run "
                                             "`dvc repro export` (docs/export.md)\n", encoding="utf-8")
        report = {"enabled": False}
        jsonl.write_json(metrics_path, report)
        return report
    llama = ensure_built()
    manifest, formats = write_files(params, llama, adapter_dir, out_dir)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(out_dir / "merged"))
    cases = read_test_split(test_path, params.export.limit)
    answers, transformers_ppl = transformers_reference(params, adapter_dir, cases, answers_path, perplexity_path)
    with tempfile.TemporaryDirectory(prefix="llama-server-") as logs:
        scored = {fmt: score_format(params, llama, out_dir / "gguf" / facts["file"], tokenizer, cases, Path(logs))
                  for fmt, facts in formats.items()}
    report = {
        "enabled": True,
        "adapter": {"dir": str(adapter_dir), "version": manifest.merged["adapter_version"]},
        "base": {"model": manifest.base_model, "revision": manifest.base_revision},
        "data_hash": manifest.data_hash,
        # Such a model expects retrieved provisions in its prompts, which llama-server and Ollama do not add.
        "trained_with_context": manifest.trained_with_context,
        "llama_cpp": llama.info()["source"],
        "questions": len(cases),
        "answer_tokens": next(iter(scored.values()))["perplexity"].answer_tokens,
        "transformers_perplexity": transformers_ppl,
        "reference_format": reference_format(formats),
        "formats": compare(formats, scored, answers, transformers_ppl),
    }
    jsonl.write_json(metrics_path, report)
    return report


def transformers_reference(params: Params, adapter_dir: Path, cases, answers_path: Path,
                           perplexity_path: Path) -> tuple[dict[str, dict], float | None]:
    """What the generate and perplexity stages computed with transformers for the same questions: the greedy
    answers by id and the perplexity. Only when they ran this adapter (export.adapter is the pipeline's) and, for
    the answers, greedily and unpenalised; else ({}, None) and the comparisons are left out."""
    if Path(adapter_dir) != Path(paths.ADAPTER):
        return {}, None
    answers = {r["id"]: r for r in read_answers(answers_path)} if plain_greedy(params.generate) else {}
    per_example = read_perplexity(perplexity_path).get("per_example", {})
    known = [per_example[c.id]["tuned"] for c in cases if c.id in per_example]
    if len(known) != len(cases):
        return answers, None
    return answers, math.exp(sum(e["nll_sum"] for e in known) / sum(e["answer_tokens"] for e in known))


def plain_greedy(gen) -> bool:
    """Whether llama-server can reproduce the generate stage's answers: greedy and without presence/frequency
    penalties, which llama-server applies over the prompt's last tokens too (OpenAI and vLLM: the answer's only)."""
    return gen.temperature == 0 and gen.presence_penalty == 0 and gen.frequency_penalty == 0


def main(argv: list[str] | None = None) -> int:
    params, args = stage_args(__name__, __doc__, argv, FILES)
    adapter = args.adapter or Path(params.export.adapter)
    t0 = time.perf_counter()
    report = run(params, adapter, args.test, args.answers, args.perplexity, args.out, args.metrics)
    if not report["enabled"]:
        print("export: off (set export.enabled: true to write the merged model and GGUF files)", file=sys.stderr)
        return 0
    if report["trained_with_context"]:
        print("export: this adapter was trained with retrieved provisions in its prompts (rag.train_with_context); "
              "llama-server and Ollama retrieve nothing: put the provisions into the prompt (docs/export.md)",
              file=sys.stderr)
    reference = report["reference_format"]
    for fmt, m in report["formats"].items():
        print(f"export: {fmt:>7} {m['bytes'] / 2**20:8.1f} MiB  perplexity {m['perplexity']:.4f} "
              f"(x{m['perplexity_vs_' + reference]:.4f} of {reference})  citation F1 {m['citation_f1']:.3f}",
              file=sys.stderr)
    print(f"export: done in {time.perf_counter() - t0:.0f}s -> {args.out}, {args.metrics}", file=sys.stderr)
    return 0
