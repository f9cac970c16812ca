"""Preference tuning on the reviewers' verdicts: DPO on the SFT adapter (Unsloth on a GPU, TRL + PEFT anywhere).

    data/processed/preferences.jsonl + models/adapter  ->  models/aligned/        an adapter in models/adapter's layout
    (+ data/processed/test.jsonl: its questions are                               (servable: `vietlegal serve --adapter
       never trained on)                                                           aligned=models/aligned`)
                                                           metrics/align.json     held-out pairs: SFT vs aligned
                                                           dvclive/align/         loss and reward curves

Pairs come from side-by-side verdicts (the preferred answer over the other) and corrections (the correction over
the answer); questions are split between training and held out (train/preferences.py), and the held-out pairs
are scored with both adapters on one base (metrics/preference.py). The pairs go through the chat template and
labels the SFT stage uses (train/pairs.py), the model through train's backend (train/backends.py), the trainer is
TRL's DPOTrainer with the SFT adapter's frozen copy as the reference (train/dpo.py).

With no pairs, or align.enabled false, it says so, models/aligned holds only NOT_TRAINED.txt (nothing to serve,
the same bytes every time, so what follows does not rerun), and metrics/align.json says why.
"""
from __future__ import annotations

import dataclasses
import gc
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from vietlegal import jsonl, paths
from vietlegal.data.splits import read_split
from vietlegal.data.splitting import question_key
from vietlegal.errors import HardwareError
from vietlegal.metrics import preference
from vietlegal.model import base as base_model
from vietlegal.model.adapter import check_complete, dir_md5, load_adapters, load_tokenizer
from vietlegal.params import AlignConfig, BaseConfig, TrainConfig
from vietlegal.stage_cli import stage_args
from vietlegal.train import backends, checkpoints, dpo, export, hardware, pairs, preferences, provenance, tracking

FILES = {"preferences": paths.PREFERENCES, "test": paths.TEST_SPLIT, "adapter": paths.ADAPTER,
         "metrics": paths.ALIGN_METRICS, "live": paths.ALIGN_LIVE}
PARAM_FILES = ("align.out_dir",)
NOT_TRAINED = "NOT_TRAINED.txt"
SFT, ALIGNED = "sft", "aligned"  # the two adapters the held-out pairs are scored with


def run(base_cfg: BaseConfig, train_cfg: TrainConfig, cfg: AlignConfig, *, preferences_path: Path, test_path: Path,
        adapter_dir: Path, metrics_path: Path, live_dir: Path) -> dict:
    started = time.perf_counter()
    read = preferences.read_pairs(preferences_path)
    counts = {"read": len(read.pairs) + len(read.same_answers) + read.duplicates, "usable": len(read.pairs),
              "same_answers": len(read.same_answers), "duplicates": read.duplicates,
              "by_kind": dict(sorted(Counter(p.kind for p in read.pairs).items()))}
    if not cfg.enabled:
        return skip("align.enabled is false", counts, cfg, metrics_path, live_dir)
    if not read.pairs:
        return skip(f"no preference pairs in {preferences_path}: compare two versions side by side or correct an "
                    "answer on the review page, then `dvc add data/raw/feedback` and `dvc repro` (docs/review.md)",
                    counts, cfg, metrics_path, live_dir)
    machine = Machine.set_up(train_cfg)  # Unsloth, if chosen, is imported before transformers, trl and peft
    test_questions = {question_key(c.messages) for c in read_split(test_path)}
    train_pairs, held_pairs = preferences.split_by_question(read.pairs, cfg.held_out_fraction, base_cfg.seed,
                                                            test_questions)
    sft = check_complete(adapter_dir)
    tokenizer = load_tokenizer(adapter_dir, sft.base_model)  # the template and pad token training used
    train_enc, train_long = pairs.encode_pairs(tokenizer, train_pairs, base_cfg.max_seq_length)
    held_enc, held_long = pairs.encode_pairs(tokenizer, held_pairs, base_cfg.max_seq_length)
    counts.update(train=len(train_enc), held_out=len(held_enc), too_long=len(train_long) + len(held_long),
                  questions={"train": len({p.question for p in train_pairs}),
                             "held_out": len({p.question for p in held_pairs})})
    warn_too_long(train_long + held_long, base_cfg.max_seq_length)
    if not train_enc:
        return skip(f"none of the {len(read.pairs)} pairs is left to train on ({len(held_enc)} held out, "
                    f"{counts['too_long']} too long); review more questions", counts, cfg, metrics_path, live_dir)

    data = Data(adapter_dir, sft, tokenizer, train_enc, held_enc, counts,
                checkpoints.data_hash([preferences_path, test_path]))
    trained = train(base_cfg, train_cfg, cfg, machine, data, live_dir)
    held_out = score_held_out(adapter_dir, Path(cfg.out_dir), held_enc, tokenizer.pad_token_id, cfg)
    metrics = {"trained": True, "reason": None, "pairs": counts, "held_out": held_out, "train": trained,
               "wall_seconds": time.perf_counter() - started}
    jsonl.write_json(metrics_path, metrics)
    log(summary(cfg.out_dir, metrics))
    return metrics


@dataclass
class Machine:
    hw: object
    precision: str
    backend: object

    @classmethod
    def set_up(cls, train_cfg: TrainConfig) -> Machine:
        hw, state, precision = hardware.setup(train_cfg)
        if state.num_processes > 1:
            raise HardwareError("align trains in one process (minutes on one GPU): run `vietlegal align` (or `dvc "
                                "repro`) without accelerate launch")
        return cls(hw, precision, backends.get(backends.select(train_cfg.backend, hw, 1)))


@dataclass
class Data:
    adapter_dir: Path  # the SFT adapter: the start and the reference
    sft: object  # its manifest
    tokenizer: object
    train: list  # EncodedPair
    held_out: list
    counts: dict
    hash: str


def train(base_cfg: BaseConfig, train_cfg: TrainConfig, cfg: AlignConfig, machine: Machine, data: Data,
          live_dir: Path) -> dict:
    """DPO from the SFT adapter; writes align.out_dir and returns what training logged."""
    hw, precision, backend = machine.hw, machine.precision, machine.backend
    sft_version = dir_md5(data.adapter_dir)
    key = checkpoints.key_of({"base": dataclasses.asdict(base_cfg), "align": dataclasses.asdict(cfg), "sft": sft_version,
                              "data": data.hash, "backend": backend.name, "precision": precision,
                              "load_in_4bit": train_cfg.load_in_4bit})
    log(f"backend {backend.name} on {hw.device} ({precision}); {len(data.train)} pairs to train on, "
        f"{len(data.held_out)} held out; SFT adapter {data.adapter_dir} (version {sft_version[:12]}); run {key}")
    live = tracking.open_live(live_dir, None)
    base = base_model.resolve(data.sft.base_model, data.sft.base_revision)
    model = backend.load_adapter(base, data.adapter_dir, train_cfg, base_cfg.max_seq_length, base_cfg.seed, precision)
    with tempfile.TemporaryDirectory(prefix="align-") as scratch:
        trainer = dpo.build(model, data.tokenizer, pairs.to_dataset(data.train),
                            pairs.to_dataset(data.held_out) if data.held_out else None, cfg=cfg, base=base_cfg,
                            output_dir=Path(scratch), precision=precision, use_cpu=hw.device == "cpu",
                            callbacks=[tracking.step_curves(live, tracking.PREFERENCE_CURVES)],
                            overrides=backend.trainer_overrides(train_cfg))
        result = hardware.fit(trainer, None, train_cfg, base_cfg, batch=("align", cfg.batch_size, cfg.grad_accum))
    dpo.drop_reference(model)
    out_dir = Path(cfg.out_dir)
    staging = export.save_weights(trainer, out_dir)
    manifest = provenance.aligned_manifest(
        data.sft, sft_version, base_cfg, cfg, data_hash=data.hash, run_key=key, backend=backend.name,
        hardware={**hw.as_dict(), "precision": precision, "processes": 1}, pairs=data.counts)
    export.finish(staging, out_dir, data.tokenizer, manifest)
    live.end()
    logged = {"backend": backend.name, "device": hw.device, "precision": precision, "run_key": key,
              "global_step": trainer.state.global_step, "train_seconds": result.metrics.get("train_runtime"),
              "first_step": {k: tracking.logged_at(trainer, k, 1) for k in ("loss", "rewards/margins")},
              "loss": tracking.last_logged(trainer, "loss"),
              "reward_accuracy": tracking.last_logged(trainer, "rewards/accuracies"),
              **hardware.peak_memory(hw)}
    del trainer, model
    gc.collect()  # the held-out scoring loads a model of its own
    if hw.device == "cuda":
        import torch

        torch.cuda.empty_cache()
    return logged


def score_held_out(adapter_dir: Path, aligned_dir: Path, held_enc: list, pad_id: int, cfg: AlignConfig) -> dict:
    """Both adapters, as written, on one base: the SFT one (the reference) and the aligned one."""
    from vietlegal.model.device import inference_device

    if not held_enc:
        return preference.report([], cfg.beta)
    device, dtype = inference_device()
    model = load_adapters({SFT: adapter_dir, ALIGNED: aligned_dir}, device, dtype)
    scores = preference.pair_scores(model, held_enc, pad_id, reference=SFT, policy=ALIGNED, batch_size=cfg.batch_size)
    return preference.report(scores, cfg.beta)


def skip(reason: str, counts: dict, cfg: AlignConfig, metrics_path: Path, live_dir: Path) -> dict:
    """Nothing to serve in align.out_dir (a note saying why), empty curves, and the reason in the metrics."""
    out_dir = Path(cfg.out_dir)
    staging = export.staging_dir(out_dir)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / NOT_TRAINED).write_text(f"No aligned adapter: {reason}.\n", encoding="utf-8")
    export.replace_dir(staging, out_dir)
    tracking.no_curves(live_dir, tracking.PREFERENCE_CURVES)
    metrics = {"trained": False, "reason": reason, "pairs": counts, "held_out": preference.report([], cfg.beta),
               "train": None}
    jsonl.write_json(metrics_path, metrics)
    log(f"{reason}; nothing trained, {out_dir}/{NOT_TRAINED} says why")
    return metrics


def warn_too_long(sources: list[str], max_length: int) -> None:
    if sources:
        log(f"warning: {len(sources)} pair(s) exceed base.max_seq_length={max_length} with their longer answer and "
            f"were left out: {', '.join(sources[:5])}{' ...' if len(sources) > 5 else ''}")


def summary(out_dir: str, m: dict) -> str:
    held = m["held_out"]
    if not held["pairs"]:
        scored = "no held-out pairs to score"
    else:
        scored = (f"held-out preference accuracy SFT {held['sft']['preference_accuracy']:.3f} -> aligned "
                  f"{held['aligned']['preference_accuracy']:.3f} over {held['pairs']} pairs, reward margin "
                  f"{held['aligned']['reward_margin']:.4g}, KL to SFT {held['aligned']['kl_to_reference']:.4g}/token")
    return f"aligned adapter -> {out_dir}; {scored}; {m['wall_seconds']:.1f}s"


def log(message: str) -> None:
    print(f"align: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    params, args = stage_args(__name__, __doc__, argv, FILES)
    run(params.base, params.train, params.align, preferences_path=args.preferences, test_path=args.test,
        adapter_dir=args.adapter, metrics_path=args.metrics, live_dir=args.live)
    return 0
