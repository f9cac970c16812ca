"""LoRA fine-tuning (Unsloth on a GPU, TRL + PEFT anywhere) that learns to answer and to stop.

    data/training/{train,val}.jsonl   ->  models/adapter/                 PEFT LoRA + tokenizer + vietlegal.json
                                          models/checkpoints/<run key>/   resumable state (git-ignored, not a DVC output)
                                          metrics/train.json              label audit, efficiency, losses (base and tuned)
                                          dvclive/                        loss / eval loss / learning-rate curves

Runs the same under `python -m vietlegal.cli train` and `accelerate launch ... -m vietlegal.cli train`
(several processes: each tokenises the same data, the main one deletes stale checkpoints and writes
the outputs). Unsloth or TRL builds the LoRA model (vietlegal.train.backends); TRL's SFTTrainer trains it.
The splits come from stage `ground`: prepare's rows as they are, or grounded with retrieved provisions when
rag.train_with_context; its context.json goes into the adapter's vietlegal.json.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from vietlegal import jsonl, paths
from vietlegal.errors import DataError
from vietlegal.model import base as base_model
from vietlegal.params import BaseConfig, TrainConfig
from vietlegal.stage_cli import stage_args
from vietlegal.train import audit, backends, batching, checkpoints, dataset, export, hardware, provenance, sft, tracking
from vietlegal.train.meter import TokenMeter

FILES = {"data": paths.TRAINING, "metrics": paths.TRAIN_METRICS, "live": paths.LIVE}
PARAM_FILES = ("train.out_dir", "base.model")  # base.model: the pretrain stage's directory in the default


def run(base_cfg: BaseConfig, cfg: TrainConfig, *, data_dir: Path, metrics_path: Path, live_dir: Path) -> dict | None:
    """Train and write the adapter and metrics; returns the metrics on the main process."""
    started = time.perf_counter()
    hw, state, precision = hardware.setup(cfg)
    backend = backends.get(backends.select(cfg.backend, hw, state.num_processes))  # Unsloth first, if chosen

    base = base_model.resolve(base_cfg.model, base_cfg.revision)
    tokenizer = base_model.load_tokenizer(base)
    train, val = read_splits(data_dir, tokenizer, base_cfg, cfg)
    label_audit = audit.label_audit(train, tokenizer)

    data_hash = checkpoints.data_hash([data_dir / "train.jsonl", data_dir / "val.jsonl"])
    key = checkpoints.run_key(base_cfg, cfg, base.revision, data_hash, backend.name, state.num_processes)
    resume = checkpoints.resume_point(state, Path(cfg.checkpoint_dir), key)
    resume_step = checkpoints.step_of(resume) if resume else None
    log(state, f"backend {backend.name} on {hw.device} ({precision}, {state.num_processes} process(es)); "
               f"{len(train)} train / {len(val)} val examples, {len(train.truncated)} truncated; run {key}; "
               + (f"resuming from {resume} (step {resume_step})" if resume else "starting fresh"))

    live = tracking.open_live(live_dir, resume_step) if state.is_main_process else None
    model = backend.load_model(base, cfg, base_cfg.max_seq_length, base_cfg.seed, precision)
    meter = TokenMeter()
    meter.attach(model)
    collator = batching.PadCollator(tokenizer.pad_token_id)
    trainer = sft.build(
        model, tokenizer, dataset.to_dataset(train), dataset.to_dataset(val) if len(val) else None,
        cfg=cfg, base=base_cfg, output_dir=Path(cfg.checkpoint_dir) / key, precision=precision,
        use_cpu=hw.device == "cpu", collator=collator, callbacks=[tracking.step_curves(live)],
        overrides=backend.trainer_overrides(cfg), evaluate_base=resume is None,
    )
    result = hardware.fit(trainer, resume, cfg, base_cfg)
    final_eval = final_evaluation(trainer) if len(val) else {}
    staging = export.save_weights(trainer, Path(cfg.out_dir))
    real, processed = meter.totals(trainer.accelerator)
    if not state.is_main_process:
        state.wait_for_everyone()
        return None

    hardware_info = {**hw.as_dict(), "precision": precision, "processes": state.num_processes}
    manifest = provenance.adapter_manifest(base_cfg, base.revision, cfg, data_hash=data_hash, run_key=key,
                                           backend=backend.name, hardware=hardware_info, context=training_context(data_dir))
    export.finish(staging, Path(cfg.out_dir), tokenizer, manifest)
    train_seconds = result.metrics.get("train_runtime", 0.0)
    metrics = {
        "backend": backend.name,
        "precision": precision,
        "device": hw.device,
        "processes": state.num_processes,
        "run_key": key,
        "resumed_from_step": resume_step,
        "global_step": trainer.state.global_step,
        "examples": {"train": len(train), "val": len(val)},
        "label_audit": {**label_audit, "padding_efficiency": TokenMeter.efficiency(real, processed)},
        "train_tokens": real,
        "train_tokens_processed": processed,
        "train_tokens_per_second": real / train_seconds if train_seconds and real else None,
        **hardware.peak_memory(hw),
        "train_seconds": train_seconds,
        "wall_seconds": time.perf_counter() - started,
        "train_loss": tracking.last_logged(trainer, "loss"),
        "eval_loss": final_eval.get("eval_loss"),
        "base_eval_loss": tracking.logged_at(trainer, "eval_loss", 0),  # step 0: LoRA's B is zero, so this is the base
    }
    jsonl.write_json(metrics_path, metrics)
    live.end()
    log(state, summary(cfg.out_dir, metrics))
    state.wait_for_everyone()
    return metrics


def read_splits(data_dir: Path, tokenizer, base_cfg: BaseConfig, cfg: TrainConfig):
    train, val = (dataset.encode_split(name, data_dir / f"{name}.jsonl", tokenizer, base_cfg.max_seq_length,
                                       cfg.drop_truncated) for name in ("train", "val"))
    if not len(train):
        raise DataError(f"{data_dir / 'train.jsonl'}: no usable training examples; check `vietlegal prepare` output")
    return train, val


def training_context(data_dir: Path) -> dict:
    """What stage `ground` put into the prompts; splits straight from prepare carry no context."""
    path = data_dir / "context.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"with_context": False}


def summary(out_dir: str, m: dict) -> str:
    fmt = lambda x: "n/a" if x is None else f"{x:.4g}"  # noqa: E731
    return (f"adapter -> {out_dir}; train loss {fmt(m['train_loss'])}; "
            f"eval loss base {fmt(m['base_eval_loss'])} -> tuned {fmt(m['eval_loss'])}; "
            f"padding efficiency {fmt(m['label_audit']['padding_efficiency'])}; "
            f"{fmt(m['train_tokens_per_second'])} train tok/s; {m['wall_seconds']:.1f}s")


def final_evaluation(trainer) -> dict:
    """The last eval, unless the trainer just ran one at the final step."""
    step = trainer.state.global_step
    for entry in reversed(trainer.state.log_history):
        if "eval_loss" in entry and entry.get("step") == step:
            return entry
    return trainer.evaluate()


def log(state, message: str) -> None:
    if state.is_main_process:
        print(f"train: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    params, args = stage_args(__name__, __doc__, argv, FILES)
    run(params.base, params.train, data_dir=args.data, metrics_path=args.metrics, live_dir=args.live)
    return 0
