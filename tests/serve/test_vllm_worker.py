"""The vLLM worker's plain-Python half (vLLM cannot run here): its outputs read into Pieces, finish reasons mapped
to OpenAI's enum, and LoRA ids never reused."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace as NS

import pytest

from vietlegal.model.sampling import SamplingRequest
from vietlegal.serve.workers.vllm import OutputReader, VLLMChatAPI


def output(text, tokens, finished=False, reason=None, logprobs=None, prompt_logprobs=None):
    """The shape of vllm.outputs.RequestOutput (cumulative), as vllm/outputs.py defines it."""
    return NS(finished=finished, prompt_logprobs=prompt_logprobs,
              outputs=[NS(text=text, token_ids=tokens, finish_reason=reason, logprobs=logprobs)])


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
    lp = lambda v: NS(logprob=v)  # noqa: E731
    reader = OutputReader(SamplingRequest([1, 2, 3], 0, prompt_logprobs=1))
    piece = reader.piece(output("x", [9], True, "length", prompt_logprobs=[None, {2: lp(-1.0), 7: lp(-0.5)},
                                                                             {3: lp(-2.0), 7: lp(-0.1)}]))
    assert (piece.text, piece.token_ids, piece.finish_reason, piece.completion_tokens) == ("", [], "length", 0)
    assert piece.prompt_logprobs == [None, (-1.0, [(7, -0.5)]), (-2.0, [(7, -0.1)])]


def test_a_key_loaded_again_gets_a_fresh_lora_int_id(tiny_adapter):
    """vLLM's prefix cache is keyed by lora_int_id: an id reused for other weights serves stale blocks."""
    api = VLLMChatAPI({"k1": str(tiny_adapter)}, None, None, max_loras=2, max_lora_rank=8)
    api._lora_request, api.rank_slot = (lambda *a: a), 8
    api._load("k1", str(tiny_adapter))
    asyncio.run(api._control({"control": "unload", "adapter": "k1"}))
    asyncio.run(api._control({"control": "load", "adapter": "k1", "path": str(tiny_adapter)}))
    asyncio.run(api._control({"control": "load", "adapter": "k2", "path": str(tiny_adapter)}))
    assert [api.loras[k][1] for k in ("k1", "k2")] == [2, 3]


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
