"""Citation F1 of the tiny default after SFT variants: does the model copy the cited article from its context?

Run from the repository root after `dvc repro` (it reads models/pretrained, data/training, data/processed/test.jsonl
and models/index); prints one JSON line: citation F1 and ROUGE-L closed-book and with retrieval, training seconds,
three answers. The project's own functions (chat.encode_example, context.ground, decoding.generate,
citation_scores) with PEFT LoRA or full fine-tuning in a plain loop (docs/training.md, "Citations"):

    python benchmarks/bench_citation_sft.py                                  # the default: LoRA r 16, 100 steps
    python benchmarks/bench_citation_sft.py --mode full --lr 1e-3 --steps 300
    python benchmarks/bench_citation_sft.py --steps 100 --save /tmp/lora     # then decoding variants on it:
    python benchmarks/bench_citation_sft.py --adapter /tmp/lora --pres 0.5 --freq 0.3
    python benchmarks/bench_citation_sft.py --base /tmp/copy-base            # a base from bench_citation_probe.py
"""
import argparse, json, random, sys, time, re

import torch
torch.set_num_threads(1)
from vietlegal.model import tiny, chat, decoding
from vietlegal.model.sampling import SamplingRequest
from vietlegal.data.splits import read_split, read_test_split
from vietlegal.metrics.citation import citation_scores
from vietlegal.params import load_params
from vietlegal.rag.retriever import Retriever
from vietlegal.stages.generate_rag import grounded_cases

ap = argparse.ArgumentParser()
ap.add_argument("--base", default="models/pretrained")
ap.add_argument("--steps", type=int, default=100)
ap.add_argument("--lr", type=float, default=3e-3)
ap.add_argument("--bs", type=int, default=8)
ap.add_argument("--r", type=int, default=16)
ap.add_argument("--mode", default="lora")
ap.add_argument("--train", default="data/training/train.jsonl")
ap.add_argument("--answer-fmt", default=None, help="rewrite answers: 'theo' puts 'Theo Điều N <instr>' first")
ap.add_argument("--max-len", type=int, default=768)
ap.add_argument("--n-test", type=int, default=73)
ap.add_argument("--rep", type=float, default=1.0)
ap.add_argument("--seed", type=int, default=42)
ap.add_argument("--save", default=None)
ap.add_argument("--adapter", default=None)
ap.add_argument("--freq", type=float, default=0.0)
ap.add_argument("--pres", type=float, default=0.0)
a = ap.parse_args()
t0 = time.time()
from transformers import AutoModelForCausalLM
tok = tiny.tokenizer()
model = AutoModelForCausalLM.from_pretrained(a.base, torch_dtype=torch.float32)
params = load_params("params.yaml")
train = read_split(a.train)
CIT = re.compile(r"^(?:Theo |Vấn đề này được quy định tại )?(Điều \d+\w* [^:(]+?)(?: về [^:]*| \([^)]*\))?(?: quy định)?: (.*)$", re.S)
def rewrite(msgs):
    if not a.answer_fmt: return msgs
    ans = msgs[-1]["content"]
    m = CIT.match(ans)
    if not m: return msgs
    return msgs[:-1] + [{"role": "assistant", "content": f"Theo {m.group(1)}: {m.group(2)}"}]
exs = [chat.encode_example(tok, rewrite(c.messages), a.max_len) for c in train]
print("examples", len(exs), "rewritten", sum(1 for c in train if CIT.match(c.messages[-1]['content'])), file=sys.stderr)
torch.manual_seed(a.seed)
if a.adapter:
    from peft import PeftModel
    model = PeftModel.from_pretrained(model, a.adapter); a.steps = 0
elif a.mode == "lora":
    from peft import LoraConfig, get_peft_model
    model = get_peft_model(model, LoraConfig(r=a.r, lora_alpha=2 * a.r, lora_dropout=0.05, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad] or [torch.nn.Parameter(torch.zeros(1))], lr=a.lr, weight_decay=0.0)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / 5) * max(0.0, 1 - s / max(a.steps, 1)))
rng = random.Random(a.seed)
order = []
pad = tok.pad_token_id
model.train()
for step in range(a.steps if not a.adapter else 0):
    if len(order) < a.bs:
        order = list(range(len(exs))); rng.shuffle(order)
    batch = [exs[order.pop()] for _ in range(a.bs)]
    L = max(len(e.input_ids) for e in batch)
    ids = torch.tensor([e.input_ids + [pad] * (L - len(e.input_ids)) for e in batch])
    lab = torch.tensor([e.labels + [-100] * (L - len(e.labels)) for e in batch])
    att = (torch.arange(L)[None] < torch.tensor([len(e.input_ids) for e in batch])[:, None]).long()
    loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
    loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); sched.step(); opt.zero_grad()
    if step % 25 == 0 or step == a.steps - 1:
        print(f"step {step} loss {loss.item():.3f} {time.time()-t0:.0f}s", file=sys.stderr)
train_s = time.time() - t0
model.eval()
retriever = Retriever.load(params.rag.index_dir, params.rag.corpus_dir, params.rag)
tests = read_test_split("data/processed/test.jsonl", a.n_test)
gcases, _ = grounded_cases(tests, retriever)
res = {}
for name, cases in (("closed", tests), ("rag", gcases)):
    reqs = [SamplingRequest(chat.encode_prompt(tok, c.prompt), 64, 0.0, 1.0, repetition_penalty=a.rep, frequency_penalty=a.freq, presence_penalty=a.pres) for c in cases]
    with torch.no_grad():
        outs = decoding.generate(model, tok, reqs, 16)
    preds = [o.text for o in outs]
    refs = [c.reference for c in cases]
    cit, _ = citation_scores(preds, refs)
    from vietlegal.metrics import rouge
    res[name] = {"cit_f1": round(cit["citation_f1"], 3), "cited": cit["citations_cited"], "correct": cit["citations_correct"]}
    try:
        rs = rouge.rouge_f1(preds, refs); res[name]["rougeL"] = round(sum(r["rougeL_f1"] for r in rs) / len(rs), 3)
    except Exception as e:
        res[name]["rougeL_err"] = str(e)[:80]
    res[name]["ex"] = preds[:3]
print(json.dumps({"args": vars(a), "train_s": round(train_s), "total_s": round(time.time() - t0), **res}, ensure_ascii=False))
if a.save:
    model.save_pretrained(a.save)
