"""The merged model directory: the adapter folded into its base, a whole model with no PEFT needed to load it.

    models/export/merged/
      config.json, generation_config.json, model.safetensors   LlamaForCausalLM in the base's own dtype (bf16 for
                                                               Llama-3.1-8B, float32 for the tiny model)
      tokenizer.json, tokenizer_config.json, chat_template.jinja   the adapter's tokenizer and chat template, with
                                                               <|eot_id|> as its end-of-sequence token
      vietlegal.json   the adapter's manifest (base, revision, data hash, versions...) plus `merged`: the adapter
                       version folded in; `files` lists this directory's md5s

transformers loads it with `from_pretrained(DIR)`, llama.cpp's converter reads it, and it is the plain Hugging Face
layout vLLM loads without --enable-lora (not run here: no GPU). Written to a staging sibling and renamed into place, like the adapter.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from vietlegal.errors import ExportError
from vietlegal.model.adapter import AdapterManifest, check_complete, dir_md5, file_digests, load_for_inference
from vietlegal.model.chat import END_OF_TURN
from vietlegal.train.export import replace_dir, staging_dir


def merge(adapter_dir: Path, out_dir: Path) -> AdapterManifest:
    """Merge `adapter_dir` into its base and write the merged directory at `out_dir`; its manifest."""
    manifest = check_complete(adapter_dir)  # every file the manifest lists, with its md5: never a half-pulled one
    if manifest.merged:
        raise ExportError(f"{adapter_dir}: is already a merged model (vietlegal.json has `merged`); export.adapter "
                          "names an adapter directory such as models/adapter")
    model, tokenizer, _ = load_for_inference(adapter_dir, "cpu")  # the base's own dtype: merging loses nothing more
    model = model.merge_and_unload()
    end_of_turn = end_of_turn_id(tokenizer, adapter_dir)
    # The chat's end of turn, not <|end_of_text|>: what llama.cpp, Ollama and vLLM stop on by default (unsloth#468).
    tokenizer.eos_token = END_OF_TURN
    model.generation_config.eos_token_id = sorted({end_of_turn, *_as_list(model.generation_config.eos_token_id)})
    staging = staging_dir(out_dir)
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    merged = dataclasses.replace(manifest, files=file_digests(staging), merged={
        "adapter_version": dir_md5(adapter_dir), "dtype": str(model.dtype).removeprefix("torch.")})
    merged.write(staging)
    replace_dir(staging, out_dir)
    return merged


def end_of_turn_id(tokenizer, where: Path) -> int:
    vocab = tokenizer.get_vocab()
    if END_OF_TURN not in vocab:
        raise ExportError(f"{where}: the tokenizer has no {END_OF_TURN}; the export writes Llama-3.1-family models, "
                          "whose chat turns end with it")
    return vocab[END_OF_TURN]


def _as_list(ids) -> list[int]:
    return [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
