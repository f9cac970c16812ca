"""Serving parts without a server: versioning, validation, auth, the worker's batch, vLLM's config mapping."""
from __future__ import annotations

import json
import multiprocessing as mp
import sys

import pytest

from vietlegal.model import chat
from vietlegal.errors import AdapterError
from vietlegal.model.adapter import dir_md5
from vietlegal.errors import ConfigError
from vietlegal.params import ServeConfig, load_params
from vietlegal.model import vllm_engine
from vietlegal.model.sampling import SamplingRequest, vllm_sampling_kwargs
from vietlegal.serve.http import auth
from vietlegal.serve.protocol.errors import ApiError
from vietlegal.serve.protocol.convert import Validator
from vietlegal.serve.versions.version import adapter_version

QUESTION = [{"role": "user", "content": "Tuổi kết hôn?"}]


@pytest.fixture(scope="module")
def catalog(tiny_adapter, tiny_base):
    from vietlegal.params import TINY_MODEL_ID
    from vietlegal.serve.versions.catalog import open_catalog
    from vietlegal.serve.versions.version import BaseVersion

    return open_catalog(BaseVersion(TINY_MODEL_ID, tiny_base[1]), 2048, {"vietlegal": tiny_adapter}, {}, merged=True)


@pytest.fixture(scope="module")
def validator(tiny_tokenizer, catalog):
    return Validator(tiny_tokenizer, context=2048, default_max_tokens=32, catalog=catalog, system_prompt="Hệ thống.")


def parse(validator, body, **kw):
    return validator.parse(json.dumps(body).encode(), "chatcmpl-test", **kw)


# --- versioning -------------------------------------------------------------------------------------

def _lock(root, md5: str) -> None:
    (root / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  train:\n    cmd: vietlegal train\n    outs:\n"
        f"    - path: models/adapter\n      hash: md5\n      md5: {md5}.dir\n      size: 1\n      nfiles: 3\n",
        encoding="utf-8")


def test_version_is_confirmed_by_dvc_lock_only_when_it_records_these_bytes(tmp_path, tiny_adapter):
    import shutil

    from vietlegal.model.adapter import dir_md5

    adapter = tmp_path / "models" / "adapter"
    shutil.copytree(tiny_adapter, adapter)
    _lock(tmp_path, dir_md5(adapter))
    version = adapter_version(adapter)
    assert (version.hash, version.source) == (dir_md5(adapter)[:12], "dvc.lock")
    assert version.model_id == "vietlegal-" + version.hash and version.fingerprint == "fp_" + version.hash
    # A new version copied over the tracked directory: dvc.lock is stale and must not name it.
    (adapter / "adapter_config.json").write_text("{}", encoding="utf-8")
    copied = adapter_version(adapter)
    assert copied.source == "content" and copied.hash == dir_md5(adapter)[:12] != version.hash


def test_version_falls_back_to_the_content_hash(tiny_adapter):
    version = adapter_version(tiny_adapter)
    assert (version.hash, version.source) == (dir_md5(tiny_adapter)[:12], "content")


def test_dir_md5_is_the_md5_dvc_records(tmp_path, tiny_adapter):
    """The version of an adapter is the hash `dvc add` gives its directory (so dvc.lock can confirm it)."""
    import shutil
    import subprocess

    import yaml

    from vietlegal.model.adapter import dir_md5

    shutil.copytree(tiny_adapter, tmp_path / "adapter")
    (tmp_path / "adapter" / "nested").mkdir()
    (tmp_path / "adapter" / "nested" / "Điều 1.txt").write_text("Điều 1", encoding="utf-8")
    env = {"DVC_NO_ANALYTICS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"],
                [sys.executable, "-m", "dvc", "add", "-q", "adapter"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, env=env, capture_output=True)
    recorded = yaml.safe_load((tmp_path / "adapter.dvc").read_text(encoding="utf-8"))["outs"][0]["md5"]
    assert recorded == dir_md5(tmp_path / "adapter") + ".dir"


# --- validation -------------------------------------------------------------------------------------

def test_valid_request_becomes_a_job_with_the_training_prompt(validator, tiny_tokenizer):
    job = parse(validator, {"model": "vietlegal", "messages": QUESTION, "max_tokens": 5, "temperature": 0,
                            "top_p": 0.5, "stop": "Điều", "seed": 3})
    assert job.sampling.prompt_ids == chat.encode_prompt(tiny_tokenizer, chat.with_system(QUESTION, "Hệ thống."))
    assert (job.sampling.max_new_tokens, job.sampling.temperature, job.sampling.top_p, job.sampling.stop, job.sampling.seed) == (5, 0.0, 0.5, ["Điều"], 3)
    import dataclasses

    from vietlegal.model.sampling import SamplingRequest

    [payload] = job.payloads()
    assert set(payload) == {"id"} | {f.name for f in dataclasses.fields(SamplingRequest)}


def test_n_choices_are_n_jobs_with_consecutive_seeds_wrapping_in_int64(validator):
    job = parse(validator, {"messages": QUESTION, "n": 3, "seed": 2**63 - 2, "temperature": 0.5})
    assert [p["id"] for p in job.payloads()] == ["chatcmpl-test-0", "chatcmpl-test-1", "chatcmpl-test-2"]
    assert [p["seed"] for p in job.payloads()] == [2**63 - 2, 2**63 - 1, -(2**63)]


def test_what_openai_clients_send_is_accepted(validator):
    parts = [{"role": "developer", "content": [{"type": "text", "text": "Hệ"}, {"type": "text", "text": "thống."}]},
             {"role": "user", "content": "Tuổi kết hôn?", "name": "an"}]
    job = parse(validator, {"messages": parts, "top_p": 0, "seed": -(2**63), "max_tokens": 5.0, "logprobs": True,
                            "top_logprobs": 2, "metadata": {"k": "v"}, "store": False})
    assert job.sampling.prompt_ids == parse(validator, {"messages": [{"role": "system", "content": "Hệ\nthống."},
                                                                     QUESTION[0]]}).sampling.prompt_ids
    assert (job.sampling.top_p, job.sampling.seed, job.sampling.max_new_tokens, job.logprobs) == (0.0, -(2**63), 5, 2)


def test_vllm_sampling_extensions_reach_the_sampling_request(validator):
    job = parse(validator, {"messages": QUESTION, "top_k": 5, "min_p": 0.1, "repetition_penalty": 1.2,
                            "presence_penalty": 0.5, "frequency_penalty": -0.5, "stop_token_ids": [7],
                            "ignore_eos": True, "min_tokens": 2, "max_tokens": 4})
    s = job.sampling
    assert (s.top_k, s.min_p, s.repetition_penalty, s.presence_penalty, s.frequency_penalty, list(s.stop_token_ids),
            s.ignore_eos, s.min_tokens) == (5, 0.1, 1.2, 0.5, -0.5, [7], True, 2)


def test_a_schema_nested_deeper_than_vllms_limit_is_a_400_naming_it(validator):
    deep: dict = {"type": "string"}
    for _ in range(70):
        deep = {"type": "object", "properties": {"a": deep}}
    with pytest.raises(ApiError) as caught:
        parse(validator, {"messages": QUESTION, "response_format": {"type": "json_schema",
                                                                    "json_schema": {"name": "x", "schema": deep}}})
    assert caught.value.status == 400 and caught.value.param == "response_format.json_schema.schema"


def test_defaults_follow_openai_and_the_serve_config(validator):
    job = parse(validator, {"messages": QUESTION})
    assert (job.sampling.max_new_tokens, job.sampling.temperature, job.sampling.top_p, job.stream, job.sampling.stop) == (32, 1.0, 1.0, False, [])


def test_nfd_input_is_normalised_before_tokenizing(validator):
    import unicodedata

    nfd = [{"role": "user", "content": unicodedata.normalize("NFD", "Điều 8 Luật Hôn nhân")}]
    nfc = [{"role": "user", "content": "Điều 8 Luật Hôn nhân"}]
    assert parse(validator, {"messages": nfd}).sampling.prompt_ids == parse(validator, {"messages": nfc}).sampling.prompt_ids


def test_stream_options_need_a_stream_and_default_to_usage(validator):
    assert parse(validator, {"messages": QUESTION, "stream": True}).include_usage is False  # only when asked
    assert parse(validator, {"messages": QUESTION}, force_stream=True).stream is True
    off = parse(validator, {"messages": QUESTION, "stream": True, "stream_options": {"include_usage": False}})
    assert off.include_usage is False
    with pytest.raises(ApiError, match="stream_options"):
        parse(validator, {"messages": QUESTION, "stream_options": {"include_usage": True}})


@pytest.mark.parametrize("body, param", [
    ({"messages": QUESTION, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": QUESTION, "stop": [1]}, "stop[0]"),
    ({"messages": QUESTION, "seed": 1.5}, "seed"),
    ({"messages": QUESTION, "temperature": True}, "temperature"),
    ({"messages": QUESTION, "max_tokens": True}, "max_tokens"),
    ({"messages": QUESTION, "presence_penalty": 2.5}, "presence_penalty"),
    ({"messages": QUESTION, "logit_bias": {"5": 1.0}}, "logit_bias"),
    ({"messages": QUESTION, "top_logprobs": 2}, "top_logprobs"),
    ({"messages": QUESTION, "guided_json": {}}, "guided_json"),
    ({"messages": QUESTION, "n": 129}, "n"),
    ({"messages": QUESTION, "seed": 2**63}, "seed"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]}, "messages[0]"),
    ({"messages": QUESTION, "model": 7}, "model"),
    ({"messages": [QUESTION[0], {"role": "system", "content": "late"}]}, "messages[1]"),
])
def test_each_refusal_names_its_parameter(validator, body, param):
    with pytest.raises(ApiError) as caught:
        parse(validator, body)
    assert caught.value.status == 400 and caught.value.param == param
    assert set(caught.value.body()["error"]) == {"message", "type", "param", "code"}


def test_max_tokens_may_use_the_whole_remaining_context(validator):
    prompt_tokens = len(parse(validator, {"messages": QUESTION}).sampling.prompt_ids)
    assert parse(validator, {"messages": QUESTION, "max_tokens": 2048 - prompt_tokens}).sampling.max_new_tokens == 2048 - prompt_tokens
    with pytest.raises(ApiError, match="ask for at most"):
        parse(validator, {"messages": QUESTION, "max_tokens": 2049 - prompt_tokens})


# --- auth -------------------------------------------------------------------------------------------

def test_bearer_check():
    auth.check_bearer("/v1/models", "Bearer k1", "k1")
    auth.check_bearer("/v1/models", "bearer k1", "k1")
    auth.check_bearer("/health", None, "k1")  # probes stay open
    auth.check_bearer("/v1/models", None, None)  # no key configured: open
    for header in (None, "k1", "Bearer", "Bearer k2", "Basic k1"):
        with pytest.raises(ApiError) as caught:
            auth.check_bearer("/v1/chat/completions", header, "k1")
        assert caught.value.status == 401 and caught.value.code == "invalid_api_key"


# --- the worker's batch -----------------------------------------------------------------------------

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


# --- config -----------------------------------------------------------------------------------------

def test_params_yaml_serve_section_loads(tmp_path):
    from pathlib import Path

    cfg = load_params(Path(__file__).resolve().parents[2] / "params.yaml").serve
    assert isinstance(cfg, ServeConfig) and cfg.backend in ("hf", "vllm") and cfg.max_batch_size >= 1
    bad = tmp_path / "params.yaml"
    bad.write_text("serve:\n  max_batch: 4\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="serve.max_batch"):
        load_params(bad)


def test_unknown_backend_and_vllm_without_a_gpu_are_clear_errors(monkeypatch):
    from vietlegal.serve import server

    with pytest.raises(ConfigError, match="serve.backend"):
        server.make_api(ServeConfig(backend="tgi"), {"k": "adapter"}, None, None, None)
    monkeypatch.setattr(server, "cuda_available", lambda: False)
    with pytest.raises(server.HardwareError, match="CUDA"):
        server.make_api(ServeConfig(backend="vllm"), {"k": "adapter"}, None, None, None)


# --- vLLM mapping (vLLM itself cannot run here) -----------------------------------------------------

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


def test_vllm_worker_keeps_one_lora_request_per_version_and_refuses_a_rank_above_its_slot(tmp_path, tiny_adapter):
    """The worker's bookkeeping without vLLM: LoRARequest stands in as a tuple (name, int id, path)."""
    import asyncio
    import shutil

    from vietlegal.serve.workers import vllm as vllm_worker

    api = vllm_worker.VLLMChatAPI({"k1": str(tiny_adapter)}, None, None, max_loras=2, max_lora_rank=8)
    api._lora_request, api.rank_slot = (lambda *a: a), 8
    api._load("k1", str(tiny_adapter))
    wide = tmp_path / "wide"
    shutil.copytree(tiny_adapter, wide)
    config = json.loads((wide / "adapter_config.json").read_text())
    (wide / "adapter_config.json").write_text(json.dumps({**config, "r": 32}))
    loaded = asyncio.run(api._control({"control": "load", "adapter": "k2", "path": str(tiny_adapter)}))
    refused = asyncio.run(api._control({"control": "load", "adapter": "k3", "path": str(wide)}))
    assert loaded.finish_reason == "done" and "max_lora_rank 8" in refused.error
    assert api.loras == {"k1": ("k1", 1, str(tiny_adapter)), "k2": ("k2", 2, str(tiny_adapter))}
    asyncio.run(api._control({"control": "unload", "adapter": "k1"}))
    assert list(api.loras) == ["k2"]


# --- the command line -------------------------------------------------------------------------------

def test_serve_without_an_adapter_says_how_to_get_one(tmp_path, capsys):
    from vietlegal import cli

    assert cli.main(["serve", "--adapter", str(tmp_path / "missing")]) == 2
    assert "dvc pull" in capsys.readouterr().err


def test_serve_refuses_a_host_litserve_cannot_bind(tiny_adapter, capsys):
    from vietlegal import cli

    assert cli.main(["serve", "--adapter", str(tiny_adapter), "--host", "localhost"]) == 2
    assert "127.0.0.1" in capsys.readouterr().err


def test_a_stream_that_fails_after_it_started_ends_with_an_error_event_and_done():
    import asyncio

    from vietlegal.model.sampling import SamplingRequest
    from vietlegal.serve.http.routes import ChatAnswer
    from vietlegal.serve.protocol.convert import ChatJob
    from vietlegal.serve.http.prometheus import RequestRecord
    from vietlegal.serve.protocol.piece import Piece
    from vietlegal.serve.http.routes import ChatSpec
    from vietlegal.serve.versions.version import AdapterVersion

    from vietlegal.serve.versions.catalog import Target

    spec = ChatSpec(None, None, 1000, None)
    job = ChatJob("chatcmpl-x", SamplingRequest([1, 2]), stream=True,
                  target=Target(None, AdapterVersion("abc123abc123", "content")))

    async def pieces():
        yield 0, Piece(text="Điều")
        raise ApiError(500, "generation failed: boom", None, "internal_error")

    async def collect():
        answer = ChatAnswer(job, None)
        return [event async for event in spec._sse(job, answer, pieces(), RequestRecord(job.id, stream=True))]

    events = asyncio.run(collect())
    assert '"content": "Điều"' in events[1]
    assert json.loads(events[-2][len("data: "):])["error"]["code"] == "internal_error"
    assert events[-1] == "data: [DONE]\n\n"
