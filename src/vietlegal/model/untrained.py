"""An untrained LoRA adapter over the tiny base, in the layout `vietlegal train` writes: what tests and benchmarks
serve when what an adapter learned does not matter (speed, versions, switching). No stage imports it."""
from __future__ import annotations

from pathlib import Path

from vietlegal.model import base as base_model
from vietlegal.model import tiny
from vietlegal.model.adapter import AdapterManifest, file_digests
from vietlegal.params import TINY_MODEL_ID


def adapter(out: Path, seed: int = 0, r: int = 8, target_modules: tuple[str, ...] = ("q_proj", "v_proj")) -> Path:
    """A random (not zero-initialised) LoRA adapter over the tiny base in the layout `vietlegal train` writes,
    manifest with file md5s included: what tests and benchmarks serve when what was learned does not matter.
    Different seeds give different versions."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    path, revision = tiny.ensure_built()
    torch.manual_seed(seed)
    lora = LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(target_modules), task_type="CAUSAL_LM",
                      init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(path), lora).save_pretrained(out)
    base_model.load_tokenizer(base_model.resolve(TINY_MODEL_ID)).save_pretrained(out)
    (Path(out) / "README.md").unlink(missing_ok=True)  # PEFT's model card names this machine's paths
    AdapterManifest(TINY_MODEL_ID, revision, train={"lora_r": r, "seed": seed}, backend="untrained",
                    files=file_digests(out)).write(out)
    return Path(out)
