"""vLLM's engine over the adapter's base with LoRA: the arguments (plain Python, tested without vLLM) and the
offline engine `generate` and `generate_rag` answer through with `generate.backend: vllm`.

The server's vLLM worker builds its AsyncLLM from the same `engine_kwargs`, and every request's SamplingParams
from `sampling.vllm_sampling_kwargs`, so evaluation and serving decode alike. Base answers are the same engine
without a LoRA request; tuned answers carry the adapter's `LoRARequest`. vLLM is imported only inside
`generate_offline`; that function is UNVERIFIED here (no GPU in this project's test environment).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from vietlegal.errors import AdapterError, GenerationError, HardwareError
from vietlegal.model import structure

# vLLM's max_lora_rank accepts only these values (vllm.config.lora.MaxLoRARanks); its default is 16.
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
ADAPTER_NAME = "vietlegal"
# Share of the GPU's memory the engine takes for weights and KV cache (vLLM's own default is 0.92): what a
# caller does not set. generate.gpu_memory_utilization and serve.gpu_memory_utilization set it.
GPU_MEMORY_UTILIZATION = 0.9
# vLLM's finish reasons (vllm.v1.engine.FINISH_REASON_STRINGS) as the answers file records them. The others
# ("abort", "error", "repetition") are no clean end of an answer: the offline path refuses to write them as one.
FINISH_REASONS = {"stop": "stop", "length": "length"}


def lora_rank_slot(rank: int) -> int:
    """The smallest max_lora_rank vLLM accepts that holds an adapter of this rank."""
    for slot in LORA_RANKS:
        if rank <= slot:
            return slot
    raise AdapterError(f"adapter_config.json: r={rank} is above vLLM's largest max_lora_rank {LORA_RANKS[-1]}; "
                       "retrain with a smaller train.lora_r")


def adapter_rank(adapter_dir: str | Path) -> int:
    """The adapter's LoRA rank (the largest, if ranks differ per module); refuses what vLLM cannot serve."""
    path = Path(adapter_dir) / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("modules_to_save"):
        raise AdapterError(f"{path}: modules_to_save={config['modules_to_save']} cannot be served by vLLM "
                           "(vllm#9280); retrain without it")
    return max([int(config.get("r", 8)), *map(int, (config.get("rank_pattern") or {}).values())])


def engine_kwargs(base_path: str, revision: str | None, adapter_dir: str | Path, context: int,
                  max_num_seqs: int, dtype: str = "auto", tensor_parallel_size: int = 1, max_loras: int = 1,
                  ranks: tuple[int, ...] = (), gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION) -> dict:
    """Engine keyword arguments (vllm.LLM and AsyncEngineArgs take the same) for the adapter's base with LoRA.
    `max_num_seqs`: sequences decoded at once (vLLM's batch bound, not the HF batch size); `max_loras`: adapters
    in one batch; `ranks`: of the other adapters to serve (max_lora_rank holds them all)."""
    # The adapter's tokenizer: the one whose template built the prompt.
    return {**model_kwargs(base_path, revision, str(adapter_dir), context, max_num_seqs, dtype, tensor_parallel_size,
                           gpu_memory_utilization),
            "enable_lora": True,
            "max_loras": max_loras,
            "max_lora_rank": lora_rank_slot(max((adapter_rank(adapter_dir), *ranks)))}


def model_kwargs(model: str, revision: str | None, tokenizer: str, context: int, max_num_seqs: int,
                 dtype: str = "auto", tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION) -> dict:
    """The engine arguments of a model served as it is, without LoRA (`vietlegal serve --model`: a merged model
    directory, or a base alone); `engine_kwargs` adds the LoRA ones."""
    return {
        "model": model,
        "revision": revision,
        "tokenizer": tokenizer,
        "max_model_len": context,
        "max_num_seqs": max_num_seqs,
        "dtype": dtype,  # model.device's policy, as the HF path loads it
        "tensor_parallel_size": tensor_parallel_size,
        "gpu_memory_utilization": gpu_memory_utilization,
        "seed": 0,
        # JSON whitespace: vLLM reads it only from here (per request it is ignored); the HF grammar uses the same rule.
        "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": not structure.ANY_WHITESPACE},
    }


def lora_request(name: str, lora_id: int, path: str | Path):
    """vLLM's LoRARequest for an adapter directory. `lora_id` >= 1 and unique per loaded weights: vLLM keys its
    LoRA slots and prefix cache by it, so new weights under an old name need a new id."""
    from vllm.lora.request import LoRARequest  # pragma: no cover - needs vllm

    return LoRARequest(lora_name=name, lora_int_id=lora_id, lora_path=str(path))


def finish_reason(reason: str | None, question: str) -> str:
    """The answers file's finish reason for vLLM's; an answer vLLM aborted or failed is an error, not a stop."""
    if reason not in FINISH_REASONS:
        raise GenerationError(f"{question}: vLLM ended the answer with finish_reason {reason!r}, not a stop or the "
                              "length budget; nothing was written. Look at the engine's log above, then rerun")
    return FINISH_REASONS[reason]


def available() -> bool:
    """vLLM can run here: a CUDA GPU and the vllm package."""
    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None


def require(setting: str) -> None:
    if not available():
        raise HardwareError(f"{setting}: vllm needs a CUDA GPU and the vllm package (`make gpu` installs "
                            f"requirements-gpu.txt, docs/dependencies.md); on this machine set {setting}: hf (or auto)")


def sampling_params(request, end_ids: set[int]):
    """vllm.SamplingParams for a SamplingRequest: `sampling.vllm_sampling_kwargs`, the structure as vLLM's object."""
    from vllm import SamplingParams  # pragma: no cover - needs vllm
    from vllm.sampling_params import StructuredOutputsParams

    from vietlegal.model.sampling import vllm_sampling_kwargs

    kwargs = vllm_sampling_kwargs(request, end_ids)
    if "structured_outputs" in kwargs:
        kwargs["structured_outputs"] = StructuredOutputsParams(**kwargs["structured_outputs"])
    return SamplingParams(**kwargs)


def generate_offline(adapter_dir: Path, base_path: str, revision: str | None, context: int, requests: list,
                     end_ids: set[int], tensor_parallel_size: int, max_num_seqs: int,
                     gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION,
                     names: list[str] | None = None, aligned_dir: Path | None = None) -> dict[str, list]:
    """{"base": completions, "tuned": completions} for SamplingRequests, through vLLM's offline engine; with
    `aligned_dir` (stage align's adapter) also "aligned", the same engine with that LoRA. `names`: what an
    error calls each request (the test case's id; default: its position)."""
    from vllm import LLM  # pragma: no cover - needs a GPU and vllm

    from vietlegal.model.decoding import Completion
    from vietlegal.model.device import dtype_name, inference_dtype

    ranks = (adapter_rank(aligned_dir),) if aligned_dir is not None else ()
    llm = LLM(**engine_kwargs(base_path, revision, adapter_dir, context, max_num_seqs,
                              dtype_name(inference_dtype("cuda")), tensor_parallel_size, ranks=ranks,
                              gpu_memory_utilization=gpu_memory_utilization))
    prompts = [{"prompt_token_ids": list(r.prompt_ids)} for r in requests]
    params = [sampling_params(r, end_ids) for r in requests]
    lora = lora_request(ADAPTER_NAME, 1, adapter_dir)
    names = names or [f"request {k}" for k in range(len(requests))]

    def completions(outputs, system: str) -> list:
        done = []
        for request, out, name in zip(requests, outputs, names):
            choice = out.outputs[0]
            reason = finish_reason(choice.finish_reason, f"{name} ({system})")
            done.append(Completion(choice.text, list(choice.token_ids), reason, len(request.prompt_ids),
                                   len(choice.token_ids)))
        return done

    tuned = completions(llm.generate(prompts, params, lora_request=lora, use_tqdm=True), "tuned")
    base = completions(llm.generate(prompts, params, use_tqdm=True), "base")
    if aligned_dir is None:
        return {"base": base, "tuned": tuned}
    aligned = completions(llm.generate(prompts, params, lora_request=lora_request("aligned", 2, aligned_dir),
                                       use_tqdm=True), "aligned")
    return {"base": base, "tuned": tuned, "aligned": aligned}
