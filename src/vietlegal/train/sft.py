"""The one trainer both backends use: TRL's SFTTrainer on pre-tokenised examples.

The dataset already holds `input_ids` and `labels` from chat.encode_example, so SFTTrainer skips
its own templating and masking (it keeps a `labels` column as it is) and our collator pads.
Length-grouped batches (batching.py) keep padding low without packing, which would need
flash-attention on a GPU to keep packed sequences apart. The trainer class is made at call time:
with the Unsloth backend `trl.SFTTrainer` is Unsloth's patched one by then.
"""
from __future__ import annotations

from pathlib import Path

from vietlegal.params import BaseConfig, TrainConfig
from vietlegal.train import arguments
from vietlegal.train.batching import LengthGroupedBatches

KEEP_CHECKPOINTS = 2  # the latest to resume from, and the one before in case the latest is being written


def build(model, tokenizer, train_ds, eval_ds, *, cfg: TrainConfig, base: BaseConfig, output_dir: Path,
          precision: str, use_cpu: bool, collator, callbacks: list, overrides: dict, evaluate_base: bool):
    from trl import SFTConfig

    has_eval = eval_ds is not None and len(eval_ds) > 0
    args = SFTConfig(
        **arguments.loop_arguments(cfg, base, output_dir, precision, use_cpu, has_eval),
        lr_scheduler_type=cfg.lr_scheduler,
        weight_decay=cfg.weight_decay,
        train_sampling_strategy="random",  # replaced by LengthGroupedBatches when train.group_by_length
        # step 0 is the base model (LoRA starts as a no-op): the eval curve starts at the base's loss.
        # Not on resume, where it would evaluate the resumed adapter at the checkpoint's step.
        eval_on_start=has_eval and evaluate_base,
        prediction_loss_only=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=KEEP_CHECKPOINTS,
        **overrides,
    )
    return trainer_class(cfg.group_by_length)(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=train_ds,
        eval_dataset=eval_ds if has_eval else None,
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def trainer_class(group_by_length: bool):
    from transformers import Trainer
    from trl import SFTTrainer

    class LengthGroupedSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.args.use_cpu:
                # TRL's fused LM head saves GPU memory (no full logits); its CPU fallback (torch tiles) is ~1.8x
                # slower than plain cross-entropy on the tiny model. Same loss: mean NLL of the supervised tokens.
                return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

        def _get_train_sampler(self, train_dataset=None):
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            if not group_by_length:
                return super()._get_train_sampler(dataset)
            return LengthGroupedBatches(lengths(dataset), self.args.per_device_train_batch_size, self.args.seed)

        def _get_eval_sampler(self, eval_dataset):
            return LengthGroupedBatches(lengths(eval_dataset), self.args.per_device_eval_batch_size, 0, shuffle=False)

    return LengthGroupedSFTTrainer


def lengths(dataset) -> list[int]:
    return [len(ids) for ids in dataset["input_ids"]]
