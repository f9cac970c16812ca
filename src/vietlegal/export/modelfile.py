"""An Ollama Modelfile beside each GGUF file, so `ollama create` needs nothing else:

    cd models/export/gguf && ollama create vietlegal -f vietlegal-q4_k_m.Modelfile && ollama run vietlegal

It spells the chat format out (TEMPLATE, in Ollama's Go template language) rather than leaving Ollama to guess it
from the GGUF's Jinja template: a guessed or missing template is how answers never stop (ollama#8363). The
template is Llama-3.1's as the tokenizer renders it (the date block with its default date, the system message,
each turn ended by <|eot_id|>, the assistant header to answer after), with the system prompt `vietlegal serve`
adds to a request that has none, <|eot_id|> as the stop token and greedy decoding, as the pipeline evaluates.
Ollama adds <|begin_of_text|> itself (the GGUF's add_bos_token). Unlike the Jinja template, Go's cannot trim
whitespace around a message.
"""
from __future__ import annotations

from pathlib import Path

from vietlegal.errors import ExportError
from vietlegal.export.llama_server import TEMPLATE_DATE
from vietlegal.model.chat import END_OF_TURN

TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\n"
    "Cutting Knowledge Date: December 2023\n"
    f"Today Date: {TEMPLATE_DATE}\n\n"
    "{{ .System }}" + END_OF_TURN +
    '{{ range .Messages }}{{ if ne .Role "system" }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n'
    "{{ .Content }}" + END_OF_TURN + "{{ end }}{{ end }}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)


def path_for(gguf: Path) -> Path:
    return gguf.with_suffix(".Modelfile")


def write(gguf: Path, system_prompt: str, context: int) -> Path:
    """The Modelfile for `gguf` (FROM the file beside it, by relative path)."""
    if '"""' in system_prompt:
        raise ExportError('prepare.system_prompt contains """, which ends a Modelfile string early; remove it')
    text = (
        f"# Ollama: ollama create vietlegal -f {path_for(gguf).name}   (in this directory), then: ollama run vietlegal\n"
        f"FROM ./{gguf.name}\n"
        f'TEMPLATE """{TEMPLATE}"""\n'
        f'SYSTEM """{system_prompt}"""\n'
        f'PARAMETER stop "{END_OF_TURN}"\n'
        "PARAMETER temperature 0\n"
        f"PARAMETER num_ctx {context}\n"
    )
    out = path_for(gguf)
    out.write_text(text, encoding="utf-8")
    return out
