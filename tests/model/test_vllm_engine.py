"""The vLLM evaluation path on a machine without vLLM or a GPU: argument names against vLLM's own, the backend
choice, and the offline glue driven through a stand-in `vllm` package (the engine itself needs a GPU)."""
from __future__ import annotations

import json
import sys

import pytest

from vietlegal import cli
from vietlegal.errors import HardwareError
from vietlegal.model import chat, vllm_engine
from vietlegal.answering import select_backend
from vietlegal.model.sampling import SamplingRequest, vllm_sampling_kwargs
from vietlegal.params import GenerateConfig
from vietlegal.stages import generate

# Field names of vllm.SamplingParams and of vllm.EngineArgs (the keyword arguments vllm.LLM takes), as
# vllm/sampling_params.py and vllm/engine/arg_utils.py define them (vllm-project/vllm, commit 00388f6; the
# names below are the ones this project passes and their neighbours, not the whole classes).
VLLM_SAMPLING_PARAMS = {"n", "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature", "top_p",
                        "top_k", "min_p", "seed", "stop", "stop_token_ids", "ignore_eos", "max_tokens", "min_tokens",
                        "logprobs", "skip_special_tokens", "include_stop_str_in_output", "structured_outputs"}
VLLM_ENGINE_ARGS = {"model", "tokenizer", "revision", "dtype", "seed", "max_model_len", "tensor_parallel_size",
                    "max_num_seqs", "enable_lora", "max_loras", "max_lora_rank", "gpu_memory_utilization"}


def test_the_request_conversion_speaks_vllms_parameter_names():
    request = SamplingRequest([1, 2, 3], max_new_tokens=7, temperature=0.7, top_p=0.9, stop=["Điều"], seed=11)
    kwargs = vllm_sampling_kwargs(request, {5, 3})
    assert set(kwargs) <= VLLM_SAMPLING_PARAMS
    assert kwargs == {"max_tokens": 7, "temperature": 0.7, "top_p": 0.9, "seed": 11, "stop": ["Điều"],
                      "stop_token_ids": [3, 5], "skip_special_tokens": True}


def test_engine_arguments_speak_vllms_names_and_carry_tensor_parallelism(tiny_adapter):
    kwargs = vllm_engine.engine_kwargs("/base", "rev", tiny_adapter, 4096, 64, "bfloat16", tensor_parallel_size=8)
    assert set(kwargs) <= VLLM_ENGINE_ARGS
    assert (kwargs["tensor_parallel_size"], kwargs["dtype"], kwargs["max_lora_rank"]) == (8, "bfloat16", 8)


def test_auto_is_hf_on_a_machine_without_a_gpu():
    assert select_backend("auto") == "hf"
    assert select_backend("hf") == "hf"
    with pytest.raises(HardwareError, match=r"generate\.backend: vllm needs a CUDA GPU.*requirements-gpu\.txt"):
        select_backend("vllm")


def test_vllm_without_a_gpu_fails_at_once_with_one_line_naming_the_fix(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("generate:\n  backend: vllm\n", encoding="utf-8")
    # No test split and no adapter exist: the backend is refused before anything is read or loaded.
    code = cli.main(["generate", "--params", str(params), "--test", str(tmp_path / "none.jsonl"),
                     "--adapter", str(tmp_path / "none"), "--out", str(tmp_path / "a.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "generate.backend" in err and "pip install -r requirements-gpu.txt" in err and "hf" in err


FAKE_VLLM = '''
import json, os
CALLS = []


class SamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class _Choice:
    def __init__(self, text, ids, reason):
        self.text, self.token_ids, self.finish_reason = text, ids, reason


class _Output:
    def __init__(self, choice):
        self.outputs = [choice]


class LLM:
    def __init__(self, **kwargs):
        CALLS.append(("engine", kwargs))

    def generate(self, prompts, params, lora_request=None, use_tqdm=False):
        CALLS.append(("generate", [p["prompt_token_ids"] for p in prompts], [p.kwargs for p in params], lora_request))
        tag = "tuned" if lora_request is not None else "base"
        return [_Output(_Choice(f"{tag} Điều {i}", [7] * (i + 1), "length" if i % 2 else "stop"))
                for i, _ in enumerate(prompts)]
'''


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch):
    """Stands in for the GPU-only package: records the engine and generate calls."""
    package = tmp_path / "fake" / "vllm"
    (package / "lora").mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_VLLM, encoding="utf-8")
    (package / "lora" / "__init__.py").write_text("", encoding="utf-8")
    (package / "sampling_params.py").write_text(
        "class StructuredOutputsParams:\n    def __init__(self, **kwargs):\n        self.kwargs = kwargs\n", encoding="utf-8")
    (package / "lora" / "request.py").write_text(
        "class LoRARequest:\n    def __init__(self, name, id, path):\n        self.name, self.id, self.path = name, id, path\n",
        encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "fake"))
    monkeypatch.setattr(vllm_engine, "available", lambda: True)
    yield
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]


def test_vllm_answers_the_hf_prompts_and_writes_the_same_rows(fake_vllm, tmp_path, tiny_adapter, processed_dir,
                                                               tiny_tokenizer):
    import vllm

    test = processed_dir / "test.jsonl"
    cfg = GenerateConfig(max_new_tokens=6, batch_size=2, backend="vllm", temperature=0.5, seed=3, tensor_parallel_size=2)
    rows = generate.run(cfg, test, tiny_adapter, tmp_path / "answers.jsonl", tmp_path / "meta.json")
    hf_rows = generate.run(GenerateConfig(max_new_tokens=6, batch_size=2, backend="hf"), test, tiny_adapter,
                           tmp_path / "hf.jsonl", tmp_path / "hf_meta.json")
    assert [list(r) for r in rows] == [list(r) for r in hf_rows], "the same fields in the same order"
    assert [(r["id"], r["question"], r["reference"]) for r in rows] == [(r["id"], r["question"], r["reference"]) for r in hf_rows]
    assert [r["tuned"] for r in rows] == ["tuned Điều 0", "tuned Điều 1"] and rows[0]["base"] == "base Điều 0"
    assert [r["tuned_finish_reason"] for r in rows] == ["stop", "length"] and rows[1]["base_completion_tokens"] == 2
    assert json.loads((tmp_path / "meta.json").read_text()) == {"backend": "vllm", "questions": 2, "tensor_parallel_size": 2}
    assert json.loads((tmp_path / "hf_meta.json").read_text())["backend"] == "hf"

    (_, engine), (_, tuned_ids, tuned_params, lora), (_, base_ids, base_params, no_lora) = vllm.CALLS
    assert engine["enable_lora"] is True and engine["tensor_parallel_size"] == 2 and engine["tokenizer"] == str(tiny_adapter)
    cases = [json.loads(line) for line in test.read_text(encoding="utf-8").splitlines()]
    expected = [chat.encode_prompt(tiny_tokenizer, c["messages"][:-1]) for c in cases]
    assert tuned_ids == base_ids == expected, "the one chat template's ids, for both systems"
    assert lora.path == str(tiny_adapter) and no_lora is None, "tuned = the adapter's LoRA request, base = none"
    assert [p["seed"] for p in tuned_params] == [p["seed"] for p in base_params] == [3, 4]
    assert all(p["max_tokens"] == 6 and p["temperature"] == 0.5 for p in tuned_params)
