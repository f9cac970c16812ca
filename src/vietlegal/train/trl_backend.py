"""transformers + PEFT: runs anywhere (CPU, one GPU, several through accelerate)."""
from __future__ import annotations

from vietlegal.errors import BaseModelError
from vietlegal.params import TrainConfig
from vietlegal.train.backends import lora_settings

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


class TrlBackend:
    name = "trl"

    def load_model(self, base, cfg: TrainConfig, max_seq_length: int, seed: int, precision: str):
        import torch
        from peft import LoraConfig, get_peft_model
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
        torch.manual_seed(seed)  # LoRA's A matrices are random: the same seed gives the same start
        return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora_settings(cfg)))

    def trainer_overrides(self, cfg: TrainConfig) -> dict:
        return {"gradient_checkpointing": cfg.gradient_checkpointing,
                "gradient_checkpointing_kwargs": {"use_reentrant": False}}


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
