"""`vietlegal <command>`: one entry point for every stage; dvc.yaml calls these.

Commands are imported lazily so `vietlegal serve` never imports training code (and a CPU machine
never imports unsloth or vllm).
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "prepare": ("vietlegal.prepare", "split raw Q&A files into clean chat-format train/val/test"),
    "train": ("vietlegal.train", "LoRA fine-tuning (Unsloth on a GPU, TRL + PEFT anywhere)"),
    "generate": ("vietlegal.generate", "answer the test split with the base model and the adapter"),
    "perplexity": ("vietlegal.perplexity", "token-weighted perplexity of the test answers, base and adapter"),
    "evaluate": ("vietlegal.evaluate", "score generated answers: ROUGE, BLEU, chrF++, perplexity, citations"),
    "score": ("vietlegal.score", "score any predictions JSONL with the evaluation metrics"),
    "judge": ("vietlegal.judge", "LLM-as-judge over generated answers (off unless configured)"),
    "serve": ("vietlegal.serve", "OpenAI-compatible API on LitServe"),
    "bench": ("vietlegal.bench", "latency/throughput benchmark against a running server"),
    "remote": ("vietlegal.remote", "check the DVC remote (Spaces): endpoint, credentials, bucket"),
    "summary": ("vietlegal.summary", "print the headline metrics of the last run, readable in a terminal"),
    "tiny": ("vietlegal.tiny_cli", "build the embedded tiny Llama model and print where it is"),
    "index": ("vietlegal.rag.index", "build the retrieval index (BM25 + dense) over the provision corpus"),
    "retrieval": ("vietlegal.rag.retrieval", "retrieval recall@k on the test split (gold: cited provisions)"),
    "ground": ("vietlegal.rag.ground", "the training splits, grounded with retrieved provisions if rag.train_with_context"),
    "generate-rag": ("vietlegal.rag.generate", "answer the test split with retrieved provisions in the prompt"),
    "evaluate-rag": ("vietlegal.rag.evaluate", "citation F1, ROUGE, BLEU with and without retrieval, side by side"),
}

# Errors a user can fix: printed as one clear line, no traceback.
USER_ERRORS = ("ConfigError", "BaseModelError", "AdapterError", "ChatError", "DataError", "PredictionsError", "HardwareError")


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items())
    return f"usage: vietlegal <command> [options]\n\ncommands:\n{rows}\n\n`vietlegal <command> --help` for options."


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"vietlegal: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return module.main(rest) or 0
    except Exception as exc:  # noqa: BLE001 - user errors get one line, bugs keep their traceback
        if type(exc).__name__ in USER_ERRORS:
            print(f"vietlegal {name}: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
