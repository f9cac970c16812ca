"""serve/protocol without a server: a request body to the jobs the worker runs (convert.py over the typed models of
requests.py), and each refusal naming its parameter."""
from __future__ import annotations

import json

import pytest

from vietlegal.model import chat
from vietlegal.serve.protocol.convert import Validator
from vietlegal.serve.protocol.errors import ApiError


QUESTION = [{"role": "user", "content": "Tuổi kết hôn?"}]


@pytest.fixture(scope="module")
def catalog(tiny_adapter, tiny_base):
    from vietlegal.params import TINY_MODEL_ID
    from vietlegal.serve.versions.catalog import open_catalog
    from vietlegal.serve.versions.version import BaseVersion

    return open_catalog(BaseVersion(TINY_MODEL_ID, tiny_base[1]), 2048, {"vietlegal": tiny_adapter}, {}, merged=True)


@pytest.fixture(scope="module")
def validator(tiny_tokenizer, catalog):
    return Validator(tiny_tokenizer, context=2048, default_max_tokens=32, catalog=catalog, system_prompt="Hệ thống.")


def parse(validator, body, **kw):
    return validator.parse(json.dumps(body).encode(), "chatcmpl-test", **kw)


def test_valid_request_becomes_a_job_with_the_training_prompt(validator, tiny_tokenizer):
    job = parse(validator, {"model": "vietlegal", "messages": QUESTION, "max_tokens": 5, "temperature": 0,
                            "top_p": 0.5, "stop": "Điều", "seed": 3})
    assert job.sampling.prompt_ids == chat.encode_prompt(tiny_tokenizer, chat.with_system(QUESTION, "Hệ thống."))
    assert (job.sampling.max_new_tokens, job.sampling.temperature, job.sampling.top_p, job.sampling.stop, job.sampling.seed) == (5, 0.0, 0.5, ["Điều"], 3)
    import dataclasses

    from vietlegal.model.sampling import SamplingRequest

    [payload] = job.payloads()
    assert set(payload) == {"id"} | {f.name for f in dataclasses.fields(SamplingRequest)}


def test_n_choices_are_n_jobs_with_consecutive_seeds_wrapping_in_int64(validator):
    job = parse(validator, {"messages": QUESTION, "n": 3, "seed": 2**63 - 2, "temperature": 0.5})
    assert [p["id"] for p in job.payloads()] == ["chatcmpl-test-0", "chatcmpl-test-1", "chatcmpl-test-2"]
    assert [p["seed"] for p in job.payloads()] == [2**63 - 2, 2**63 - 1, -(2**63)]


def test_what_openai_clients_send_is_accepted(validator):
    parts = [{"role": "developer", "content": [{"type": "text", "text": "Hệ"}, {"type": "text", "text": "thống."}]},
             {"role": "user", "content": "Tuổi kết hôn?", "name": "an"}]
    job = parse(validator, {"messages": parts, "top_p": 0, "seed": -(2**63), "max_tokens": 5.0, "logprobs": True,
                            "top_logprobs": 2, "metadata": {"k": "v"}, "store": False})
    assert job.sampling.prompt_ids == parse(validator, {"messages": [{"role": "system", "content": "Hệ\nthống."},
                                                                     QUESTION[0]]}).sampling.prompt_ids
    assert (job.sampling.top_p, job.sampling.seed, job.sampling.max_new_tokens, job.logprobs) == (0.0, -(2**63), 5, 2)


def test_vllm_sampling_extensions_reach_the_sampling_request(validator):
    job = parse(validator, {"messages": QUESTION, "top_k": 5, "min_p": 0.1, "repetition_penalty": 1.2,
                            "presence_penalty": 0.5, "frequency_penalty": -0.5, "stop_token_ids": [7],
                            "ignore_eos": True, "min_tokens": 2, "max_tokens": 4})
    s = job.sampling
    assert (s.top_k, s.min_p, s.repetition_penalty, s.presence_penalty, s.frequency_penalty, list(s.stop_token_ids),
            s.ignore_eos, s.min_tokens) == (5, 0.1, 1.2, 0.5, -0.5, [7], True, 2)


def test_a_schema_nested_deeper_than_vllms_limit_is_a_400_naming_it(validator):
    deep: dict = {"type": "string"}
    for _ in range(70):
        deep = {"type": "object", "properties": {"a": deep}}
    with pytest.raises(ApiError) as caught:
        parse(validator, {"messages": QUESTION, "response_format": {"type": "json_schema",
                                                                    "json_schema": {"name": "x", "schema": deep}}})
    assert caught.value.status == 400 and caught.value.param == "response_format.json_schema.schema"


def test_defaults_follow_openai_and_the_serve_config(validator):
    job = parse(validator, {"messages": QUESTION})
    assert (job.sampling.max_new_tokens, job.sampling.temperature, job.sampling.top_p, job.stream, job.sampling.stop) == (32, 1.0, 1.0, False, [])


def test_nfd_input_is_normalised_before_tokenizing(validator):
    import unicodedata

    nfd = [{"role": "user", "content": unicodedata.normalize("NFD", "Điều 8 Luật Hôn nhân")}]
    nfc = [{"role": "user", "content": "Điều 8 Luật Hôn nhân"}]
    assert parse(validator, {"messages": nfd}).sampling.prompt_ids == parse(validator, {"messages": nfc}).sampling.prompt_ids


def test_stream_options_need_a_stream_and_default_to_usage(validator):
    assert parse(validator, {"messages": QUESTION, "stream": True}).include_usage is False  # only when asked
    assert parse(validator, {"messages": QUESTION}, force_stream=True).stream is True
    off = parse(validator, {"messages": QUESTION, "stream": True, "stream_options": {"include_usage": False}})
    assert off.include_usage is False
    with pytest.raises(ApiError, match="stream_options"):
        parse(validator, {"messages": QUESTION, "stream_options": {"include_usage": True}})


@pytest.mark.parametrize("body, param", [
    ({"messages": QUESTION, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": QUESTION, "stop": [1]}, "stop[0]"),
    ({"messages": QUESTION, "seed": 1.5}, "seed"),
    ({"messages": QUESTION, "temperature": True}, "temperature"),
    ({"messages": QUESTION, "max_tokens": True}, "max_tokens"),
    ({"messages": QUESTION, "presence_penalty": 2.5}, "presence_penalty"),
    ({"messages": QUESTION, "logit_bias": {"5": 1.0}}, "logit_bias"),
    ({"messages": QUESTION, "top_logprobs": 2}, "top_logprobs"),
    ({"messages": QUESTION, "guided_json": {}}, "guided_json"),
    ({"messages": QUESTION, "n": 129}, "n"),
    ({"messages": QUESTION, "seed": 2**63}, "seed"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]}, "messages[0]"),
    ({"messages": QUESTION, "model": 7}, "model"),
    ({"messages": [QUESTION[0], {"role": "system", "content": "late"}]}, "messages[1]"),
])
def test_each_refusal_names_its_parameter(validator, body, param):
    with pytest.raises(ApiError) as caught:
        parse(validator, body)
    assert caught.value.status == 400 and caught.value.param == param
    assert set(caught.value.body()["error"]) == {"message", "type", "param", "code"}


def test_max_tokens_may_use_the_whole_remaining_context(validator):
    prompt_tokens = len(parse(validator, {"messages": QUESTION}).sampling.prompt_ids)
    assert parse(validator, {"messages": QUESTION, "max_tokens": 2048 - prompt_tokens}).sampling.max_new_tokens == 2048 - prompt_tokens
    with pytest.raises(ApiError, match="ask for at most"):
        parse(validator, {"messages": QUESTION, "max_tokens": 2049 - prompt_tokens})


def test_a_named_tool_is_called_with_its_parameters_as_the_grammar(validator):
    parameters = {"type": "object", "properties": {"hop_le": {"type": "boolean"}}, "required": ["hop_le"]}
    tools = [{"type": "function", "function": {"name": "other"}},
             {"type": "function", "function": {"name": "verdict", "description": "d", "parameters": parameters}}]
    job = parse(validator, {"messages": QUESTION, "tools": tools,
                            "tool_choice": {"type": "function", "function": {"name": "verdict"}}})
    assert job.tool == "verdict" and json.loads(job.sampling.json_schema) == parameters
    assert parse(validator, {"messages": QUESTION, "tools": tools, "tool_choice": "none"}).tool is None


@pytest.mark.parametrize("body, param, code", [
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tool_choice", "unsupported_value"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"}, "tool_choice",
     "unsupported_value"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function",
                                                                                   "function": "f"}},
     "tool_choice", "unsupported_value"),
    ({"tools": [{"type": "function", "function": {"name": "f"}, "extra": 1}]}, "tools[0].extra", "unknown_parameter"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}],
      "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice.function.name", "invalid_value"),
    ({"tools": [{"type": "custom", "custom": {"name": "f"}}],
      "tool_choice": {"type": "function", "function": {"name": "f"}}}, "tools[0].type", "unsupported_value"),
    ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice", "invalid_value"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "response_format": {"type": "json_object"},
      "tool_choice": {"type": "function", "function": {"name": "f"}}}, "response_format", "unsupported_value"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a", "lang": "vi"}]}]},
     "messages[0].content[0].lang", "unknown_parameter"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
     "messages[0].content[0].type", "unsupported_value"),
    ({"a b": 1}, '["a b"]', "unknown_parameter"),
    ({"str": 1}, "str", "unknown_parameter"),
])
def test_tool_and_content_refusals_name_their_parameter(validator, body, param, code):
    with pytest.raises(ApiError) as caught:
        parse(validator, {"messages": QUESTION, **body})
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, param, code)


def test_a_completion_without_a_prompt_names_it(validator):
    with pytest.raises(ApiError) as caught:
        validator.parse_completion(json.dumps({"prompt": None}).encode(), "cmpl-test")
    assert (caught.value.param, caught.value.code) == ("prompt", "missing_required_parameter")
