"""The preference trainer: TRL's DPOTrainer on the SFT adapter, with pairs already tokenised (train/pairs.py).

Given a PeftModel holding the SFT adapter (`backend.load_adapter`), TRL 1.15 adds a second adapter, "ref", as a
copy of it and computes the reference log-probs through that copy: one base in memory, a reference that never
moves. The loss is `["sigmoid", "sft"]` weighted `[1, align.sft_weight]`: DPO plus the chosen answers' NLL, which
keeps the chosen answers likely (DPO alone can lower both). The "ref" adapter is dropped before the adapter is
saved, so models/aligned holds one adapter, in models/adapter's layout.

The trainer class is made at call time: with the Unsloth backend `trl.DPOTrainer` is Unsloth's patched one by then.
"""
from __future__ import annotations

from pathlib import Path

from vietlegal.params import AlignConfig, BaseConfig
from vietlegal.train import arguments, cpu_head

REFERENCE = "ref"  # the name TRL gives the frozen copy of the SFT adapter


def build(model, tokenizer, train_ds, eval_ds, *, cfg: AlignConfig, base: BaseConfig, output_dir: Path,
          precision: str, use_cpu: bool, callbacks: list, overrides: dict):
    from trl import DPOConfig

    has_eval = eval_ds is not None and len(eval_ds) > 0
    args = DPOConfig(
        # max_length is base.max_seq_length: pairs longer than it were left out (train/pairs.py)
        **arguments.loop_arguments(cfg, base, output_dir, precision, use_cpu, has_eval),
        lr_scheduler_type="linear",
        beta=cfg.beta,
        loss_type=["sigmoid", "sft"],
        loss_weights=[1.0, cfg.sft_weight],
        save_strategy="no",  # minutes, not hours: a killed run starts again (no stale state to resume)
        **overrides,
    )
    return trainer_class(use_cpu)(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds if has_eval else None,
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def trainer_class(use_cpu: bool):
    from trl import DPOTrainer

    class PreferenceTrainer(DPOTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if use_cpu:
                cpu_head.install(self.model.get_base_model())

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            # Already prompt_ids / chosen_ids / rejected_ids from the project's chat template (train/pairs.py);
            # TRL's own tokenisation would render the template a second way.
            return dataset

    return PreferenceTrainer


def drop_reference(model) -> None:
    """Remove TRL's reference copy, so that saving writes the trained adapter alone (PEFT saves every adapter)."""
    if REFERENCE in model.peft_config:
        model.delete_adapter(REFERENCE)
