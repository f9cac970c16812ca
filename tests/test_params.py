"""params.yaml is a schema: typos and wrong types fail loudly, and the shipped files are valid."""
from __future__ import annotations

from pathlib import Path

import pytest

from vietlegal.errors import ConfigError
from vietlegal.params import load_params

ROOT = Path(__file__).resolve().parents[1]


def test_unknown_key_names_section_key_and_known_keys(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train:\n  lora_rank: 32\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) train\.lora_rank.*lora_r"):
        load_params(p)


def test_wrong_type_names_the_key(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train:\n  lora_r: sixteen\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"train\.lora_r: expected int"):
        load_params(p)


def test_ints_are_accepted_where_floats_are_expected(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train:\n  learning_rate: 1\n", encoding="utf-8")
    assert load_params(p).train.learning_rate == 1.0


@pytest.mark.parametrize("path", ["params.yaml", "recipes/llama-3.1-8b-h200.yaml"])
def test_shipped_params_are_valid(path):
    load_params(ROOT / path)


def test_production_recipe_has_the_seed_settings():
    p = load_params(ROOT / "recipes/llama-3.1-8b-h200.yaml")
    t = p.train
    assert p.base.model == "meta-llama/Llama-3.1-8B-Instruct" and p.base.max_seq_length == 2048
    assert (t.lora_r, t.lora_alpha, t.lora_dropout, t.learning_rate, t.epochs) == (16, 32, 0.05, 2e-4, 3)
    assert (t.batch_size, t.grad_accum, t.warmup_steps, t.load_in_4bit, t.bf16) == (2, 4, 10, True, True)
    assert set(t.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@pytest.mark.parametrize("name", ["presence_penalty", "frequency_penalty"])
@pytest.mark.parametrize("value", [-2.01, 2.5, 100])
def test_decoding_penalties_outside_openais_range_are_refused(tmp_path, name, value):
    p = tmp_path / "params.yaml"
    p.write_text(f"generate:\n  {name}: {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"generate\.{name}: must be in \[-2, 2\]"):
        load_params(p)


def test_generate_requests_carry_the_decoding_penalties(tmp_path):
    """Both backends decode the SamplingRequest requests_for builds: the penalties must be on it."""
    from vietlegal.answering import requests_for
    from vietlegal.data.conversation import Conversation
    from vietlegal.model import tiny
    from vietlegal.model.sampling import vllm_sampling_kwargs

    p = tmp_path / "params.yaml"
    p.write_text("generate:\n  presence_penalty: 0.5\n  frequency_penalty: -0.25\n", encoding="utf-8")
    cfg = load_params(p).generate
    case = Conversation("a", "t:1", [{"role": "user", "content": "Điều 1?"}, {"role": "assistant", "content": "Có."}])
    (request,) = requests_for([case], tiny.tokenizer(), cfg, 2048)
    assert (request.presence_penalty, request.frequency_penalty) == (0.5, -0.25)
    kwargs = vllm_sampling_kwargs(request, {1})
    assert (kwargs["presence_penalty"], kwargs["frequency_penalty"]) == (0.5, -0.25)
