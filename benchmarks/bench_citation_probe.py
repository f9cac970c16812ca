"""Does pre-training on copy documents teach the tiny base to copy an article number from its context?

A copy document is a reference block as the grounded prompt prints it (rag.context's header, two training
articles "[i] Điều N <code> - title" with 200 characters of text) then "Theo Điều N <code> về ...: quote" citing
one of them. --docs plain: the pretrain stage's documents; cite: copy documents only; mix: both. At every
evaluation it prints the copy probe: on 60 held-out articles' copy documents, is the argmax at the number's
tokens after "Theo Điều " the number in the block (whole number, first token)? Run from the repository root after
`dvc repro statute_qa`; writes a base that bench_citation_sft.py --base takes (docs/training.md, "Citations"):

    python benchmarks/bench_citation_probe.py /tmp/copy-base --docs cite --steps 600
    python benchmarks/bench_citation_probe.py /tmp/copy-base --docs cite --steps 300 --seq 512 --bs 8
    python benchmarks/bench_citation_probe.py /tmp/mix-base --docs mix --steps 150
"""
import argparse, json, random, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from vietlegal.model import tiny
from vietlegal.params import load_params
from vietlegal.rag.corpus import read_provisions
from vietlegal.rag.context import clip, HEADER
from vietlegal.stages.pretrain import document
from vietlegal.train import pretraining
ap = argparse.ArgumentParser()
ap.add_argument("out"); ap.add_argument("--docs", default="plain"); ap.add_argument("--steps", type=int, default=150)
ap.add_argument("--layers", type=int, default=2); ap.add_argument("--hidden", type=int, default=128)
ap.add_argument("--heads", type=int, default=4); ap.add_argument("--kv", type=int, default=2)
ap.add_argument("--lr", type=float, default=3e-3); ap.add_argument("--seq", type=int, default=256)
ap.add_argument("--bs", type=int, default=16)
a = ap.parse_args()
p = load_params("params.yaml")
provs = read_provisions(Path(p.statute_qa.corpus), {}, [], "")
split = json.loads(Path("data/statute_qa/articles.json").read_text())
held = set(split.get("val", [])) | set(split.get("test", []))
train_p = [x for x in provs if x.id not in held]
rng = random.Random(42)
def cite_doc(x, others):
    # a reference block as the grounded prompt prints it, then a sentence citing the first provision
    hits = [x] + rng.sample(others, 1)
    if rng.random() < 0.5: hits.reverse()
    target = x
    entries = [f"[{i}] {h.citation}" + (f" - {h.title}" if h.title else "") + "\n" + clip(h.text, 200) for i, h in enumerate(hits, 1)]
    subj = (x.title or "").lower()
    return HEADER + "\n" + "\n\n".join(entries) + f"\n\nTheo {x.citation} về {subj}: " + clip(x.text, 120)
docs = [document(x) for x in train_p]
if a.docs in ("cite", "mix"):
    extra = [cite_doc(x, train_p) for x in train_p]
    docs = extra if a.docs == "cite" else docs + extra
    rng.shuffle(docs)
tok = tiny.tokenizer()
blocks = pretraining.blocks(tok, docs, a.seq)
heldb = pretraining.blocks(tok, [document(x) for x in provs if x.id in held], a.seq)[:64]
sizes = {"hidden_size": a.hidden, "intermediate_size": 2 * a.hidden, "num_hidden_layers": a.layers,
         "num_attention_heads": a.heads, "num_key_value_heads": a.kv}
model = tiny.random_model(tok, sizes, 42)
# copy probe: held-out articles as cite docs; argmax accuracy on the article-number tokens after "Theo Điều "
heldp = [x for x in provs if x.id in held][:60]
probe = []
for x in heldp:
    d = "<|begin_of_text|>" + cite_doc(x, train_p)
    cut = d.rindex("Theo " + x.citation)
    prefix = d[:cut] + "Theo Điều "
    ids = tok(prefix, add_special_tokens=False)["input_ids"]
    num = tok(str(x.article), add_special_tokens=False)["input_ids"]
    if len(ids) + len(num) <= 1000: probe.append((ids, num))
_orig = pretraining.evaluate
def evaluate(m, data, bs):
    loss = _orig(m, data, bs)
    ok = tok_ok = 0
    with torch.no_grad():
        for ids, num in probe:
            out = m(input_ids=torch.tensor([ids + num])).logits[0]
            pred = out[len(ids) - 1: len(ids) - 1 + len(num)].argmax(-1).tolist()
            ok += pred == num; tok_ok += pred[0] == num[0]
    print(f"copy probe: whole number {ok}/{len(probe)}, first token {tok_ok}/{len(probe)}", file=sys.stderr, flush=True)
    return loss
pretraining.evaluate = evaluate
sched = pretraining.Schedule(a.steps, a.bs, a.seq, a.lr, 10, 0.1, max(50, a.steps // 4), 42)
t0 = time.time()
curve = pretraining.train(model, blocks, heldb, sched, lambda pt: print(pt, file=sys.stderr, flush=True))
tiny.save_pretrained_base(model, tok, Path(a.out), sizes)
print(json.dumps({"args": vars(a), "blocks": len(blocks), "seconds": round(time.time() - t0), "ppl": curve.points[-1]["eval_perplexity"]}))
