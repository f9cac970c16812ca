"""A strict stand-in for Unsloth 2026.10.9's FastLanguageModel where Unsloth cannot run: the GPU classes' signatures,
refusing what the real ones refuse, over the real tiny model and real PEFT. tests/train/test_unsloth_contract.py
proves it against the real package (signatures equal to the GPU classes', verdicts equal on generated arguments).

    calls = install(monkeypatch)   # `unsloth` in sys.modules; calls["from_pretrained"] / calls["get_peft_model"]

Stricter than Unsloth in one way, on purpose: the real methods take **kwargs and pass them on (to transformers
or PEFT, which refuse most); the stand-in refuses every name that is not a named parameter, so the project never
leans on that passing-on.
"""
from __future__ import annotations

import sys
import types

FROM_PRETRAINED = ("model_name", "max_seq_length", "dtype", "load_in_4bit", "load_in_8bit", "load_in_16bit",
                   "full_finetuning", "token", "device_map", "device_map_planner_kwargs", "rope_scaling", "fix_tokenizer",
                   "trust_remote_code", "use_gradient_checkpointing", "resize_model_vocab", "revision",
                   "use_exact_model_name", "offload_embedding", "float32_mixed_precision", "fast_inference",
                   "gpu_memory_utilization", "float8_kv_cache", "random_state", "max_lora_rank", "disable_log_stats",
                   "qat_scheme", "load_in_fp8", "unsloth_tiled_mlp", "text_only")
GET_PEFT_MODEL = ("r", "target_modules", "lora_alpha", "lora_dropout", "bias", "layers_to_transform", "layers_pattern",
                  "finetune_last_n_layers", "use_gradient_checkpointing", "random_state", "max_seq_length", "use_rslora",
                  "modules_to_save", "init_lora_weights", "loftq_config", "temporary_location", "qat_scheme",
                  "target_parameters", "ensure_weight_tying", "offload_layers", "checkpoint_skip_layers")
PATCH_PEFT_MODEL = ("use_gradient_checkpointing",)
BIASES = ("none", "all", "lora_only")


def _refuse_unknown(method: str, given: dict, known: tuple[str, ...]) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise TypeError(f"{method}() got unexpected keyword arguments {unknown} (not named parameters of Unsloth's)")


def make(calls: dict) -> type:
    class FastLanguageModel:
        @staticmethod
        def from_pretrained(**kwargs):
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            _refuse_unknown("from_pretrained", kwargs, FROM_PRETRAINED)
            dtype = kwargs.get("dtype")
            if isinstance(dtype, str):
                dtype = getattr(torch, dtype, None)
            if dtype is not None and dtype not in (torch.float16, torch.bfloat16, torch.float32):
                raise ValueError(f"dtype {kwargs['dtype']!r}: Unsloth loads in float16, bfloat16 or float32")
            calls["from_pretrained"] = kwargs
            name = kwargs.get("model_name", "unsloth/Llama-3.2-1B-Instruct")
            model = AutoModelForCausalLM.from_pretrained(name, revision=kwargs.get("revision"),
                                                         dtype=dtype or torch.bfloat16)  # Unsloth's None: bf16 here
            return model, AutoTokenizer.from_pretrained(name, revision=kwargs.get("revision"))

        @staticmethod
        def get_peft_model(model, **kwargs):
            from peft import LoraConfig, get_peft_model

            _refuse_unknown("get_peft_model", kwargs, GET_PEFT_MODEL)
            r = kwargs.get("r", 16)
            if type(r) is not int or r <= 0:
                raise TypeError(f"Unsloth: Rank of {r} must be an integer larger than 0.")
            dropout = kwargs.get("lora_dropout", 0.0)
            if not 0 <= dropout <= 1:
                raise ValueError(f"dropout probability has to be between 0 and 1, but got {dropout}")
            if kwargs.get("bias", "none") not in BIASES:
                raise NotImplementedError(f"Requested bias: {kwargs['bias']}, is not implemented.")
            calls["get_peft_model"] = kwargs
            lora = LoraConfig(task_type="CAUSAL_LM", r=r, lora_alpha=kwargs.get("lora_alpha", 16), lora_dropout=dropout,
                              target_modules=kwargs.get("target_modules"), bias=kwargs.get("bias", "none"),
                              modules_to_save=kwargs.get("modules_to_save"), use_rslora=kwargs.get("use_rslora", False))
            return get_peft_model(model, lora)  # PEFT refuses target modules the model lacks, as under Unsloth

        @staticmethod
        def patch_peft_model(model, use_gradient_checkpointing="unsloth"):
            from peft import PeftModel

            if not isinstance(model, PeftModel):  # Unsloth reads model.peft_config and its LoRA layers
                raise TypeError(f"patch_peft_model: a PeftModel, got {type(model).__name__}")
            if use_gradient_checkpointing not in ("unsloth", True, False):
                raise ValueError(f"use_gradient_checkpointing {use_gradient_checkpointing!r}: 'unsloth', True or False")
            calls["patch_peft_model"] = use_gradient_checkpointing
            return model

    return FastLanguageModel


def install(monkeypatch) -> dict:
    """`unsloth` in sys.modules for one test (undone by monkeypatch); returns the calls it records."""
    calls: dict = {}
    module = types.ModuleType("unsloth")
    module.FastLanguageModel = make(calls)
    module.__version__ = "2026.10.9"
    monkeypatch.setitem(sys.modules, "unsloth", module)
    return calls
