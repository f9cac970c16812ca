"""The Ollama Modelfile renders prompts exactly as the tokenizer's chat template does.

No Ollama (nor Go) runs here, so its template step is emulated: `ollama_prompt` follows ollama/ollama's
template/template.go (`Execute` with .Messages: System = every system message joined by a blank line, consecutive
messages of one role merged) and server/routes.go (the Modelfile's SYSTEM put first when a request has no system
message), over the Go template constructs the Modelfile uses. Ollama adds <|begin_of_text|> as a token itself.
"""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from vietlegal.errors import ExportError
from vietlegal.export import modelfile
from vietlegal.params import DEFAULT_SYSTEM_PROMPT

ACTION = re.compile(r"{{\s*(.*?)\s*}}", re.S)


def go_template(template: str, data: dict) -> str:
    """Text/template for the constructs the Modelfile uses: fields, `range .Messages`, `if ne .Role "..."`."""
    tokens, pos = [], 0
    for m in ACTION.finditer(template):
        tokens += [("text", template[pos:m.start()]), ("action", m.group(1))]
        pos = m.end()
    tokens.append(("text", template[pos:]))

    def block(i: int, dot: dict) -> tuple[str, int]:
        out = []
        while i < len(tokens):
            kind, value = tokens[i]
            if kind == "text":
                out.append(value)
            elif value == "end":
                return "".join(out), i
            elif value == "range .Messages":
                end = i
                for item in dot["Messages"]:
                    text, end = block(i + 1, item)
                    out.append(text)
                i = end if dot["Messages"] else skip(i + 1)
            elif value.startswith("if ne .Role "):
                role = value.removeprefix("if ne .Role ").strip('"')
                if dot["Role"] != role:
                    text, i = block(i + 1, dot)
                    out.append(text)
                else:
                    i = skip(i + 1)
            else:
                out.append(str(dot[value.removeprefix(".")]))
            i += 1
        return "".join(out), i

    def skip(i: int) -> int:
        depth = 0
        while True:
            kind, value = tokens[i]
            if kind == "action" and value == "end":
                if depth == 0:
                    return i
                depth -= 1
            elif kind == "action" and value.startswith(("range", "if")):
                depth += 1
            i += 1

    return block(0, data)[0]


def ollama_prompt(template: str, system: str, messages: list[dict]) -> str:
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system}] + messages
    collated = []
    for m in messages:
        if collated and collated[-1]["role"] == m["role"]:
            collated[-1] = {**collated[-1], "content": collated[-1]["content"] + "\n\n" + m["content"]}
        else:
            collated.append(dict(m, Role=m["role"], Content=m["content"]))
    system_text = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return go_template(template, {"System": system_text, "Messages": [dict(m, Role=m["role"], Content=m["content"])
                                                                      for m in collated]})


# Contents as the Jinja template leaves them (it trims each message; Go's template cannot): stripped, NFC.
content = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40).map(
    str.strip).filter(bool)


@st.composite
def conversations(draw):
    turns = draw(st.integers(0, 2))
    messages = [{"role": "system", "content": draw(content)}] if draw(st.booleans()) else []
    for _ in range(turns):
        messages += [{"role": "user", "content": draw(content)}, {"role": "assistant", "content": draw(content)}]
    return messages + [{"role": "user", "content": draw(content)}]


@settings(max_examples=40, deadline=None)
@given(conversations())
def test_the_modelfile_template_renders_what_the_tokenizer_renders(tiny_tokenizer, messages):
    with_system = messages if messages[0]["role"] == "system" else (
        [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}] + messages)
    expected = tiny_tokenizer.apply_chat_template(with_system, tokenize=False, add_generation_prompt=True)
    assert expected.startswith(tiny_tokenizer.bos_token)
    assert ollama_prompt(modelfile.TEMPLATE, DEFAULT_SYSTEM_PROMPT, messages) == expected[len(tiny_tokenizer.bos_token):]


def test_the_modelfile_names_the_file_beside_it_its_stop_token_and_system_prompt(tmp_path):
    gguf = tmp_path / "vietlegal-q4_k_m.gguf"
    path = modelfile.write(gguf, DEFAULT_SYSTEM_PROMPT, 2048)
    assert path == tmp_path / "vietlegal-q4_k_m.Modelfile"
    lines = path.read_text(encoding="utf-8")
    assert "\nFROM ./vietlegal-q4_k_m.gguf\n" in lines
    assert f'TEMPLATE """{modelfile.TEMPLATE}"""' in lines and f'SYSTEM """{DEFAULT_SYSTEM_PROMPT}"""' in lines
    assert '\nPARAMETER stop "<|eot_id|>"\n' in lines and "\nPARAMETER num_ctx 2048\n" in lines


def test_a_system_prompt_that_would_end_the_string_early_is_refused(tmp_path):
    with pytest.raises(ExportError, match='prepare.system_prompt contains """'):
        modelfile.write(tmp_path / "x.gguf", 'Trả lời """ ngắn', 2048)
