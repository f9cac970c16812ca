"""`vietlegal serve --model`: a merged model directory and a base served whole, by the real server, asked through the
real openai client.

The merged directory is `tiny_adapter` merged by the export stage's own code (`tiny_merged`); the adapter itself is
served as the droplet serves it (`live_server`, `--adapter models/adapter` in a clean clone). Greedy, the merged
model must give the adapter's tokens and answer under the adapter's version id; the base alone must give the tiny
base's own greedy tokens (computed here with transformers) under the base's id.
"""
from __future__ import annotations

import openai
import pytest
import requests

from tests.conftest import QA, SERVE_TEST_PARAMS, SYSTEM
from vietlegal.model.adapter import dir_md5
from vietlegal.params import TINY_MODEL_ID
from vietlegal.serve.process import ServerProcess

KEY = "test-key"  # live_server's too
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
# Several shapes of conversation: with a system message, without one (the server adds its own), several turns.
CONVERSATIONS = ([[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q, _ in QA[:4]]
                 + [[{"role": "user", "content": q}] for q, _ in QA[4:6]]
                 + [[{"role": "user", "content": QA[0][0]}, {"role": "assistant", "content": QA[0][1]},
                     {"role": "user", "content": "Còn người nước ngoài thì sao?"}]])


def serve_model(tmp_path_factory, model: str):
    """`vietlegal serve --model MODEL` with live_server's params, on a free port, key KEY."""
    root = tmp_path_factory.mktemp("serve-model")
    (root / "params.yaml").write_text(SERVE_TEST_PARAMS, encoding="utf-8")
    return ServerProcess([], root / "server.log", api_key=KEY, params=root / "params.yaml", cwd=root, env=OFFLINE,
                         extra_args=("--model", model, "--no-rag"))


@pytest.fixture(scope="module")
def merged_server(tmp_path_factory, tiny_merged):
    with serve_model(tmp_path_factory, str(tiny_merged)) as server:
        yield server


@pytest.fixture(scope="module")
def base_server(tmp_path_factory, tiny_base):
    with serve_model(tmp_path_factory, TINY_MODEL_ID) as server:
        yield server


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key=KEY, max_retries=0, timeout=120)


def listed(server) -> list[dict]:
    r = requests.get(server.base_url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    return r.json()["data"]


def greedy(server, messages: list[dict], max_tokens: int = 32, **kw):
    return client(server).chat.completions.create(model="vietlegal", messages=messages, temperature=0,
                                                  max_tokens=max_tokens, logprobs=True, **kw)


def tokens(answer) -> list[tuple[str, list[int]]]:
    return [(t.token, t.bytes) for t in answer.choices[0].logprobs.content]


def test_the_merged_model_answers_with_the_adapters_tokens_under_its_version(merged_server, live_server):
    for messages in CONVERSATIONS:
        ours, adapters = greedy(merged_server, messages), greedy(live_server, messages)
        assert tokens(ours) == tokens(adapters) and tokens(ours)
        assert (ours.choices[0].message.content, ours.choices[0].finish_reason, ours.usage) == (
            adapters.choices[0].message.content, adapters.choices[0].finish_reason, adapters.usage)
        assert [t.logprob for t in ours.choices[0].logprobs.content] == pytest.approx(
            [t.logprob for t in adapters.choices[0].logprobs.content], abs=1e-4)
        assert (ours.model, ours.system_fingerprint) == (adapters.model, adapters.system_fingerprint)


def test_the_merged_model_streams_and_completes_as_the_adapter_does(merged_server, live_server):
    def streamed(server) -> str:
        chunks = client(server).chat.completions.create(model="vietlegal", messages=CONVERSATIONS[0], temperature=0,
                                                        max_tokens=24, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    def completed(server):
        return client(server).completions.create(model="vietlegal", prompt=QA[1][0], temperature=0, max_tokens=16)

    assert streamed(merged_server) == streamed(live_server) != ""
    ours, adapters = completed(merged_server), completed(live_server)
    assert (ours.choices[0].text, ours.usage, ours.model) == (adapters.choices[0].text, adapters.usage, adapters.model)


def test_the_merged_model_is_listed_as_the_adapter_version_folded_into_it(merged_server, tiny_adapter):
    version = "vietlegal-" + dir_md5(tiny_adapter)[:12]
    (entry,) = listed(merged_server)
    assert (entry["id"], entry["root"], entry["parent"], entry["version_source"]) == (
        "vietlegal", version, TINY_MODEL_ID, "merged")
    assert greedy(merged_server, CONVERSATIONS[0], 4).model == version
    pinned = client(merged_server).chat.completions.create(model=version, messages=CONVERSATIONS[0], max_tokens=2)
    assert pinned.model == version
    with pytest.raises(openai.NotFoundError) as caught:  # the base is not loaded, so not served
        client(merged_server).chat.completions.create(model=TINY_MODEL_ID, messages=CONVERSATIONS[0], max_tokens=2)
    assert caught.value.body["code"] == "model_not_found"


def test_a_merged_server_refuses_to_load_an_adapter_and_says_what_to_start_instead(merged_server, tiny_adapter):
    r = requests.post(merged_server.base_url + "/v1/load_lora_adapter", headers={"Authorization": f"Bearer {KEY}"},
                      json={"lora_name": "v2", "lora_path": str(tiny_adapter)}, timeout=60)
    assert r.status_code == 400 and "merged model directory" in r.json()["error"]["message"]
    assert "--adapter NAME=DIR over its base" in r.json()["error"]["message"]


def test_the_base_alone_answers_with_its_own_greedy_tokens_under_its_id(base_server, tiny_base, live_server):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vietlegal.model.chat import encode_prompt

    (entry,) = listed(base_server)
    assert (entry["id"], entry["root"], entry["parent"], entry["adapter_version"]) == (
        TINY_MODEL_ID, TINY_MODEL_ID, None, None)
    model = AutoModelForCausalLM.from_pretrained(tiny_base[0]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_base[0])
    for messages in CONVERSATIONS[:4]:  # each with its system message: the prompt is exactly the template's
        answer = greedy(base_server, messages, 12, extra_body={"ignore_eos": True})
        ids = encode_prompt(tokenizer, messages)
        with torch.inference_mode():
            for _ in range(12):
                ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
        expected = [tokenizer.decode([i], skip_special_tokens=False, clean_up_tokenization_spaces=False)
                    for i in ids[-12:]]
        assert [token for token, _ in tokens(answer)] == expected
        assert answer.usage.prompt_tokens == len(ids) - 12
        assert (answer.model, answer.system_fingerprint) == (TINY_MODEL_ID, f"fp_base_{tiny_base[1][:12]}")
        assert tokens(answer) != tokens(greedy(live_server, messages, 12, extra_body={"ignore_eos": True}))


def test_the_base_alone_loads_no_adapter_and_says_how_to_serve_adapters_over_it(base_server, tiny_adapter):
    r = requests.post(base_server.base_url + "/v1/load_lora_adapter", headers={"Authorization": f"Bearer {KEY}"},
                      json={"lora_name": "v2", "lora_path": str(tiny_adapter)}, timeout=60)
    assert r.status_code == 400 and "--model BASE --adapter NAME=DIR" in r.json()["error"]["message"]
