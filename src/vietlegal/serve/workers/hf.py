"""The transformers backend (`serve.backend: hf`, CPU or GPU) in LitServe's inference worker process.

`setup` loads the base once, in the device policy's dtype, with the adapters over it: a single adapter is
merged into the base (no extra matmuls), several stay apart so that requests for different versions decode in
one batch (each row through its own adapter: model/mixed_lora.py). A model served whole (`--model`: a merged
directory or a base alone) is loaded as it is, with its own tokenizer, no PEFT. `HFLoop` (hf_loop.py) decodes
what arrives with continuous batching through `vietlegal.model.decoding`.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

from vietlegal.serve.http.drain import ignore_sigterm_in_worker
from vietlegal.serve.workers.hf_adapters import WorkerAdapters
from vietlegal.serve.workers.hf_loop import decode_all
from vietlegal.serve.log import configure_logging, logger
from vietlegal.serve.protocol.piece import Piece
from vietlegal.serve.workers.base import ChatAPI


class HFChatAPI(ChatAPI):
    def __init__(self, *args, cpu_threads: int | None = None, merge: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.cpu_threads = cpu_threads
        self.merge = (merge and len(self.adapters_at) == 1) or self.whole is not None  # one plain model either way

    def setup(self, device: str) -> None:
        import torch

        from vietlegal.model import base as base_model
        from vietlegal.model.adapter import load_adapters
        from vietlegal.model.device import inference_dtype
        from vietlegal.serve.versions import model_info

        configure_logging("info")  # a spawned worker does not inherit the server's logging set-up
        ignore_sigterm_in_worker()
        if self.liveness is not None:
            self.liveness.starting()
        if self.cpu_threads and not str(device).startswith("cuda"):
            torch.set_num_threads(self.cpu_threads)  # tiny matrices: thread hand-offs cost more than they save
        if self.whole is not None:
            model = base_model.load_model(self.whole, device, inference_dtype(device))
            self.tokenizer = base_model.load_tokenizer(self.whole)  # the one the HTTP side encodes with
        else:
            model = load_adapters(self.adapters_at, device=device, dtype=inference_dtype(device))
            if self.merge:
                # Fold the LoRA weights into the base (unquantized here): same outputs, no extra matmuls per layer.
                model = model.merge_and_unload().eval()
            self.tokenizer = model_info.load(self.adapter_dir).tokenizer  # the one the HTTP side encodes with
        self.model, self.adapters = model, WorkerAdapters(model, merged=self.merge)
        served = f"model {self.whole.path}" if self.whole is not None else f"{len(self.adapters_at)} adapter(s)"
        logger.info("inference worker pid=%d ready on %s with %s%s", os.getpid(), device, served,
                    " merged" if self.merge and self.whole is None else "")
        if self.liveness is not None:
            self.liveness.ready()

    def predict(self, jobs: list[dict], context: list[dict]) -> Iterator[tuple[str, Piece | None]]:
        """Not LitServe's path (HFLoop drives a Decoder itself): decode jobs together, to the end."""
        yield from decode_all(self.model, self.tokenizer, jobs, self.cancelled, self.adapters)
