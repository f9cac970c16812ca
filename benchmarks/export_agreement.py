"""Where the GGUF files' greedy answers part from transformers', and how close the race was there.

    python benchmarks/export_agreement.py [--export models/export] [--test data/processed/test.jsonl]
                                          [--max-tokens 64] [--formats f16 q8_0 q4_k_m] [--serve models/adapter]

transformers decodes the merged model greedily, one question at a time, in its own dtype (what `vietlegal serve`
computes for the adapter); llama.cpp's server decodes each GGUF file from the same prompt ids (its /completion with
`return_tokens`). For every answer that differs it prints the first differing position and transformers' margin
there (top logit minus the second): a flip at a margin of 1e-3 is rounding at a near-tie, one at a margin of 1 is
a defect. It also prints the distribution of that margin over every greedy step. With --serve ADAPTER it also asks
`vietlegal serve` (serving that adapter) and llama-server (the F16 file) the same questions through the openai client
and counts identical answers (text, prompt and completion tokens, finish reason). Run after `dvc repro export`.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import requests
import torch

from vietlegal import paths
from vietlegal.data.splits import read_test_split
from vietlegal.export import gguf_files
from vietlegal.export.llama_cpp import ensure_built
from vietlegal.export.llama_server import ALIAS, LlamaServer
from vietlegal.model import chat
from vietlegal.model.decoding import end_token_ids


@torch.inference_mode()
def greedy(model, ids: list[int], max_tokens: int, ends: set[int]) -> tuple[list[int], list[float]]:
    out, margins, cache = [], [], None
    step = torch.tensor([ids])
    for _ in range(max_tokens):
        result = model(input_ids=step, past_key_values=cache, use_cache=True)
        cache, top = result.past_key_values, torch.topk(result.logits[0, -1].float(), 2)
        margins.append((top.values[0] - top.values[1]).item())
        token = int(top.indices[0])
        out.append(token)
        if token in ends:
            break
        step = torch.tensor([[token]])
    return out, margins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", type=Path, default=Path(paths.EXPORT))
    ap.add_argument("--test", type=Path, default=Path(paths.TEST_SPLIT))
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--formats", nargs="+", default=["f16", "q8_0", "q4_k_m"])
    ap.add_argument("--serve", type=Path, help="also compare `vietlegal serve` on this adapter with the F16 file")
    args = ap.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = args.export / "merged"
    tokenizer, model = AutoTokenizer.from_pretrained(str(merged)), AutoModelForCausalLM.from_pretrained(str(merged)).eval()
    cases, ends = read_test_split(args.test), end_token_ids(model, tokenizer)
    prompts = [chat.encode_prompt(tokenizer, c.prompt) for c in cases]
    reference = [greedy(model, ids, args.max_tokens, ends) for ids in prompts]
    margins = torch.tensor([m for _, ms in reference for m in ms])
    print(f"transformers ({model.dtype}), {len(cases)} questions, {len(margins)} greedy steps; top-2 logit margin: "
          f"min {margins.min():.1e}, 1% {margins.quantile(0.01):.1e}, 5% {margins.quantile(0.05):.1e}, "
          f"median {margins.median():.1e}")
    llama, logs = ensure_built(), Path(tempfile.mkdtemp(prefix="agreement-"))
    for fmt in args.formats:
        gguf = args.export / "gguf" / gguf_files.file_name(fmt)
        with LlamaServer(llama, gguf, logs / f"{fmt}.log", threads=1) as server:
            answers = [requests.post(server.url + "/completion", timeout=600, json={
                "prompt": ids, "n_predict": args.max_tokens, "temperature": 0, "return_tokens": True,
                "cache_prompt": False}).json()["tokens"] for ids in prompts]
        same = 0
        for case, got, (want, ms) in zip(cases, answers, reference):
            want = [t for t in want if t not in ends]
            if got == want:
                same += 1
                continue
            k = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            print(f"  {fmt}: {case.id} parts at token {k} of {len(want)}, transformers' margin there "
                  f"{ms[k]:.1e}" if k < len(ms) else f"  {fmt}: {case.id} differs in length only")
        print(f"{fmt}: {same}/{len(cases)} answers token for token as transformers'")
    if args.serve:
        same = served_alike(args.serve, args.export / "gguf" / gguf_files.file_name("f16"), cases, args.max_tokens,
                            llama, logs)
        print(f"vietlegal serve ({args.serve}) and llama-server (F16): {same}/{len(cases)} answers identical")


def served_alike(adapter: Path, gguf: Path, cases, max_tokens: int, llama, logs: Path) -> int:
    import openai

    from vietlegal.serve.process import ServerProcess

    same = 0
    # --no-rag: llama-server retrieves nothing, so `vietlegal serve` must not add provisions to the prompt either.
    with ServerProcess(adapter, logs / "serve.log", api_key="bench", extra_args=("--no-rag",)) as ours, \
            LlamaServer(llama, gguf, logs / "f16-served.log", threads=1) as theirs:
        clients = (openai.OpenAI(base_url=ours.base_url + "/v1", api_key="bench"),
                   openai.OpenAI(base_url=theirs.url + "/v1", api_key="none"))
        names = (clients[0].models.list().data[0].id, ALIAS)
        for case in cases:
            a, b = (c.chat.completions.create(model=n, messages=case.prompt, temperature=0, max_tokens=max_tokens)
                    for c, n in zip(clients, names))
            same += (a.choices[0].message.content, a.usage.prompt_tokens, a.usage.completion_tokens,
                     a.choices[0].finish_reason) == (b.choices[0].message.content, b.usage.prompt_tokens,
                                                     b.usage.completion_tokens, b.choices[0].finish_reason)
    return same


if __name__ == "__main__":
    main()
