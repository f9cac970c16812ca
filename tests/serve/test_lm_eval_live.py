"""lm-evaluation-harness, the real peer, against `vietlegal serve`: its `local-completions` model scores a
multiple-choice task by log-likelihood (POST /v1/completions with token-id prompts, `echo`, `logprobs`), its
`local-chat-completions` model runs a generation task (POST /v1/chat/completions), both as a user types them, on
a small Vietnamese task shipped in tests/serve/lm_eval_task/, offline (the tokenizer is the adapter's own).
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow

TASKS = Path(__file__).with_name("lm_eval_task")
KEY = "test-key"
DOCS = sum(1 for _ in (TASKS / "vietlegal_mc.jsonl").open(encoding="utf-8"))


def lm_eval(server, tmp_path: Path, model: str, path: str, task: str, *extra: str, model_args: str = "") -> tuple:
    """Run `lm_eval` as a user would; (its aggregated results, its logged samples)."""
    work = tmp_path / "task"
    shutil.copytree(TASKS, work)  # lm_eval reads the task's data file relative to where it runs
    out = tmp_path / "out"
    cmd = [str(Path(sys.executable).with_name("lm_eval")), "--model", model, "--model_args",
           f"model=vietlegal,base_url={server.base_url}{path},num_concurrent=1,max_retries=1{model_args}",
           "--tasks", task, "--include_path", str(work), "--output_path", str(out), "--log_samples", *extra]
    env = {**os.environ, "OPENAI_API_KEY": KEY, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(tmp_path / "datasets")}
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    print(done.stdout[-1500:])  # the harness's table: the figures docs/serving.md quotes
    results = json.loads(next(out.rglob("results_*.json")).read_text(encoding="utf-8"))
    samples = [json.loads(line) for line in next(out.rglob(f"samples_{task}_*.jsonl")).open(encoding="utf-8")]
    return results["results"][task], samples


def served_requests(server) -> int:
    """Requests the server answered with 200, from its own /metrics."""
    text = requests.get(server.base_url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).text
    return int(sum(float(v) for v in re.findall(r'^vietlegal_requests_total\{[^}]*status="200"[^}]*\} (\S+)$', text,
                                                 re.MULTILINE)))


def model_log_likelihood(model, tokenizer, context: str, continuation: str) -> float:
    """What lm-eval's number should be: the log-probability of the continuation's tokens after the context, with
    its tokenization (the pair encoded whole, no special tokens, the context's length split off)."""
    import torch

    whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
    start = len(tokenizer(context, add_special_tokens=False).input_ids)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([whole])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return sum(logprobs[i - 1, whole[i]].item() for i in range(start, len(whole)))


def test_local_completions_scores_a_multiple_choice_task_by_log_likelihood(live_server, tiny_adapter, tmp_path):
    before = served_requests(live_server)
    scores, samples = lm_eval(live_server, tmp_path, "local-completions", "/v1/completions", "vietlegal_mc",
                              model_args=f",tokenizer_backend=huggingface,tokenizer={tiny_adapter}")
    assert 0 <= scores["acc,none"] <= 1 and 0 <= scores["acc_norm,none"] <= 1
    assert len(samples) == DOCS and all(len(s["resps"]) == 4 for s in samples)
    assert served_requests(live_server) - before >= 4 * DOCS  # one log-likelihood request per choice
    # The harness's numbers are the model's: the first question's four choices, recomputed in-process.
    from vietlegal.model.adapter import load_for_inference

    model, tokenizer, _ = load_for_inference(tiny_adapter)
    first = samples[0]
    for i, resp in enumerate(first["resps"]):
        args = first["arguments"][f"gen_args_{i}"]
        got = float(resp[0][0])
        want = model_log_likelihood(model, tokenizer, args["arg_0"], args["arg_1"])
        assert math.isfinite(got) and got < 0 and got == pytest.approx(want, abs=2e-3), (args, got, want)


def test_local_chat_completions_runs_a_generation_task(live_server, tmp_path):
    before = served_requests(live_server)
    scores, samples = lm_eval(live_server, tmp_path, "local-chat-completions", "/v1/chat/completions",
                              "vietlegal_gen", "--apply_chat_template")
    assert 0 <= scores["exact_match,none"] <= 1
    assert len(samples) == DOCS and all(isinstance(s["resps"][0][0], str) for s in samples)
    assert served_requests(live_server) - before >= DOCS
