"""transformers + PEFT: runs anywhere (CPU, one GPU, several through accelerate)."""
from __future__ import annotations

from pathlib import Path

from vietlegal.errors import BaseModelError
from vietlegal.params import TrainConfig
from vietlegal.train.lora import DTYPES, lora_settings


class TrlBackend:
    name = "trl"

    def load_model(self, base, cfg: TrainConfig, max_seq_length: int, seed: int, precision: str):
        import torch
        from peft import LoraConfig, get_peft_model

        model = load_base(base, cfg, precision)
        torch.manual_seed(seed)  # LoRA's A matrices are random: the same seed gives the same start
        return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora_settings(cfg)))

    def load_adapter(self, base, adapter_dir: Path, cfg: TrainConfig, max_seq_length: int, seed: int,
                     precision: str):
        from peft import PeftModel

        # The adapter goes onto the base as it was trained on (4-bit when it was), never merged into it first:
        # merging into a 4-bit base rounds the LoRA delta away (trl PR #1193).
        return PeftModel.from_pretrained(load_base(base, cfg, precision), str(adapter_dir), is_trainable=True)

    def trainer_overrides(self, cfg: TrainConfig) -> dict:
        return {"gradient_checkpointing": cfg.gradient_checkpointing,
                "gradient_checkpointing_kwargs": {"use_reentrant": False}}


def load_base(base, cfg: TrainConfig, precision: str):
    """The base model's weights in the training precision (NF4 when train.load_in_4bit), ready for LoRA."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": getattr(torch, DTYPES[precision]), **base.hub_kwargs()}
    if cfg.load_in_4bit:
        kwargs.update(quantized_kwargs(precision))
    try:
        model = AutoModelForCausalLM.from_pretrained(base.path, **kwargs)
    except OSError as exc:
        raise BaseModelError(
            f"could not load the weights of {base.model_id!r} (revision {base.revision}): "
            f"{str(exc).splitlines()[0] if str(exc) else exc!r}"
        ) from exc
    if cfg.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    return model


def quantized_kwargs(precision: str) -> dict:
    """QLoRA loading: NF4 weights, double quantisation, compute in the training precision."""
    import torch
    from accelerate import PartialState
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=getattr(torch, DTYPES["bf16" if precision == "bf16" else "fp16"]),
    )
    # each process keeps its whole quantised copy on its own GPU
    return {"quantization_config": config, "device_map": {"": PartialState().local_process_index}}
