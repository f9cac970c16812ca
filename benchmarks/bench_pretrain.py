"""Held-out perplexity of the pre-trained tiny base against minutes, per size: how the pretrain params were picked.

    python benchmarks/bench_pretrain.py                               # the sizes of docs/training.md, 300 steps each
    python benchmarks/bench_pretrain.py --sizes 128x2 --steps 600     # hidden x layers

Each size trains with the pretrain stage's own code (`vietlegal.stages.pretrain.texts`, `vietlegal.train.
pretraining`) and the default params otherwise, on the committed corpus with the generated Q&A's val and test
articles held out (it runs `vietlegal statute-qa` logic in memory), and prints one line per evaluation:
size, parameters, step, seconds, held-out perplexity. On a shared machine the seconds are wall time: say so.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["64x2", "128x2", "128x4", "256x2"], help="hidden x layers")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--eval-every", type=int, default=25)
    args = ap.parse_args()

    import torch

    from vietlegal.model import tiny
    from vietlegal.params import load_params
    from vietlegal.stages import pretrain, statute_qa
    from vietlegal.train import pretraining

    params = load_params(ROOT / "params.yaml")
    cfg = params.pretrain
    torch.set_num_threads(cfg.cpu_threads or torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        qa_cfg = params.statute_qa
        corpus = ROOT / qa_cfg.corpus
        qa = qa_cfg.__class__(**{**vars(qa_cfg), "corpus": str(corpus), "templates": str(ROOT / qa_cfg.templates)})
        statute_qa.run(qa, Path(tmp) / "qa.jsonl", Path(tmp) / "articles.json")
        train_docs, held_docs = pretrain.texts(corpus, Path(tmp) / "articles.json")
    tokenizer = tiny.tokenizer()
    train_blocks = pretraining.blocks(tokenizer, train_docs, cfg.seq_length)
    held_blocks = pretraining.blocks(tokenizer, held_docs, cfg.seq_length)[:pretrain.EVAL_BLOCKS]
    print(f"{len(train_blocks)} training blocks, {len(held_blocks)} held-out blocks of {cfg.seq_length} tokens; "
          f"threads {torch.get_num_threads()}", file=sys.stderr)
    for size in args.sizes:
        hidden, layers = (int(x) for x in size.split("x"))
        sizes = {"hidden_size": hidden, "intermediate_size": 2 * hidden, "num_hidden_layers": layers,
                 "num_attention_heads": 4, "num_key_value_heads": 2}
        model = tiny.random_model(tokenizer, sizes, cfg.seed)
        n = sum(p.numel() for p in model.parameters())
        schedule = pretraining.Schedule(args.steps, cfg.batch_size, cfg.seq_length, cfg.learning_rate,
                                        cfg.warmup_steps, cfg.weight_decay, args.eval_every, cfg.seed)
        pretraining.train(model, train_blocks, held_blocks, schedule, on_eval=lambda p, size=size, n=n: print(
            json.dumps({"size": size, "parameters": n, **p}), flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
