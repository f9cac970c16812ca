"""`vietlegal serve --rag` for real: the tiny adapter on 127.0.0.1, the real openai client, a BM25 index
over the fixture corpus. The answer carries the provision ids its prompt held; the log line too."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml
from tests.helpers.rag_corpus import PROVISIONS, write_corpus

from tests.conftest import SERVE_TEST_PARAMS
from vietlegal.model import chat
from vietlegal.params import DEFAULT_SYSTEM_PROMPT, RagConfig
from vietlegal.rag import retriever as rag_index
from vietlegal.rag.context import ground
from vietlegal.rag.corpus import load_corpus

pytestmark = pytest.mark.slow
MATERNITY = "Lao động nữ được nghỉ thai sản bao lâu?"


def rag_project(tmp, corpus_dir) -> tuple:
    cfg = RagConfig(enabled=False, dense=False, in_force_on="2025-07-01", corpus_dir=str(corpus_dir),
                    index_dir=str(tmp / "index"))
    rag_index.build(load_corpus(corpus_dir), cfg, tmp / "index")
    params = yaml.safe_load(SERVE_TEST_PARAMS)
    params["rag"] = {k: getattr(cfg, k) for k in ("enabled", "dense", "in_force_on", "corpus_dir", "index_dir")}
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    return cfg, tmp / "params.yaml"


@pytest.fixture(scope="module")
def rag_server(tmp_path_factory, tiny_adapter):
    from vietlegal.serve.process import ServerProcess

    tmp = tmp_path_factory.mktemp("serve-rag")
    cfg, params = rag_project(tmp, write_corpus(tmp / "corpus"))
    server = ServerProcess(tiny_adapter, tmp / "server.log", params=params,
                           env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    server.cmd.append("--rag")  # rag.enabled is false in the params: the flag turns it on
    server.start()
    try:
        yield server, cfg
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(rag_server):
    import openai

    return openai.OpenAI(base_url=rag_server[0].base_url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_the_answer_carries_the_provisions_its_prompt_held(rag_server, client, tiny_tokenizer):
    server, cfg = rag_server
    reply = client.chat.completions.create(model="vietlegal", messages=[{"role": "user", "content": MATERNITY}],
                                           max_tokens=4, temperature=0)
    retriever = rag_index.Retriever.load(cfg.index_dir, cfg.corpus_dir, cfg)
    grounded = ground(retriever, [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": MATERNITY}])
    assert reply.model_extra["retrieved_provisions"] == grounded.provision_ids
    assert grounded.provision_ids[0] == "blld-2019-d139" and "blld-2012-d157" not in grounded.provision_ids
    # The server's prompt is exactly the grounded conversation through the shared chat template.
    assert reply.usage.prompt_tokens == len(chat.encode_prompt(tiny_tokenizer, grounded.messages))
    assert f"retrieved={','.join(grounded.provision_ids)}" in server.log_text()


def test_a_stream_names_the_provisions_in_its_first_chunk(client):
    stream = client.chat.completions.create(model="vietlegal", messages=[{"role": "user", "content": MATERNITY}],
                                            max_tokens=4, temperature=0, stream=True)
    chunks = list(stream)
    assert chunks[0].model_extra["retrieved_provisions"][0] == "blld-2019-d139"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) is not None


def test_a_question_with_no_hit_is_answered_without_context_and_flagged(rag_server, client):
    server, _ = rag_server
    reply = client.chat.completions.create(model="vietlegal", messages=[{"role": "user", "content": "hello world"}],
                                           max_tokens=4, temperature=0)
    assert reply.model_extra["retrieved_provisions"] == []
    assert f"id={reply.id} status=200" in server.log_text() and "retrieved=none(no_hit)" in server.log_text()


def test_a_stale_index_stops_the_server_at_start_with_one_line(tmp_path, tiny_adapter):
    corpus_dir = write_corpus(tmp_path / "corpus")
    _, params = rag_project(tmp_path, corpus_dir)
    write_corpus(corpus_dir, PROVISIONS[:-1])
    done = subprocess.run([sys.executable, "-m", "vietlegal.cli", "serve", "--adapter", str(tiny_adapter), "--params",
                           str(params), "--rag"], capture_output=True, text=True, timeout=120,
                          env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert "vietlegal serve: error:" in done.stderr and "built from another corpus" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_the_flag_and_with_rag_disabled_nothing_is_retrieved(live_server):
    body = json.dumps({"messages": [{"role": "user", "content": MATERNITY}], "max_tokens": 2}).encode()
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=60)
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json", "Authorization": "Bearer test-key"})
    reply = json.loads(conn.getresponse().read())
    assert "retrieved_provisions" not in reply


def test_an_adapter_trained_with_context_served_without_retrieval_is_warned_about(tmp_path, tiny_adapter):
    from vietlegal.model.adapter import SETTINGS_FILE
    from vietlegal.serve.process import ServerProcess

    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, adapter)
    settings = json.loads((adapter / SETTINGS_FILE).read_text(encoding="utf-8"))
    settings["context"] = {"with_context": True, "top_k": 3, "method": "bm25"}
    (adapter / SETTINGS_FILE).write_text(json.dumps(settings), encoding="utf-8")
    (tmp_path / "params.yaml").write_text(SERVE_TEST_PARAMS, encoding="utf-8")  # rag.enabled defaults to false
    with ServerProcess(adapter, tmp_path / "server.log", params=tmp_path / "params.yaml",
                       env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}) as server:
        log = server.log_text()
    assert "trained with top-3 retrieved provisions" in log and "without --rag it answers closed-book" in log
    assert "rag=off" in log
