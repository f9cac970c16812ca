"""What the machine can do, and the errors that say how to make training fit onto it.

The fixes in the messages are the seed system's troubleshooting list: a smaller per-device batch
with more accumulation, 4-bit loading, a shorter `max_seq_length`.
"""
from __future__ import annotations

import os
import resource
from dataclasses import asdict, dataclass

from vietlegal.params import BaseConfig, TrainConfig
from vietlegal.errors import HardwareError


@dataclass
class Hardware:
    device: str  # "cuda" | "cpu"
    gpu: str | None
    gpu_count: int
    cuda_bf16: bool
    cpu_count: int

    def as_dict(self) -> dict:
        return asdict(self)


def detect() -> Hardware:
    import torch

    if torch.cuda.is_available():
        return Hardware("cuda", torch.cuda.get_device_name(0), torch.cuda.device_count(), torch.cuda.is_bf16_supported(),
                        os.cpu_count() or 1)
    return Hardware("cpu", None, 0, False, os.cpu_count() or 1)


def set_cpu_threads(threads: int | None, hw: Hardware) -> None:
    """Tiny matrices on a shared CPU: thread hand-offs cost more than they save (10x on 2 busy cores)."""
    if threads and hw.device == "cpu":
        import torch

        torch.set_num_threads(threads)


def precision(requested: bool | None, hw: Hardware) -> str:
    """"bf16", "fp16" or "fp32". null picks bf16 on a GPU that has it; a CPU trains in fp32
    (bf16 autocast on a CPU without AMX is slower than fp32)."""
    if requested is None:
        if hw.device == "cuda":
            return "bf16" if hw.cuda_bf16 else "fp16"
        return "fp32"
    if requested and hw.device == "cuda" and not hw.cuda_bf16:
        raise HardwareError(
            f"train.bf16 is true but {hw.gpu} has no bf16 support (it needs an Ampere or newer GPU); "
            "set train.bf16: null to use fp16 mixed precision on this GPU"
        )
    return "bf16" if requested else "fp32"


def check_quantization(cfg: TrainConfig, hw: Hardware) -> None:
    if not cfg.load_in_4bit:
        return
    if hw.device != "cuda":
        raise HardwareError(
            "train.load_in_4bit is true but no CUDA GPU is visible: 4-bit loading (bitsandbytes) needs one. "
            "Set train.load_in_4bit: false to train in full precision here, or run on a GPU machine "
            "(check `nvidia-smi` and CUDA_VISIBLE_DEVICES)"
        )
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise HardwareError(
            "train.load_in_4bit is true but bitsandbytes is not installed: `make gpu` (requirements-gpu.txt) "
            "(or set train.load_in_4bit: false)"
        )


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "CUDA out of memory" in str(exc)


def out_of_memory(exc: BaseException, cfg: TrainConfig, base: BaseConfig, batch: tuple[str, int, int] | None = None
                  ) -> HardwareError:
    """The seed's troubleshooting list, with numbers worked out from the current params. `batch`: (section,
    batch_size, grad_accum) when another section than `train` sets the batch (stage align)."""
    section, batch_size, grad_accum = batch or ("train", cfg.batch_size, cfg.grad_accum)
    effective = batch_size * grad_accum
    smaller = max(1, batch_size // 2)
    accum = max(1, effective // smaller)
    fixes = [
        f"{section}.batch_size: {smaller} with {section}.grad_accum: {accum} (same effective batch of {smaller * accum})"
        if batch_size > 1 else f"{section}.batch_size is already 1: use one of the fixes below",
    ]
    if not cfg.load_in_4bit:
        fixes.append("train.load_in_4bit: true (4-bit base weights, about a quarter of the bf16 memory)")
    fixes.append(f"base.max_seq_length: {max(256, base.max_seq_length // 2)} (now {base.max_seq_length})")
    if not cfg.gradient_checkpointing:
        fixes.append("train.gradient_checkpointing: true")
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return HardwareError(
        f"CUDA out of memory while training ({first}). In params.yaml try, in this order: "
        + "; ".join(fixes)
        + ". Changed params start a fresh run (checkpoints of other params are never resumed)."
    )


def setup(cfg: TrainConfig):
    """(hardware, accelerate state, precision) for a training run; imports neither transformers nor trl, so a
    stage picks Unsloth (which must be imported before them) after this."""
    from accelerate import PartialState

    hw = detect()
    state = PartialState(cpu=hw.device == "cpu")  # as TrainingArguments(use_cpu=...) will: gloo on a CPU
    check_quantization(cfg, hw)
    set_cpu_threads(cfg.cpu_threads, hw)
    return hw, state, precision(cfg.bf16, hw)


def fit(trainer, resume, cfg: TrainConfig, base: BaseConfig, batch: tuple[str, int, int] | None = None):
    """trainer.train (resumed from the checkpoint `resume`, if any); CUDA out of memory becomes the fixes."""
    try:
        return trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except Exception as exc:
        if is_out_of_memory(exc):
            raise out_of_memory(exc, cfg, base, batch) from exc
        raise


def peak_memory(hw: Hardware) -> dict:
    """Peak GPU memory allocated by torch on a GPU, peak resident memory of the process on a CPU."""
    if hw.device == "cuda":
        import torch

        return {"peak_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 3), "peak_memory_kind": "cuda_max_allocated"}
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {"peak_memory_gb": round(rss_kb / 1e6, 3), "peak_memory_kind": "cpu_max_rss"}
