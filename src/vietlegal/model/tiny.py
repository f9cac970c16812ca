"""The embedded default base model: a tiny Llama-3.1-architecture model built locally from a seed.

It exists to prove the pipeline on 2 CPU cores, not to give legal answers. It has what the 8B
model has where the pipeline can tell the difference: LlamaForCausalLM, a byte-level BPE
tokenizer (Llama-3's pre-tokenizer regex) that covers any Vietnamese text, Llama-3.1's special
tokens, and Llama-3.1's own chat template with its date system block. Its weights are a pure
function of the config and the seed, so any machine (a serving droplet that never trained) can
rebuild the exact same base; the recipe hash is its revision.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from vietlegal import jsonl
from vietlegal.errors import DataError
from vietlegal.params import TINY_MODEL_ID

TOKENIZER_RESOURCE = "tiny_tokenizer.json"
BASE_FILE = "vietlegal_base.json"  # beside the weights: which base this is and its revision
TEMPLATE_RESOURCE = "llama31_chat_template.jinja"

# Llama-3.1's special tokens, in its order; pad is the reserved fine-tune pad token, not EOS.
SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|reserved_special_token_2|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
]
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

MODEL_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
SEED = 1234


def chat_template() -> str:
    return resources.files("vietlegal.resources").joinpath(TEMPLATE_RESOURCE).read_text(encoding="utf-8")


def train_tokenizer(texts: list[str], vocab_size: int = 3000):
    """Train the byte-level BPE from texts (used once to produce the committed resource)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(byte_fallback=False, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def _fast_tokenizer():
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    raw = resources.files("vietlegal.resources").joinpath(TOKENIZER_RESOURCE).read_text(encoding="utf-8")
    tok = Tokenizer.from_str(raw)
    bos = tok.token_to_id("<|begin_of_text|>")
    # Like Llama-3.1: plain text gets BOS; chat prompts already contain it and are encoded without.
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
        chat_template=chat_template(),
        model_max_length=MODEL_CONFIG["max_position_embeddings"],
        clean_up_tokenization_spaces=False,
    )


def recipe_hash() -> str:
    """The tiny model's revision: changes whenever anything that shapes its weights changes."""
    h = hashlib.sha256()
    h.update(json.dumps({"config": MODEL_CONFIG, "seed": SEED}, sort_keys=True).encode())
    for name in (TOKENIZER_RESOURCE, TEMPLATE_RESOURCE):
        h.update(resources.files("vietlegal.resources").joinpath(name).read_bytes())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("VIETLEGAL_CACHE", Path.home() / ".cache" / "vietlegal"))


def random_model(tokenizer, sizes: dict | None = None, seed: int = SEED):
    """A randomly initialised LlamaForCausalLM for this tokenizer; `sizes` overrides MODEL_CONFIG's
    (hidden_size, num_hidden_layers ...: the pretrain stage's larger base)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.convert_tokens_to_ids(t) for t in ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")],
        pad_token_id=tokenizer.pad_token_id,
        **{**MODEL_CONFIG, **(sizes or {})},
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def tokenizer():
    """The committed byte-level BPE with Llama-3.1's special tokens and chat template."""
    return _fast_tokenizer()


def build(out_dir: Path) -> Path:
    """Build the tiny model and tokenizer into out_dir (deterministic for a given recipe)."""
    tokenizer = _fast_tokenizer()
    random_model(tokenizer).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / BASE_FILE).write_text(
        json.dumps({"model": TINY_MODEL_ID, "revision": recipe_hash()}, indent=2) + "\n"
    )
    return out_dir


def ensure_built() -> tuple[Path, str]:
    """Return (directory, revision) of the tiny model, building it once per recipe."""
    revision = recipe_hash()
    target = cache_root() / "models" / f"tiny-llama-{revision}"
    if not (target / BASE_FILE).exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=target.parent))
        try:
            build(tmp)
            if not (target / BASE_FILE).exists():  # another process may have won the race
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target, revision


def save_pretrained_base(model, tokenizer, out_dir: Path, sizes: dict) -> str:
    """Write a pre-trained tiny base (the pretrain stage's output) whole or not at all; its revision, the hash
    of its weights, goes into vietlegal_base.json, so an adapter's manifest names exactly the base it was
    trained on (`vietlegal.model.base.resolve` checks it)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would keep other users (a serving account) out of the output
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        h = hashlib.sha256()
        for weights in sorted(tmp.glob("*.safetensors")):
            h.update(weights.read_bytes())
        revision = h.hexdigest()[:16]
        (tmp / BASE_FILE).write_text(json.dumps({"model": TINY_MODEL_ID, "pretrained": True, "sizes": sizes,
                                                 "revision": revision}, indent=2) + "\n")
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return revision


def base_info(directory: str | Path) -> dict | None:
    """A local base directory's vietlegal_base.json (None when it has none: any other local model)."""
    path = Path(directory) / BASE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _texts(path: Path) -> list[str]:
    if path.suffix != ".jsonl":
        return [path.read_text(encoding="utf-8")]
    return [v for _, row in jsonl.read_objects(path, DataError) for v in row.values() if isinstance(v, str)]


def retrain_tokenizer(files: list[str]) -> None:
    """Retrain the committed byte-level BPE resource from text/JSONL files (changes the model's revision)."""
    texts = [t for p in sorted(files) for t in _texts(Path(p))]
    target = resources.files("vietlegal.resources").joinpath(TOKENIZER_RESOURCE)
    train_tokenizer(texts).save(str(target))

