"""The clients people point at an OpenAI-compatible server, each the real package against the real server, with no
flag or workaround beyond the base URL and key: the openai client's helpers, LangChain's ChatOpenAI (which sends
`max_completion_tokens` and, with `stream_usage`, asks for the usage chunk), LiteLLM (which reads the usage-only
chunk, `choices: []`), instructor (whose default mode calls a named tool). A structured answer is a small legal
verdict of a boolean and an enumeration, so even the untrained tiny model completes it.
"""
from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel

pytestmark = pytest.mark.slow

KEY = "test-key"
ASK = [{"role": "user", "content": "Hợp đồng vay này có hợp lệ không, theo bộ luật nào?"}]


class Verdict(BaseModel):
    hop_le: bool
    bo_luat: Literal["Bộ luật Dân sự", "Bộ luật Lao động"]


@pytest.fixture(scope="module")
def base_url(live_server) -> str:
    return live_server.base_url + "/v1"


def test_openai_client_parse_stream_helper_and_completions(base_url):
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=120)
    parsed = client.chat.completions.parse(model="vietlegal", messages=ASK, response_format=Verdict, max_tokens=60)
    assert isinstance(parsed.choices[0].message.parsed, Verdict) and parsed.choices[0].finish_reason == "stop"
    with client.chat.completions.stream(model="vietlegal", messages=ASK, response_format=Verdict, max_tokens=60) as s:
        kinds = {event.type for event in s}
        final = s.get_final_completion()
    assert {"content.delta", "content.done"} <= kinds and isinstance(final.choices[0].message.parsed, Verdict)
    scored = client.completions.create(model="vietlegal", prompt="Điều 139 Bộ luật Lao động", max_tokens=0, echo=True,
                                       logprobs=1)
    logprobs = scored.choices[0].logprobs
    assert scored.choices[0].text == "Điều 139 Bộ luật Lao động" and logprobs.token_logprobs[0] is None
    assert len(logprobs.tokens) == scored.usage.prompt_tokens and all(v < 0 for v in logprobs.token_logprobs[1:])


def test_langchain_chat_openai_invoke_stream_and_structured_output(base_url):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=base_url, api_key=KEY, model="vietlegal", max_tokens=6, temperature=0, max_retries=0)
    answer = llm.invoke("Tuổi kết hôn là bao nhiêu?")
    assert answer.content and answer.usage_metadata["output_tokens"] == 6
    assert answer.response_metadata["finish_reason"] == "length"
    chunks = list(llm.bind(stream_usage=True).stream("Tuổi kết hôn là bao nhiêu?"))
    streamed = sum(chunks[1:], chunks[0])
    assert streamed.content == answer.content and streamed.usage_metadata["output_tokens"] == 6
    structured = ChatOpenAI(base_url=base_url, api_key=KEY, model="vietlegal", max_tokens=60, max_retries=0)
    assert isinstance(structured.with_structured_output(Verdict).invoke(ASK), Verdict)  # json_schema
    assert isinstance(structured.with_structured_output(Verdict, method="function_calling").invoke(ASK), Verdict)


def test_litellm_completion_and_stream_with_usage(base_url, monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # its price list ships with it: no download
    import litellm

    for model in ("openai/vietlegal", "hosted_vllm/vietlegal"):
        answer = litellm.completion(model=model, api_base=base_url, api_key=KEY, messages=ASK, max_tokens=5,
                                    temperature=0)
        assert answer.choices[0].message.content and answer.usage.completion_tokens == 5
        chunks = list(litellm.completion(model=model, api_base=base_url, api_key=KEY, messages=ASK, max_tokens=5,
                                         temperature=0, stream=True, stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == answer.choices[0].message.content
        assert chunks[-1].usage.completion_tokens == 5 and chunks[-1].usage.prompt_tokens == answer.usage.prompt_tokens


def test_instructor_default_mode_returns_the_model(base_url):
    import instructor
    import openai

    client = instructor.from_openai(openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=120))
    verdict, raw = client.chat.completions.create_with_completion(model="vietlegal", response_model=Verdict,
                                                                  messages=ASK, max_tokens=60, max_retries=0)
    assert isinstance(verdict, Verdict)
    call = raw.choices[0].message.tool_calls[0]  # the default mode calls the model as a named tool
    assert call.function.name == "Verdict"
    assert Verdict.model_validate_json(call.function.arguments).model_dump() == verdict.model_dump()
