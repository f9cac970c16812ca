"""Several adapter versions in the HF worker: one base, mixed-adapter batches, versions loaded and dropped between
decoding steps without changing what a request in flight generates."""
from __future__ import annotations

import pytest

from vietlegal.model import untrained
from vietlegal.model.adapter import BASE_ADAPTER, load_adapters, load_for_inference
from vietlegal.serve.workers.hf_adapters import WorkerAdapters
from vietlegal.serve.workers.hf_loop import Decoder, decode_all


@pytest.fixture(scope="module")
def versions(tmp_path_factory, tiny_base):
    root = tmp_path_factory.mktemp("versions")
    return {name: untrained.adapter(root / name, seed=seed) for name, seed in (("a", 1), ("b", 2), ("c", 3))}


@pytest.fixture(scope="module")
def prompts(tiny_tokenizer):
    texts = ["Tuổi kết hôn là bao nhiêu?", "Điều 139 Bộ luật Lao động 2019 quy định gì?", "Thời hiệu khởi kiện?"]
    return [tiny_tokenizer.encode(t) for t in texts]


def payload(job_id: str, prompt: list[int], adapter: str | None, max_new_tokens: int = 12) -> dict:
    return {"id": job_id, "prompt_ids": prompt, "max_new_tokens": max_new_tokens, "temperature": 0.0, "adapter": adapter}


def texts(pieces) -> dict[str, str]:
    out: dict[str, str] = {}
    for job_id, piece in pieces:
        if piece is not None:
            assert not piece.error, piece.error
            out[job_id] = out.get(job_id, "") + piece.text
    return out


def alone(adapter_dir, prompt, tokenizer, max_new_tokens: int = 12) -> str:
    """The answer of a model that holds only this adapter (greedy): what a mixed batch must reproduce."""
    model, _, _ = load_for_inference(adapter_dir)
    return texts(decode_all(model, tokenizer, [payload("x", prompt, None, max_new_tokens)], set))["x"]


def test_requests_for_different_adapters_in_one_batch_get_each_adapters_answer(versions, prompts, tiny_tokenizer):
    model = load_adapters({"a": versions["a"], "b": versions["b"]})
    jobs = [payload("on-a", prompts[0], "a"), payload("on-b", prompts[0], "b"), payload("on-base", prompts[1], BASE_ADAPTER),
            payload("on-b-2", prompts[2], "b")]
    got = texts(decode_all(model, tiny_tokenizer, jobs, set, WorkerAdapters(model, merged=False)))
    assert got["on-a"] == alone(versions["a"], prompts[0], tiny_tokenizer)
    assert got["on-b"] == alone(versions["b"], prompts[0], tiny_tokenizer)
    assert got["on-b-2"] == alone(versions["b"], prompts[2], tiny_tokenizer)
    assert got["on-a"] != got["on-b"]  # the adapters differ, so the batch really mixed them
    with model.disable_adapter():
        base = texts(decode_all(model, tiny_tokenizer, [payload("x", prompts[1], None)], set))["x"]
    assert got["on-base"] == base


def test_a_version_switched_mid_stream_finishes_the_request_on_the_old_one(versions, prompts, tiny_tokenizer):
    model = load_adapters({"a": versions["a"]})
    adapters = WorkerAdapters(model, merged=False)
    sent: list = []
    decoder = Decoder(model, tiny_tokenizer, set, lambda job_id, piece: sent.append((job_id, piece)), adapters)
    decoder.submit([payload("old", prompts[1], "a", max_new_tokens=20)])
    for _ in range(3):
        decoder.step()
    # What --watch sends when a new version lands: load it, then unload the old; then a request for the new one.
    decoder.submit([{"id": "load", "control": "load", "adapter": "c", "path": str(versions["c"])},
                    {"id": "unload", "control": "unload", "adapter": "a"}, payload("new", prompts[1], "c")])
    assert "a" in model.peft_config  # still decoding "old"
    while decoder.size:
        decoder.step()
    got = texts(sent)
    assert got["old"] == alone(versions["a"], prompts[1], tiny_tokenizer, max_new_tokens=20)
    assert got["new"] == alone(versions["c"], prompts[1], tiny_tokenizer)
    assert set(model.peft_config) == {"c"}  # the old weights dropped once nothing used them
    ends = {job_id: piece for job_id, piece in sent if job_id in ("load", "unload") and piece is not None}
    assert ends["load"].finish_reason == ends["unload"].finish_reason == "done"


def test_a_broken_load_is_answered_with_its_reason_and_the_worker_goes_on(versions, prompts, tiny_tokenizer, tmp_path):
    model = load_adapters({"a": versions["a"]})
    adapters = WorkerAdapters(model, merged=False)
    jobs = [{"id": "load", "control": "load", "adapter": "z", "path": str(tmp_path)}, payload("after", prompts[0], "a"),
            payload("unknown", prompts[0], "nope")]
    pieces = list(decode_all(model, tiny_tokenizer, jobs, set, adapters))
    errors = {job_id: piece.error for job_id, piece in pieces if piece is not None and piece.error}
    assert set(errors) == {"load", "unknown"} and "not loaded" in errors["unknown"]
    assert texts([p for p in pieces if p[0] == "after"])["after"] == alone(versions["a"], prompts[0], tiny_tokenizer)
    assert set(model.peft_config) == {"a"} and not adapters.in_use


def test_adapters_on_different_modules_mix_with_base_rows_and_a_reloaded_version_is_routed_again(
        versions, prompts, tiny_tokenizer, tmp_path):
    wide = untrained.adapter(tmp_path / "wide", seed=5, r=4, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))
    model = load_adapters({"a": versions["a"], "wide": wide})
    adapters = WorkerAdapters(model, merged=False)
    jobs = [payload("a", prompts[0], "a"), payload("wide", prompts[0], "wide"), payload("base", prompts[0], BASE_ADAPTER)]
    got = texts(decode_all(model, tiny_tokenizer, jobs, set, adapters))
    assert got["a"] == alone(versions["a"], prompts[0], tiny_tokenizer)
    assert got["wide"] == alone(wide, prompts[0], tiny_tokenizer)
    with model.disable_adapter():
        assert got["base"] == texts(decode_all(model, tiny_tokenizer, [payload("x", prompts[0], None)], set))["x"]
    # Drop "wide" and load it again: its fresh scaling must be routed per row, not added to every row.
    adapters.unload("wide")
    adapters.load("wide", str(wide))
    again = texts(decode_all(model, tiny_tokenizer, jobs, set, adapters))
    assert again == got
