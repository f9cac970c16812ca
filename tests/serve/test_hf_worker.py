"""serve/workers, the hf backend's worker without a server: a job that cannot run fails alone, and the cancel
queue is drained without blocking."""
from __future__ import annotations

import multiprocessing as mp

from vietlegal.model import chat

QUESTION = [{"role": "user", "content": "Tuổi kết hôn?"}]


def test_a_job_that_cannot_run_does_not_fail_its_batch(tiny_base, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    from vietlegal.serve.workers.hf_loop import decode_all

    model = AutoModelForCausalLM.from_pretrained(tiny_base[0]).eval()
    prompt = chat.encode_prompt(tiny_tokenizer, QUESTION)
    job = dict(prompt_ids=prompt, max_new_tokens=4, temperature=0.0, top_p=1.0, stop=[], seed=None)
    jobs = [dict(job, id="good-1"), dict(job, id="bad", prompt_ids=[]), dict(job, id="gone"), dict(job, id="good-2")]
    pieces, ended = {j["id"]: [] for j in jobs}, []
    for job_id, piece in decode_all(model, tiny_tokenizer, jobs, lambda: {"gone"}):
        assert job_id not in ended, "nothing follows a request's end"
        if piece is None:
            ended.append(job_id)
        else:
            pieces[job_id].append(piece)
    assert sorted(ended) == sorted(pieces), "every request ends, the bad and the cancelled ones too"
    assert "prompt_ids" in pieces["bad"][0].error
    assert pieces["gone"][-1].finish_reason == "cancelled"
    for good in ("good-1", "good-2"):
        last = pieces[good][-1]
        assert (last.finish_reason, last.completion_tokens, last.prompt_tokens) == ("length", 4, len(prompt))
        assert "".join(p.text for p in pieces[good]) == "".join(p.text for p in pieces["good-1"])


def test_cancel_queue_is_drained_without_blocking():
    from vietlegal.serve.workers.hf import ChatAPI

    queue = mp.get_context("spawn").Queue()
    api = ChatAPI({"key": "unused"}, None, queue)
    assert api.cancelled() == set()
    queue.put("chatcmpl-1")
    queue.put("chatcmpl-2")
    import time

    deadline = time.monotonic() + 5
    while api.cancelled() != {"chatcmpl-1", "chatcmpl-2"} and time.monotonic() < deadline:
        time.sleep(0.01)
    assert api.cancelled() == {"chatcmpl-1", "chatcmpl-2"}
