"""GGUF files of the merged model: llama.cpp's converter writes the float file, its quantiser the others.

    models/export/gguf/vietlegal-f16.gguf, vietlegal-q8_0.gguf, vietlegal-q4_k_m.gguf, ...

Each carries the weights, the byte-level BPE tokenizer, the chat template (tokenizer.chat_template) and
<|eot_id|> as its end-of-sequence token; `check` reads every file back (with the `gguf` package) and fails the
export when one of them is missing or wrong, the known ways an export serves garbage or never stops
(ollama#8363, unsloth#468).

The converter runs in a child process, from the llama.cpp source it ships with (`python -m
vietlegal.export.gguf_files SOURCE PRE ARGS...`): its own gguf-py, which is newer than the `gguf` release on PyPI.
"""
from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from vietlegal.errors import ExportError
from vietlegal.export.llama_cpp import LlamaCpp
from vietlegal.model.chat import END_OF_TURN
from vietlegal.model.tiny import LLAMA3_SPLIT
from vietlegal.params import GGUF_FLOAT_FORMATS

STEM = "vietlegal"
LLAMA3_PRE = "llama-bpe"  # llama.cpp's name for Llama-3's pre-tokenizer (tokenizer.ggml.pre)


def file_name(fmt: str) -> str:
    return f"{STEM}-{fmt}.gguf"


def llama3_pre_tokenizer(merged_dir: Path) -> bool:
    """Whether the tokenizer splits text exactly as Llama-3's does: its regex, then byte-level without a regex of
    its own or a prefix space, a BPE that ignores merges for whole-word tokens. llama.cpp recognises a pre-tokenizer
    by hashing the ids of a test string, so a new vocabulary with Llama-3's pre-tokenizer (the tiny model's) is
    unknown to it although llama.cpp implements exactly that pre-tokenizer as "llama-bpe"."""
    spec = json.loads((merged_dir / "tokenizer.json").read_text(encoding="utf-8"))
    pre, model = spec.get("pre_tokenizer") or {}, spec.get("model") or {}
    steps = pre.get("pretokenizers") or []
    return (pre.get("type") == "Sequence" and len(steps) == 2
            and steps[0] == {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False}
            and {k: v for k, v in steps[1].items() if k != "trim_offsets"}  # offsets only, never the tokens
            == {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}
            and model.get("type") == "BPE" and model.get("ignore_merges") is True)


def convert(llama: LlamaCpp, merged_dir: Path, out: Path, fmt: str, metadata: dict) -> None:
    """The merged directory as one GGUF file of float type `fmt` (f16, bf16, f32)."""
    if fmt not in GGUF_FLOAT_FORMATS:
        raise ValueError(f"the converter writes {GGUF_FLOAT_FORMATS}, not {fmt}")
    pre = LLAMA3_PRE if llama3_pre_tokenizer(merged_dir) else ""
    meta = out.parent / f".{out.name}.metadata.json"
    meta.write_text(json.dumps(metadata, ensure_ascii=False), encoding="utf-8")
    try:
        _run([sys.executable, "-m", __name__, str(llama.source), pre, str(merged_dir), "--outtype", fmt,
              "--outfile", str(out), "--metadata", str(meta)], "convert_hf_to_gguf.py")
    finally:
        meta.unlink(missing_ok=True)


def quantize(llama: LlamaCpp, source: Path, out: Path, fmt: str, threads: int | None = None) -> None:
    """`source` (a float GGUF) quantised to `fmt` (q8_0, q4_k_m, ...) by llama-quantize."""
    _run([str(llama.quantize), str(source), str(out), fmt.upper(), str(threads or os.cpu_count() or 1)],
         "llama-quantize")


def write_all(llama: LlamaCpp, merged_dir: Path, gguf_dir: Path, formats: tuple[str, ...], tokenizer,
              metadata: dict) -> dict[str, dict]:
    """Every format's file in `gguf_dir`, checked: {format: facts}, in the order of `formats`. The float files come
    from the converter, the others from the quantiser, out of the widest float file listed."""
    floats = [f for f in GGUF_FLOAT_FORMATS if f in formats]
    facts = {}
    for fmt in floats + [f for f in formats if f not in floats]:
        path = gguf_dir / file_name(fmt)
        t0 = time.perf_counter()
        if fmt in floats:
            convert(llama, merged_dir, path, fmt, metadata)
        else:
            quantize(llama, gguf_dir / file_name(floats[0]), path, fmt)
        facts[fmt] = {**check(path, tokenizer), "seconds_to_write": round(time.perf_counter() - t0, 1)}
        print(f"export: {path.name} {facts[fmt]['bytes'] / 2**20:.1f} MiB in {facts[fmt]['seconds_to_write']}s",
              file=sys.stderr)
    return {fmt: facts[fmt] for fmt in formats}


def check(path: Path, tokenizer) -> dict:
    """What the file holds that serving depends on, checked against the tokenizer; its tensor types and size."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    fields = {name: reader.fields[name].contents() for name in (
        "general.architecture", "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.bos_token_id", "tokenizer.chat_template") if name in reader.fields}
    vocab_size = len(reader.fields["tokenizer.ggml.tokens"].data) if "tokenizer.ggml.tokens" in reader.fields else 0
    expected = {
        "tokenizer.ggml.eos_token_id": tokenizer.convert_tokens_to_ids(END_OF_TURN),
        "tokenizer.ggml.bos_token_id": tokenizer.bos_token_id,
        "tokenizer.chat_template": tokenizer.chat_template,
    }
    wrong = [f"{k} is {str(fields.get(k))[:60]!r}, expected {str(v)[:60]!r}" for k, v in expected.items()
             if fields.get(k) != v]
    if vocab_size != len(tokenizer):
        wrong.append(f"{vocab_size} tokens, the tokenizer has {len(tokenizer)}")
    if wrong:
        raise ExportError(f"{path}: {'; '.join(wrong)}")
    return {
        "file": path.name,
        "bytes": path.stat().st_size,
        "tensor_types": dict(sorted(Counter(t.tensor_type.name for t in reader.tensors).items())),
        "pre_tokenizer": fields.get("tokenizer.ggml.pre"),
        "eos_token_id": fields["tokenizer.ggml.eos_token_id"],
    }


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-15:])
        raise ExportError(f"{what} failed (exit {done.returncode}):\n{tail}")


def _converter_main(argv: list[str]) -> None:
    """In the child: llama.cpp's convert_hf_to_gguf.py, with Llama-3's pre-tokenizer named when `pre` is given and
    the converter does not know the tokenizer's hash (the check above found the pre-tokenizer to be Llama-3's)."""
    source, pre, *args = argv
    sys.path[:0] = [source, str(Path(source) / "gguf-py")]  # before `conversion` imports gguf
    from conversion import base  # the converter's own package, in the llama.cpp source

    recognise = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer) -> str:
        try:
            return recognise(self, tokenizer)
        except NotImplementedError:
            if not pre:
                raise
            return pre

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    script = str(Path(source) / "convert_hf_to_gguf.py")
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    _converter_main(sys.argv[1:])
