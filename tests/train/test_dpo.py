"""The preference trainer on the real tiny model: the reference is a frozen copy of the SFT adapter, step 1 starts
where DPO must (rewards 0, the DPO term ln 2: no collapse to loss 0), the CPU LM head scores as the perplexity
stage does, and the saved adapter is the trained one alone."""
from __future__ import annotations

import math

import pytest

from tests.helpers.preference_pairs import write_preferences
from vietlegal.model import base as base_model
from vietlegal.params import AlignConfig, BaseConfig, TrainConfig
from vietlegal.train import cpu_head, dpo, pairs, preferences
from vietlegal.train.trl_backend import TrlBackend

pytestmark = pytest.mark.slow
STEPS = 3


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, tiny_base):
    path = tmp_path_factory.mktemp("pairs") / "preferences.jsonl"
    write_preferences(path)
    tokenizer = base_model.load_tokenizer(base_model.resolve("vietlegal/tiny-llama"))
    done, too_long = pairs.encode_pairs(tokenizer, preferences.read_pairs(path).pairs[:12], 512)
    assert not too_long
    return tokenizer, done


def trained(tmp_path, tiny_adapter, tokenizer, encoded, **align):
    import torch

    torch.set_num_threads(1)
    cfg = AlignConfig(**{"learning_rate": 0.01, "max_steps": STEPS, "batch_size": 4, "grad_accum": 1,
                         "logging_steps": 1, "sft_weight": 0.0, **align})
    model = TrlBackend().load_adapter(base_model.resolve("vietlegal/tiny-llama"), tiny_adapter,
                                      TrainConfig(gradient_checkpointing=False), 512, 0, "fp32")
    trainer = dpo.build(model, tokenizer, pairs.to_dataset(encoded), None, cfg=cfg, base=BaseConfig(),
                        output_dir=tmp_path / "out", precision="fp32", use_cpu=True, callbacks=[],
                        overrides={"gradient_checkpointing": False})
    trainer.train()
    return model, trainer


def lora_weights(model, adapter: str) -> dict:
    return {name.replace(f".{adapter}.", "."): p.detach().clone() for name, p in model.named_parameters()
            if f".{adapter}." in name}


def test_the_reference_is_a_frozen_copy_of_the_sft_adapter(tmp_path, tiny_adapter, encoded):
    from safetensors.torch import load_file

    tokenizer, rows = encoded
    model, trainer = trained(tmp_path, tiny_adapter, tokenizer, rows)
    sft = load_file(str(tiny_adapter / "adapter_model.safetensors"))
    ref, policy = lora_weights(model, dpo.REFERENCE), lora_weights(model, "default")
    assert ref and set(ref) == set(policy)
    for name, value in ref.items():
        assert value.equal(sft[name]), f"{name}: the reference moved from the SFT adapter"
    assert any(not policy[name].equal(ref[name]) for name in ref), "the policy trained"
    trained_params = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in trained_params for n, p in model.named_parameters() if f".{dpo.REFERENCE}." in n)


def test_step_one_starts_at_the_reference_and_the_loss_never_collapses(tmp_path, tiny_adapter, encoded):
    tokenizer, rows = encoded
    _, trainer = trained(tmp_path, tiny_adapter, tokenizer, rows)
    first, *rest = [e for e in trainer.state.log_history if "loss" in e]
    # policy == reference at the first batch: rewards 0, sigmoid loss ln 2 (LLaMA-Factory#8974 showed 0.0 and
    # accuracy 1.0 from a reference that was not the SFT adapter)
    assert first["step"] == 1 and first["rewards/chosen"] == 0 and first["rewards/margins"] == 0
    assert first["rewards/accuracies"] == 0 and math.isclose(first["loss"], math.log(2), rel_tol=1e-5)
    assert all(e["loss"] > 0.05 for e in rest), "three steps do not drive DPO to 0"


def test_the_sft_term_adds_the_chosen_answers_nll(tmp_path, tiny_adapter, encoded):
    tokenizer, rows = encoded
    _, trainer = trained(tmp_path, tiny_adapter, tokenizer, rows, sft_weight=1.0, max_steps=1, batch_size=len(rows))
    [first] = [e for e in trainer.state.log_history if "loss" in e]
    # one batch of every pair: the SFT term is the chosen answers' NLL per token, over all their tokens
    nll = -first["logps/chosen"] * len(rows) / sum(len(r.chosen_ids) for r in rows)
    assert math.isclose(first["loss"], math.log(2) + nll, rel_tol=1e-4)


def test_the_cpu_head_scores_answers_as_the_perplexity_stage_does(tiny_base, encoded):
    import torch
    from transformers import AutoModelForCausalLM

    from vietlegal.metrics.likelihood import answer_nll

    tokenizer, rows = encoded
    model = AutoModelForCausalLM.from_pretrained(tiny_base[0]).eval()
    cpu_head.install(model)
    row = rows[0]
    ids = torch.tensor([row.prompt_ids + row.chosen_ids])
    labels = torch.tensor([[-100] * len(row.prompt_ids) + row.chosen_ids])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, fused_lm_head=True)
        plain = model(input_ids=ids).logits  # the unfused forward is the model's own
    nll, tokens = answer_nll(model, ids, torch.ones_like(ids), labels)
    assert out.log_probs.shape == (1, ids.shape[1] - 1) and int(out.label_mask.sum()) == int(tokens[0])
    assert math.isclose(-float(out.log_probs.sum()), float(nll[0]), rel_tol=1e-5)
    assert plain.shape == (1, ids.shape[1], model.config.vocab_size), "without fused_lm_head: the model's logits"


def test_the_saved_adapter_is_the_trained_one_alone(tmp_path, tiny_adapter, encoded):
    from safetensors import safe_open

    tokenizer, rows = encoded
    model, trainer = trained(tmp_path, tiny_adapter, tokenizer, rows, max_steps=1)
    policy = lora_weights(model, "default")
    dpo.drop_reference(model)
    trainer.save_model(str(tmp_path / "saved"))
    assert not (tmp_path / "saved" / dpo.REFERENCE).exists()
    with safe_open(str(tmp_path / "saved" / "adapter_model.safetensors"), framework="pt") as f:
        saved = {k: f.get_tensor(k) for k in f.keys()}
    assert set(saved) == set(policy) and all(saved[k].equal(policy[k]) for k in saved)
