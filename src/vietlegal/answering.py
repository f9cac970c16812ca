"""Base and tuned answers to test questions: the one path `generate` and `generate_rag` share.

Both systems answer the same prompt token ids (built by `chat.encode_prompt`) with the same sampling params,
through the backend `generate.backend` picks: `hf` decodes with `vietlegal.model.decoding`, `vllm` with vLLM's
offline engine (`vietlegal.model.vllm_engine`), `auto` takes vLLM on a CUDA GPU that has it. The base model is
the adapter's own base with the adapter switched off, so the two answers differ only by the LoRA weights; the
rows are the same whichever backend wrote them.
"""
from __future__ import annotations

import sys
from pathlib import Path

from vietlegal.data.answers import answer_rows
from vietlegal.data.conversation import Conversation
from vietlegal.errors import ConfigError, DataError, GenerationError
from vietlegal.model import chat, decoding, sampling, vllm_engine
from vietlegal.model.sampling import SamplingRequest
from vietlegal.params import GenerateConfig

ALIGNED = "aligned"  # stage align's adapter: its answers column, and its adapter name on the loaded model


def check_params(cfg: GenerateConfig, context: int) -> None:
    """What only the loaded model can tell: the sampling params against its context window."""
    try:
        sampling.check(SamplingRequest([0], cfg.max_new_tokens, cfg.temperature, cfg.top_p,
                                       presence_penalty=cfg.presence_penalty, frequency_penalty=cfg.frequency_penalty),
                       context)
    except GenerationError as exc:
        raise ConfigError(f"generate.{exc}") from exc


def requests_for(cases: list[Conversation], tokenizer, cfg: GenerateConfig, context: int) -> list[SamplingRequest]:
    requests = []
    for i, case in enumerate(cases):
        ids = chat.encode_prompt(tokenizer, case.prompt)
        if len(ids) >= context:
            raise DataError(f"{case.source}: the prompt is {len(ids)} tokens, the model's context is {context}; shorten it")
        # With sampling, the same seed for base and tuned: the columns differ by the model, not by luck.
        requests.append(SamplingRequest(ids, cfg.max_new_tokens, cfg.temperature, cfg.top_p, seed=cfg.seed + i,
                                        presence_penalty=cfg.presence_penalty,
                                        frequency_penalty=cfg.frequency_penalty))
    return requests


def answer_both(model, tokenizer, requests: list[SamplingRequest], batch_size: int,
                aligned: bool = False) -> dict[str, list[decoding.Completion]]:
    """Base and tuned answers (and `aligned`'s, the model's ALIGNED adapter, when it has one)."""
    from tqdm import tqdm

    with tqdm(total=(3 if aligned else 2) * len(requests), desc="generate", unit="answer", file=sys.stderr) as bar:
        tuned = decoding.generate(model, tokenizer, requests, batch_size, on_batch=bar.update)
        done = {}
        if aligned:
            tuned_name = model.active_adapter
            model.set_adapter(ALIGNED)
            done[ALIGNED] = decoding.generate(model, tokenizer, requests, batch_size, on_batch=bar.update)
            model.set_adapter(tuned_name)
        with model.disable_adapter():
            base = decoding.generate(model, tokenizer, requests, batch_size, on_batch=bar.update)
    return {"base": base, "tuned": tuned, **done}


def select_backend(requested: str) -> str:
    """hf or vllm for generate.backend (auto | hf | vllm); vllm where it cannot run fails with the fix."""
    if requested == "auto":
        return "vllm" if vllm_engine.available() else "hf"
    if requested == "vllm":
        vllm_engine.require("generate.backend")
    return requested


def answer_cases(cfg: GenerateConfig, cases: list[Conversation], adapter_dir: Path, backend: str = "hf",
                 aligned_dir: Path | None = None) -> list[dict]:
    """Base and tuned answers, an answers-file row per case, from `backend` (see select_backend); with
    `aligned_dir` (stage align's adapter, on the same base) a third column, "aligned"."""
    if backend == "vllm":
        return answer_rows(cases, answer_with_vllm(cfg, cases, adapter_dir, aligned_dir))
    from vietlegal.model.adapter import load_for_inference
    from vietlegal.model.device import cpu_threads, inference_device

    device, dtype = inference_device()
    cpu_threads(cfg.cpu_threads, device)
    model, tokenizer, _manifest = load_for_inference(adapter_dir, device, dtype)
    if aligned_dir is not None:
        model.load_adapter(str(aligned_dir), adapter_name=ALIGNED)
    context = decoding.context_length(model)
    check_params(cfg, context)
    requests = requests_for(cases, tokenizer, cfg, context)
    return answer_rows(cases, answer_both(model, tokenizer, requests, cfg.batch_size, aligned=aligned_dir is not None))


def answer_with_vllm(cfg: GenerateConfig, cases: list[Conversation], adapter_dir: Path,
                     aligned_dir: Path | None = None) -> dict[str, list]:
    """The same requests as the HF path, answered by vLLM's offline engine (base: no LoRA request)."""
    from vietlegal.model import base as base_model
    from vietlegal.model.adapter import load_tokenizer, read_manifest

    manifest = read_manifest(adapter_dir)
    base = base_model.resolve(manifest.base_model, manifest.base_revision)
    tokenizer = load_tokenizer(adapter_dir, manifest.base_model)
    context = base_model.context_of(base)
    check_params(cfg, context)
    requests = requests_for(cases, tokenizer, cfg, context)
    return vllm_engine.generate_offline(Path(adapter_dir), base.path, base.revision, context, requests,
                                        decoding.end_token_ids(None, tokenizer), cfg.tensor_parallel_size,
                                        cfg.max_num_seqs, cfg.gpu_memory_utilization, [c.id for c in cases],
                                        aligned_dir=aligned_dir)
