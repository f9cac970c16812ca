"""The training arguments SFT (train/sft.py) and preference tuning (train/dpo.py) set alike: SFTConfig and
DPOConfig are both TrainingArguments, and a `train` or `align` params section holds the same loop settings."""
from __future__ import annotations

from pathlib import Path

from vietlegal.params import AlignConfig, BaseConfig, TrainConfig


def loop_arguments(cfg: TrainConfig | AlignConfig, base: BaseConfig, output_dir: Path, precision: str, use_cpu: bool,
                   has_eval: bool) -> dict:
    return {
        "output_dir": str(output_dir),
        "num_train_epochs": cfg.epochs,
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.batch_size,
        "per_device_eval_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "learning_rate": cfg.learning_rate,
        "warmup_steps": cfg.warmup_steps,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": use_cpu,
        "seed": base.seed,
        "data_seed": base.seed,
        "max_length": base.max_seq_length,
        "logging_strategy": "steps",
        "logging_steps": cfg.logging_steps,
        "logging_first_step": True,  # SFT: the first loss; DPO: step 1, policy == reference, rewards 0
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": cfg.eval_steps,
        "report_to": "none",  # DVCLive comes in as tracking.step_curves (see there why not report_to="dvclive")
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "ddp_find_unused_parameters": False,
    }
