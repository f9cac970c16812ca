"""The vLLM worker where vLLM cannot run (no GPU), on the strict stand-in `vllm` package (tests/helpers/strict_vllm.py,
proven against vLLM 0.33.0 by tests/model/test_vllm_contract.py): the worker's setup and requests, its outputs read
into Pieces, finish reasons mapped to OpenAI's enum, LoRA ids never reused, a model served whole without LoRA;
vLLM's engine and sampling arguments as the evaluation's vLLM path builds them."""
from __future__ import annotations

import asyncio
import json
import queue
import signal
import sys

import pytest

from tests.helpers import strict_vllm
from vietlegal.errors import AdapterError
from vietlegal.model import vllm_engine
from vietlegal.model.adapter import BASE_ADAPTER
from vietlegal.model.base import ResolvedBase
from vietlegal.model.sampling import SamplingRequest, vllm_sampling_kwargs
from vietlegal.serve.workers.vllm import OutputReader, VLLMChatAPI


def output(text, tokens, finished=False, reason=None, logprobs=None, prompt_logprobs=None):
    """vllm.outputs.RequestOutput (cumulative), the stand-in's."""
    return strict_vllm.RequestOutput("r", None, [1, 2], prompt_logprobs,
                                     [strict_vllm.CompletionOutput(0, text, tokens, None, logprobs, reason)], finished)


@pytest.fixture
def started(monkeypatch):
    """VLLMChatAPI(...) set up as LitServe's worker does, on the stand-in engine: (make(*args, **kwargs) -> the set-up
    worker, the stand-in's recorder). The signal handlers setup() changes are the test process's again afterwards."""
    recorder = strict_vllm.install(monkeypatch)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def make(adapters: dict[str, str], **kwargs) -> VLLMChatAPI:
        api = VLLMChatAPI(adapters, None, queue.Queue(), **kwargs)
        api.setup("cuda")
        return api

    yield make, recorder
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def answer(api: VLLMChatAPI, adapter: str | None) -> list:
    """The pieces of one request through the worker's predict."""
    job = {"id": f"job-{adapter}", **SamplingRequest([1, 2, 3], 4, adapter=adapter).as_payload()}

    async def run():
        return [piece async for piece in api.predict(job)]

    return asyncio.run(run())


@pytest.mark.parametrize("reason, finish", [("stop", "stop"), ("length", "length"), ("repetition", "length")])
def test_clean_ends_map_to_openais_enum(reason, finish):
    reader = OutputReader(SamplingRequest([1, 2], 4))
    first = reader.piece(output("Điều", [5]))
    last = reader.piece(output("Điều 1", [5, 6], True, reason))
    assert (first.text, first.token_ids, last.text, last.token_ids) == ("Điều", [5], " 1", [6])
    assert (last.finish_reason, last.prompt_tokens, last.completion_tokens) == (finish, 2, 2)


@pytest.mark.parametrize("reason, status", [("abort", 503), ("error", 500)])
def test_abort_and_error_fail_the_request_instead_of_passing_for_a_stop(reason, status):
    reader = OutputReader(SamplingRequest([1, 2], 4))
    piece = reader.piece(output("x", [5], True, reason))
    assert piece.error and piece.status == status and piece.finish_reason is None


def test_prompt_only_requests_drop_the_token_vllm_had_to_generate():
    lp = strict_vllm.Logprob
    reader = OutputReader(SamplingRequest([1, 2, 3], 0, prompt_logprobs=1))
    piece = reader.piece(output("x", [9], True, "length", prompt_logprobs=[None, {2: lp(-1.0), 7: lp(-0.5)},
                                                                             {3: lp(-2.0), 7: lp(-0.1)}]))
    assert (piece.text, piece.token_ids, piece.finish_reason, piece.completion_tokens) == ("", [], "length", 0)
    assert piece.prompt_logprobs == [None, (-1.0, [(7, -0.5)]), (-2.0, [(7, -0.1)])]


def test_a_key_loaded_again_gets_a_fresh_lora_int_id(started, tiny_adapter):
    """vLLM's prefix cache is keyed by lora_int_id: an id reused for other weights serves stale blocks."""
    make, _ = started
    api = make({"k1": str(tiny_adapter)}, max_loras=2, max_lora_rank=8)  # setup loads k1 (lora_int_id 1)
    asyncio.run(api._control({"control": "unload", "adapter": "k1"}))
    asyncio.run(api._control({"control": "load", "adapter": "k1", "path": str(tiny_adapter)}))
    asyncio.run(api._control({"control": "load", "adapter": "k2", "path": str(tiny_adapter)}))
    assert [api.loras[k].lora_int_id for k in ("k1", "k2")] == [2, 3]


def test_the_engine_gets_the_json_whitespace_rule_and_the_server_its_own_batch_bound(tiny_adapter, monkeypatch):
    from vietlegal.model import structure, vllm_engine
    from vietlegal.params import ServeConfig
    from vietlegal.serve import server

    args = vllm_engine.engine_kwargs("/b", None, tiny_adapter, 4096, 8)
    assert args["structured_outputs_config"] == {"backend": "xgrammar",
                                                 "disable_any_whitespace": not structure.ANY_WHITESPACE}
    cfg = ServeConfig(backend="vllm", max_batch_size=16, max_num_seqs=200, gpu_memory_utilization=0.8)
    monkeypatch.setattr(server, "cuda_available", lambda: True)  # the engine itself is never started here
    api, _, _ = server.make_api(cfg, {"k": str(tiny_adapter)}, None, None, None)
    assert (api.max_num_seqs, api.gpu_memory_utilization) == (200, 0.8)


# --- vLLM's engine and sampling arguments, and the worker's LoRA bookkeeping -------------------------------

@pytest.mark.parametrize("rank, slot", [(1, 1), (4, 8), (8, 8), (12, 16), (16, 16), (17, 32), (64, 64), (300, 320)])
def test_lora_rank_rounds_up_to_a_slot_vllm_accepts(rank, slot):
    assert vllm_engine.lora_rank_slot(rank) == slot


def test_lora_rank_above_vllms_limit_is_refused():
    with pytest.raises(AdapterError, match="lora_r"):
        vllm_engine.lora_rank_slot(600)


def test_engine_args_follow_the_adapter(tiny_adapter, tmp_path):
    args = vllm_engine.engine_kwargs("/models/base", "abc123", tiny_adapter, context=8192, max_num_seqs=32)
    assert args["enable_lora"] is True and args["max_lora_rank"] == 8  # the fixture adapter has r=8
    assert (args["model"], args["revision"], args["tokenizer"]) == ("/models/base", "abc123", str(tiny_adapter))
    assert (args["max_model_len"], args["max_num_seqs"], args["max_loras"]) == (8192, 32, 1)
    assert args["dtype"] == "auto"
    assert vllm_engine.engine_kwargs("b", None, tiny_adapter, 4096, 8, dtype="bfloat16")["dtype"] == "bfloat16"

    config = json.loads((tiny_adapter / "adapter_config.json").read_text())
    wide = tmp_path / "wide"
    wide.mkdir()
    (wide / "adapter_config.json").write_text(json.dumps({**config, "r": 16, "rank_pattern": {"q_proj": 48}}))
    assert vllm_engine.engine_kwargs("b", None, wide, 4096, 8)["max_lora_rank"] == 64
    (wide / "adapter_config.json").write_text(json.dumps({**config, "modules_to_save": ["lm_head"]}))
    with pytest.raises(AdapterError, match="modules_to_save"):
        vllm_engine.adapter_rank(wide)


def test_sampling_args_keep_the_request_meaning():
    job = {"id": "chatcmpl-1", "prompt_ids": [1, 2], "max_new_tokens": 7, "temperature": 0.0, "top_p": 0.9, "seed": 5,
           "stop": ["Điều"]}
    # What the vLLM worker converts each queued job with: the payload back to its request, then the shared conversion.
    def convert(payload: dict, end_ids: set[int]) -> dict:
        return vllm_sampling_kwargs(SamplingRequest.from_payload(payload), end_ids)

    args = convert(job, {9, 1, 8})
    assert args == {"max_tokens": 7, "temperature": 0.0, "top_p": 0.9, "seed": 5, "stop": ["Điều"],
                    "stop_token_ids": [1, 8, 9], "skip_special_tokens": True}
    assert convert({**job, "stop": []}, set())["stop"] is None


def test_vllm_is_never_imported_on_the_cpu_path():
    from vietlegal.serve.workers import vllm as vllm_worker  # the GPU backend's module imports without vllm

    assert vllm_worker.VLLMChatAPI and "vllm" not in sys.modules


def test_vllm_worker_keeps_one_lora_request_per_version_and_refuses_a_rank_above_its_slot(started, tmp_path,
                                                                                            tiny_adapter):
    """The worker's bookkeeping: one LoRARequest (name, int id, path) per version, on an engine of max_lora_rank 8."""
    import shutil

    make, _ = started
    api = make({"k1": str(tiny_adapter)}, max_loras=2, max_lora_rank=8)
    wide = tmp_path / "wide"
    shutil.copytree(tiny_adapter, wide)
    config = json.loads((wide / "adapter_config.json").read_text())
    (wide / "adapter_config.json").write_text(json.dumps({**config, "r": 32}))
    loaded = asyncio.run(api._control({"control": "load", "adapter": "k2", "path": str(tiny_adapter)}))
    refused = asyncio.run(api._control({"control": "load", "adapter": "k3", "path": str(wide)}))
    assert loaded.finish_reason == "done" and "max_lora_rank 8" in refused.error
    assert {k: (r.lora_name, r.lora_int_id, r.lora_path) for k, r in api.loras.items()} == {
        "k1": ("k1", 1, str(tiny_adapter)), "k2": ("k2", 2, str(tiny_adapter))}
    asyncio.run(api._control({"control": "unload", "adapter": "k1"}))
    assert list(api.loras) == ["k2"]


# --- the worker on the stand-in engine: adapters over their base, or a model served whole (`--model`) -------------

def test_adapters_are_served_over_their_base_with_lora_and_each_request_gets_its_versions(started, tiny_adapter,
                                                                                         tiny_base):
    make, recorder = started
    api = make({"k1": str(tiny_adapter)}, max_loras=2, max_lora_rank=8, max_num_seqs=8)
    (kind, engine), = recorder.calls
    assert kind == "engine" and (engine["model"], engine["tokenizer"], engine["enable_lora"]) == (
        str(tiny_base[0]), str(tiny_adapter), True)
    for adapter, lora in ((None, "k1"), ("k1", "k1"), (BASE_ADAPTER, None)):  # none named: the first version
        pieces = answer(api, adapter)
        assert pieces[-1].finish_reason in ("stop", "length") and not pieces[-1].error
        assert getattr(recorder.calls[-1][3], "lora_name", None) == lora


@pytest.mark.parametrize("whole", ["merged", "base"])
def test_a_model_served_whole_is_the_engines_model_without_lora(started, tiny_merged, tiny_base, tiny_adapter, whole):
    """`--model`: the merged directory (or the base alone) is vLLM's model, its own tokenizer, no enable_lora; no
    request carries a LoRARequest (the stand-in's admission refuses one on an engine without LoRA, as vLLM does)."""
    make, recorder = started
    path = str(tiny_merged if whole == "merged" else tiny_base[0])
    api = make({}, max_num_seqs=8, whole=ResolvedBase(path, path, None))
    (_, engine), = recorder.calls
    assert (engine["model"], engine["tokenizer"], engine["max_model_len"]) == (path, path, 2048)
    assert not {"enable_lora", "max_loras", "max_lora_rank"} & set(engine)
    for adapter in (None, BASE_ADAPTER):
        assert not answer(api, adapter)[-1].error and recorder.calls[-1][3] is None
    refused = asyncio.run(api._control({"control": "load", "adapter": "k2", "path": str(tiny_adapter)}))
    assert "without LoRA" in refused.error and api.loras == {}
