"""The one device and dtype policy for inference: `generate`, `perplexity` and both server backends load the
model the same way, so the evaluated model and the served model are the same numbers.

    CUDA with bf16 (Ampere or newer)  -> bf16
    CUDA without bf16 (T4, V100)      -> fp16
    CPU                               -> the checkpoint's own dtype (None: float32 for the tiny model)
"""
from __future__ import annotations


def inference_dtype(device: str):
    """The torch dtype to load weights in on `device` ("cuda", "cuda:1", "cpu"); None keeps the checkpoint's."""
    import torch

    if not str(device).startswith("cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def inference_device() -> tuple[str, object]:
    """(device, dtype) of the first GPU if there is one, else the CPU."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return device, inference_dtype(device)


def cpu_threads(threads: int | None, device: str) -> None:
    """On a CPU, torch's threads for inference (None: torch's default, all cores). The tiny model decodes ~15x
    faster on one thread than on two busy cores (32 answers: 1.3 s against 19 s here): its matrices are too small
    for a thread hand-off to pay."""
    if threads and not str(device).startswith("cuda"):
        import torch

        torch.set_num_threads(threads)


def dtype_name(dtype) -> str:
    """The policy's dtype as engines spell it (vLLM's `dtype`): "bfloat16", "float16", or "auto" for None."""
    return "auto" if dtype is None else str(dtype).removeprefix("torch.")
