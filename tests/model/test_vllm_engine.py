"""The vLLM evaluation path on a machine without vLLM or a GPU: argument names against vLLM's own, the backend
choice, and the offline glue driven through the strict stand-in `vllm` package (tests/helpers/strict_vllm.py,
proven against vLLM 0.33.0 by tests/model/test_vllm_contract.py; the engine itself needs a GPU)."""
from __future__ import annotations

import json

import pytest

from vietlegal import cli
from vietlegal.errors import ConfigError, GenerationError, HardwareError
from vietlegal.model import chat, vllm_engine
from vietlegal.answering import select_backend
from vietlegal.model.sampling import SamplingRequest, vllm_sampling_kwargs
from vietlegal.params import GenerateConfig
from vietlegal.stages import generate
from tests.helpers import strict_vllm

def test_the_request_conversion_speaks_vllms_parameter_names():
    request = SamplingRequest([1, 2, 3], max_new_tokens=7, temperature=0.7, top_p=0.9, stop=["Điều"], seed=11)
    kwargs = vllm_sampling_kwargs(request, {5, 3})
    assert set(kwargs) <= set(strict_vllm.SAMPLING_FIELDS)
    assert kwargs == {"max_tokens": 7, "temperature": 0.7, "top_p": 0.9, "seed": 11, "stop": ["Điều"],
                      "stop_token_ids": [3, 5], "skip_special_tokens": True}


def test_engine_arguments_speak_vllms_names_and_carry_tensor_parallelism(tiny_adapter):
    kwargs = vllm_engine.engine_kwargs("/base", "rev", tiny_adapter, 4096, 64, "bfloat16", tensor_parallel_size=8)
    assert set(kwargs) <= set(strict_vllm.ENGINE_FIELDS)
    assert (kwargs["tensor_parallel_size"], kwargs["dtype"], kwargs["max_lora_rank"]) == (8, "bfloat16", 8)
    assert kwargs["gpu_memory_utilization"] == vllm_engine.GPU_MEMORY_UTILIZATION and kwargs["max_num_seqs"] == 64


def test_auto_is_hf_on_a_machine_without_a_gpu():
    assert select_backend("auto") == "hf"
    assert select_backend("hf") == "hf"
    with pytest.raises(HardwareError, match=r"generate\.backend: vllm needs a CUDA GPU.*make gpu"):
        select_backend("vllm")


def test_vllm_without_a_gpu_fails_at_once_with_one_line_naming_the_fix(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("generate:\n  backend: vllm\n", encoding="utf-8")
    # No test split and no adapter exist: the backend is refused before anything is read or loaded.
    code = cli.main(["generate", "--params", str(params), "--test", str(tmp_path / "none.jsonl"),
                     "--adapter", str(tmp_path / "none"), "--out", str(tmp_path / "a.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "generate.backend" in err and "`make gpu`" in err and "hf" in err


@pytest.fixture
def fake_vllm(monkeypatch):
    """The strict stand-in for the GPU-only package: records the engine and generate calls, rejects what vLLM does."""
    recorder = strict_vllm.install(monkeypatch)
    monkeypatch.setattr(vllm_engine, "available", lambda: True)
    return recorder


def scripted(expected_prompts: list[list[int]]):
    """Answer i: "<base|tuned> Điều i", i + 1 tokens, "length" for odd i (else "stop")."""
    def answer(prompt_ids, params, lora_request):
        i = expected_prompts.index(prompt_ids)
        tag = "tuned" if lora_request is not None else "base"
        return f"{tag} Điều {i}", [7] * (i + 1), "length" if i % 2 else "stop"
    return answer


def test_vllm_answers_the_hf_prompts_and_writes_the_same_rows(fake_vllm, tmp_path, tiny_adapter, processed_dir,
                                                               tiny_tokenizer):
    test = processed_dir / "test.jsonl"
    cases = [json.loads(line) for line in test.read_text(encoding="utf-8").splitlines()]
    expected = [chat.encode_prompt(tiny_tokenizer, c["messages"][:-1]) for c in cases]
    fake_vllm.answer = scripted(expected)
    cfg = GenerateConfig(max_new_tokens=6, batch_size=2, backend="vllm", temperature=0.5, seed=3, tensor_parallel_size=2,
                         max_num_seqs=48, gpu_memory_utilization=0.7)
    rows = generate.run(cfg, test, tiny_adapter, tmp_path / "answers.jsonl", tmp_path / "meta.json")
    hf_rows = generate.run(GenerateConfig(max_new_tokens=6, batch_size=2, backend="hf"), test, tiny_adapter,
                           tmp_path / "hf.jsonl", tmp_path / "hf_meta.json")
    assert [list(r) for r in rows] == [list(r) for r in hf_rows], "the same fields in the same order"
    assert [(r["id"], r["question"], r["reference"]) for r in rows] == [(r["id"], r["question"], r["reference"]) for r in hf_rows]
    assert [r["tuned"] for r in rows] == ["tuned Điều 0", "tuned Điều 1"] and rows[0]["base"] == "base Điều 0"
    assert [r["tuned_finish_reason"] for r in rows] == ["stop", "length"] and rows[1]["base_completion_tokens"] == 2
    assert json.loads((tmp_path / "meta.json").read_text()) == {"backend": "vllm", "questions": 2, "tensor_parallel_size": 2}
    assert json.loads((tmp_path / "hf_meta.json").read_text())["backend"] == "hf"

    (_, engine), (_, tuned_ids, tuned_params, lora), (_, base_ids, base_params, no_lora) = fake_vllm.calls
    assert engine["enable_lora"] is True and engine["tensor_parallel_size"] == 2 and engine["tokenizer"] == str(tiny_adapter)
    assert (engine["max_num_seqs"], engine["gpu_memory_utilization"]) == (48, 0.7), "vLLM's own bounds, not batch_size"
    assert tuned_ids == base_ids == expected, "the one chat template's ids, for both systems"
    assert lora.path == str(tiny_adapter) and lora.lora_int_id == 1 and no_lora is None, \
        "tuned = the adapter's LoRA request, base = none"
    assert [p.seed for p in tuned_params] == [p.seed for p in base_params] == [3, 4]
    assert all(p.max_tokens == 6 and p.temperature == 0.5 for p in tuned_params)


@pytest.mark.parametrize("reason", ["abort", "error", "repetition", None])
def test_an_answer_vllm_did_not_finish_cleanly_fails_the_stage_naming_the_question(fake_vllm, tmp_path, tiny_adapter,
                                                                                  processed_dir, reason):
    fake_vllm.answer = lambda ids, params, lora: ("half an answ", [7, 7], reason if lora is not None else "stop")
    out = tmp_path / "answers.jsonl"
    with pytest.raises(GenerationError, match=rf"test-0 \(tuned\): vLLM ended the answer with finish_reason {reason!r}"):
        generate.run(GenerateConfig(max_new_tokens=6, backend="vllm"), processed_dir / "test.jsonl", tiny_adapter, out,
                     tmp_path / "meta.json")
    assert not out.exists(), "nothing written as if the answers had ended cleanly"


def test_every_finish_reason_vllm_reports_is_mapped_or_refused():
    for reason in strict_vllm.modules(strict_vllm.Recorder())["vllm.v1.engine"].FINISH_REASON_STRINGS:
        if reason in ("stop", "length"):
            assert vllm_engine.finish_reason(reason, "q") == reason
        else:
            with pytest.raises(GenerationError, match="q: vLLM ended the answer"):
                vllm_engine.finish_reason(reason, "q")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("gpu_memory_utilization", 0, r"generate\.gpu_memory_utilization: must be in \(0, 1\], got 0"),
    ("gpu_memory_utilization", 1.2, r"generate\.gpu_memory_utilization: must be in \(0, 1\], got 1\.2"),
    ("max_num_seqs", 0, r"generate\.max_num_seqs: must be >= 1, got 0"),
])
def test_vllm_bounds_are_checked_when_params_load(field, value, message):
    with pytest.raises(ConfigError, match=message):
        GenerateConfig(**{field: value})
