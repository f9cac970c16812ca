"""The exported files under llama.cpp's own server: the tokenizer, the chat template and the end of turn survive
the merge and the conversion, and the F16 file answers with the tokens `vietlegal serve` gives for the adapter.

Real parts throughout: the tiny adapter (the `tiny_adapter` fixture), merged and converted by the export stage's
code, llama-server built from the registry's llama.cpp source, `vietlegal serve` in a clean clone (`live_server`),
and the openai client on both.
"""
from __future__ import annotations

import json

import openai
import pytest
import requests
from hypothesis import given, settings, strategies as st

from tests.conftest import QA, SYSTEM
from vietlegal.export.llama_server import ALIAS
from vietlegal.model.chat import END_OF_TURN

pytestmark = pytest.mark.slow
KEY = "test-key"  # live_server's
# Vietnamese syllables with every tone mark, digits, punctuation, whitespace runs, emoji, the special tokens.
PIECES = ["Điều", "khoản", "luật", "người", "lao động", "thai sản", "hôn nhân", "Bộ luật Dân sự", "2015", "06",
          "91/2015/QH13", "168/2024/NĐ-CP", "tháng.", "đ", "ỹ", "ầ", "ượ", " ", "  ", "\n", "\n\n", "\t", "?", ",",
          "(", "%/năm", "🦙", "’", "<|eot_id|>", "<|start_header_id|>", "'s", "ABC", "x"]
texts = st.lists(st.sampled_from(PIECES) | st.text(min_size=1, max_size=8), min_size=1, max_size=20).map("".join)


@pytest.fixture(scope="module")
def tokenizer(exported):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(exported[0] / "merged"))


def chat(base_url: str, key: str, model: str, messages: list[dict], max_tokens: int):
    client = openai.OpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0, timeout=120)
    return client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=max_tokens)


def test_the_merged_directory_is_a_plain_model_with_the_adapters_numbers(exported, tokenizer, tiny_adapter,
                                                                        conversations):
    import torch
    from transformers import AutoModelForCausalLM

    from vietlegal.model import chat as chat_module
    from vietlegal.model.adapter import check_complete, dir_md5, load_for_inference, read_manifest

    merged_dir = exported[0] / "merged"
    assert not (merged_dir / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir)).eval()
    adapted, adapter_tokenizer, _ = load_for_inference(tiny_adapter)
    ids = torch.tensor([chat_module.encode_prompt(adapter_tokenizer, conversations[0][:2])])
    with torch.inference_mode():
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-5)
    manifest, adapter = check_complete(merged_dir), read_manifest(tiny_adapter)
    assert (manifest.base_model, manifest.base_revision, manifest.data_hash) == (
        adapter.base_model, adapter.base_revision, adapter.data_hash)
    assert manifest.merged == {"adapter_version": dir_md5(tiny_adapter), "dtype": "float32"}
    assert tokenizer.eos_token == END_OF_TURN


def test_every_gguf_file_carries_the_tokenizer_the_end_of_turn_and_the_template(exported, tokenizer):
    from vietlegal.export.gguf_files import check

    out, formats = exported
    for fmt, facts in formats.items():
        again = check(out / "gguf" / facts["file"], tokenizer)  # raises on a wrong EOS, template or vocabulary
        assert again["eos_token_id"] == tokenizer.convert_tokens_to_ids(END_OF_TURN) != tokenizer.convert_tokens_to_ids(
            "<|end_of_text|>")
        assert again["pre_tokenizer"] == "llama-bpe"
        assert (out / "gguf" / facts["file"]).with_suffix(".Modelfile").exists()
    assert formats["f16"]["bytes"] > formats["q8_0"]["bytes"] > formats["q4_k_m"]["bytes"]
    assert "Q8_0" in formats["q8_0"]["tensor_types"] and "F16" in formats["f16"]["tensor_types"]
    manifest = json.loads((out / "gguf" / "vietlegal.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) == {p.name for p in (out / "gguf").iterdir() if p.name != "vietlegal.json"}


@settings(max_examples=60, deadline=None)
@given(text=texts)
def test_llama_cpp_tokenizes_as_the_tokenizer_does(f16_server, tokenizer, text):
    """No drift between HF's tokenizer and the GGUF's (llama.cpp#7062), special tokens included."""
    got = requests.post(f16_server.url + "/tokenize", json={"content": text}, timeout=30).json()["tokens"]
    assert got == tokenizer(text, add_special_tokens=False)["input_ids"]


ASCII_SPACE = " \t\n\r\x0b\x0c"
# Messages whose ends both template engines trim alike (see the next test for those they do not).
contents = texts.filter(lambda t: t.strip() == t.strip(ASCII_SPACE))


@settings(max_examples=25, deadline=None)
@given(system=st.none() | contents, turns=st.lists(st.tuples(contents, contents), max_size=2), last=contents)
def test_llama_cpp_renders_the_chat_template_as_the_tokenizer_does(f16_server, tokenizer, system, turns, last):
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        m for q, a in turns for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})] + [
        {"role": "user", "content": last}]
    got = requests.post(f16_server.url + "/apply-template", json={"messages": messages}, timeout=30).json()["prompt"]
    expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # llama.cpp leaves <|begin_of_text|> out of the text and adds it as a token (the GGUF's add_bos_token).
    assert tokenizer.bos_token + got == expected


@pytest.mark.parametrize("space", ["\u00a0", "\u3000", "\u2009", "\x1f"])
def test_llama_cpp_keeps_non_ascii_space_at_a_messages_ends_where_python_trims_it(f16_server, tokenizer, space):
    """The template's `| trim` is Python's str.strip in transformers (every Unicode space) and C's isspace in
    llama.cpp (ASCII only), so a message ending in a no-break space (text pasted from a web page) renders, and
    tokenises, differently in-house: docs/export.md tells clients to strip what they send."""
    messages = [{"role": "user", "content": "Tuổi kết hôn?" + space}]
    got = requests.post(f16_server.url + "/apply-template", json={"messages": messages}, timeout=30).json()["prompt"]
    expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert tokenizer.bos_token + got == expected.replace("Tuổi kết hôn?", "Tuổi kết hôn?" + space)


def test_the_end_of_turn_token_ends_the_answer_and_is_not_shown(f16_server, tokenizer):
    client = openai.OpenAI(base_url=f16_server.url + "/v1", api_key="none", max_retries=0)
    messages = [{"role": "user", "content": QA[0][0]}]
    for end in (END_OF_TURN, "<|end_of_text|>", "<|eom_id|>"):
        r = client.chat.completions.create(model=ALIAS, messages=messages, max_tokens=8, temperature=0,
                                           logit_bias={str(tokenizer.convert_tokens_to_ids(end)): 100})
        assert (r.choices[0].finish_reason, r.choices[0].message.content, r.usage.completion_tokens) == ("stop", "", 1)


def test_the_f16_file_answers_with_the_tokens_vietlegal_serve_gives_the_adapter(f16_server, live_server, exported):
    """Same prompts, greedy, both through the openai client: the same text, token count, finish reason and prompt
    length (the template rendered and tokenised alike)."""
    questions = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q, _ in QA]
    questions += [[{"role": "user", "content": q}] for q, _ in QA[:3]]  # `vietlegal serve` adds its system prompt
    from vietlegal.params import DEFAULT_SYSTEM_PROMPT

    served_model = requests.get(live_server.base_url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"},
                                timeout=30).json()["data"][0]["id"]
    for messages in questions:
        ours = chat(live_server.base_url, KEY, served_model, messages, 48)
        theirs_messages = messages if messages[0]["role"] == "system" else (
            [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}] + messages)
        theirs = chat(f16_server.url, "none", ALIAS, theirs_messages, 48)
        assert (theirs.usage.prompt_tokens, theirs.choices[0].message.content, theirs.usage.completion_tokens,
                theirs.choices[0].finish_reason) == (
            ours.usage.prompt_tokens, ours.choices[0].message.content, ours.usage.completion_tokens,
            ours.choices[0].finish_reason)


LLAMA_CPP_27279 = "The model produced output that does not match the expected peg-native format"


def test_llama_cpp_enforces_the_structured_legal_answer_schema_but_fails_some_requests(f16_server):
    """Structured output in-house: llama-server turns response_format's JSON schema into a grammar, so every answer
    it returns, even the tiny model's, parses and validates (what `vietlegal score` reads as answer plus citations).
    But with this llama.cpp a share of such requests ends mid-object in an HTTP 500 (ggml-org/llama.cpp#27279, open:
    ~35-40% there; here 9 of these 12 on the untrained adapter, 4 of 12 on the default pipeline's trained one), and
    never another failure: docs/export.md tells clients to retry."""
    from importlib import resources

    import jsonschema

    schema = json.loads(resources.files("vietlegal.resources").joinpath("legal_answer.schema.json").read_text("utf-8"))
    client = openai.OpenAI(base_url=f16_server.url + "/v1", api_key="none", max_retries=0, timeout=120)
    answered = failed = 0
    for seed in range(12):
        try:
            r = client.chat.completions.create(
                model=ALIAS, messages=[{"role": "user", "content": QA[seed % len(QA)][0]}], temperature=0.8,
                seed=seed, max_tokens=1024,
                response_format={"type": "json_schema", "json_schema": {"name": "legal_answer", "schema": schema}})
        except openai.InternalServerError as exc:
            assert LLAMA_CPP_27279 in str(exc)
            failed += 1
            continue
        if r.choices[0].finish_reason == "length":  # the random model wrote a string past max_tokens
            continue
        assert r.choices[0].finish_reason == "stop"
        jsonschema.validate(json.loads(r.choices[0].message.content), schema)
        answered += 1
    assert answered >= 1, f"{failed} of 12 structured requests failed (llama.cpp#27279), none answered"
