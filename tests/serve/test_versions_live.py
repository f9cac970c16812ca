"""Several adapter versions behind one real `vietlegal serve --watch`: both answer through the openai client, A/B
routing, the admin endpoints, and a new version copied over a served one while a stream is running."""
from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from vietlegal.model import untrained
from vietlegal.params import TINY_MODEL_ID
from vietlegal.serve.process import ServerProcess
from vietlegal.serve.versions.version import adapter_version

KEY = "test-key"
QUESTION = [{"role": "user", "content": "Tuổi kết hôn là bao nhiêu?"}]
PARAMS = """\
serve:
  max_batch_size: 8
  max_new_tokens: 16
  cpu_threads: 1
  watch_seconds: 0.2
  routes: {ab: {v1: 0.5, v2: 0.5}}
"""


@pytest.fixture(scope="module")
def droplet(tmp_path_factory, tiny_base):
    root = tmp_path_factory.mktemp("versions")
    for name, seed in (("v1", 1), ("v2", 2), ("v3", 3), ("v4", 4)):
        untrained.adapter(root / "models" / name, seed=seed)
    (root / "params.yaml").write_text(PARAMS, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def server(droplet):
    with ServerProcess(["v1=models/v1", "v2=models/v2"], droplet / "server.log", api_key=KEY, cwd=droplet,
                       params=droplet / "params.yaml", extra_args=("--watch",),
                       env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}) as process:
        yield process


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key=KEY, max_retries=0, timeout=60)


def models(server) -> dict[str, dict]:
    r = requests.get(server.base_url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    return {m["id"]: m for m in r.json()["data"]}


def ask(client, model: str, **kw):
    return client.chat.completions.create(model=model, messages=QUESTION, max_tokens=kw.pop("max_tokens", 8),
                                          temperature=0, **kw)


def admin(server, path: str, body: dict, key: str | None = KEY) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(server.base_url + path, json=body, headers=headers, timeout=60)


def wait_for(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_versions_and_the_base_answer_from_one_process(client, server, droplet):
    listed = models(server)
    assert set(listed) == {"ab", "v1", "v2", TINY_MODEL_ID}
    for name in ("v1", "v2"):
        assert listed[name]["root"] == adapter_version(droplet / "models" / name).model_id
        assert listed[name]["parent"] == TINY_MODEL_ID
    answers = {name: ask(client, name) for name in ("v1", "v2", TINY_MODEL_ID)}
    for name in ("v1", "v2"):
        assert answers[name].model == listed[name]["root"]
        assert answers[name].system_fingerprint == "fp_" + listed[name]["adapter_version"]
    assert answers[TINY_MODEL_ID].model == TINY_MODEL_ID
    assert len({a.choices[0].message.content for a in answers.values()}) == 3  # three different models
    assert len(re.findall(r"inference worker pid=\d+ ready", server.log_text())) == 1  # one copy of the base


def test_an_unknown_model_is_404_model_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        ask(client, "v9")
    assert caught.value.body["code"] == "model_not_found"


def test_half_and_half_routing_over_200_users_is_sticky_and_counted_per_version(client, server):
    listed = models(server)
    versions = {listed["v1"]["root"], listed["v2"]["root"]}
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: ask(client, "ab", user=f"lawyer-{i}", max_tokens=1).model, range(200)))
    shares = Counter(got)
    assert set(shares) == versions
    assert all(70 <= n <= 130 for n in shares.values()), shares  # 35%..65% of 200
    again = [ask(client, "ab", user=f"lawyer-{i}", max_tokens=1).model for i in range(10)]
    assert again == got[:10]
    text = requests.get(server.base_url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).text
    for version in versions:
        line = next(line for line in text.splitlines()
                    if line.startswith(f'vietlegal_requests_total{{model="{version}",status="200",stream="false"}}'))
        assert float(line.split()[-1]) >= shares[version]
    assert sum("route=ab" in line for line in server.log_text().splitlines()) >= 210


def test_admin_endpoints_load_and_unload_with_vllms_bodies(client, server, droplet, tmp_path):
    v3 = str(droplet / "models" / "v3")
    assert admin(server, "/v1/load_lora_adapter", {"lora_name": "v3", "lora_path": v3}, key=None).status_code == 401
    missing = admin(server, "/v1/load_lora_adapter", {"lora_name": "v3"})
    assert (missing.status_code, missing.json()["error"]["param"]) == (400, "lora_path")
    other = tmp_path / "other-base"
    shutil.copytree(v3, other)
    manifest = json.loads((other / "vietlegal.json").read_text(encoding="utf-8"))
    manifest["base"]["revision"] = "another-revision"
    (other / "vietlegal.json").write_text(json.dumps(manifest), encoding="utf-8")
    refused = admin(server, "/v1/load_lora_adapter", {"lora_name": "v3", "lora_path": str(other)})
    assert refused.status_code == 400 and "another-revision" in refused.text and TINY_MODEL_ID in refused.text

    assert admin(server, "/v1/load_lora_adapter", {"lora_name": "v3", "lora_path": v3}).status_code == 200
    assert ask(client, "v3").model == adapter_version(v3).model_id
    assert admin(server, "/v1/unload_lora_adapter", {"lora_name": "v3"}).status_code == 200
    with pytest.raises(openai.NotFoundError):
        ask(client, "v3")
    assert admin(server, "/v1/unload_lora_adapter", {"lora_name": "v3"}).status_code == 404
    assert admin(server, "/v1/unload_lora_adapter", {"lora_name": "v1"}).status_code == 409  # in route "ab"


def test_bench_and_score_compare_two_versions_on_the_same_questions(server, tmp_path):
    from vietlegal.commands import bench, score

    listed = models(server)
    target = bench.target_from(server.base_url, KEY, ["v1", "v2"], 4, 60, allow_remote=False)
    level = bench.run_level(target, 4, 8)
    assert level.errors == 0
    assert {v: n["requests"] for v, n in level.by_version.items()} == {listed["v1"]["root"]: 4, listed["v2"]["root"]: 4}

    split = tmp_path / "test.jsonl"
    split.write_text("".join(json.dumps({"id": f"t{i}", "source": "x:1", "messages": [
        {"role": "user", "content": q}, {"role": "assistant", "content": "Điều 8 Luật Hôn nhân và gia đình 2014."}]},
        ensure_ascii=False) + "\n" for i, q in enumerate(["Tuổi kết hôn?", "Thời hiệu khởi kiện?"])), encoding="utf-8")
    for name in ("v1", "v2"):
        out = tmp_path / f"{name}.jsonl"
        assert score.main(["--ask", server.base_url, "--api-key", KEY, "--model", name, "--questions", str(split),
                           "--max-tokens", "4", "--predictions", str(out), "--out", str(tmp_path / f"{name}.json")]) == 0
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [r["id"] for r in rows] == ["t0", "t1"] and {r["model"] for r in rows} == {listed[name]["root"]}
        assert "rougeL_f1" in json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8"))["prediction"]


def test_a_version_copied_over_a_served_one_is_picked_up_while_a_stream_finishes_on_the_old(client, server, droplet):
    target, new = droplet / "models" / "v2", droplet / "models" / "v4"
    old_id, new_id = models(server)["v2"]["root"], adapter_version(new).model_id
    stream = ask(client, "v2", stream=True, max_tokens=16, stream_options={"include_usage": True})
    first = next(iter(stream))
    assert first.model == old_id

    # The manifest lands first (as a copy may write it): its md5s do not match the old weights, so nothing loads.
    shutil.copy2(new / "vietlegal.json", target / "vietlegal.json")
    wait_for(lambda: "models/v2 is not complete yet" in server.log_text(), "the watcher to see a half-written v2")
    assert models(server)["v2"]["root"] == old_id and ask(client, "v2").model == old_id

    for f in new.iterdir():
        shutil.copy2(f, target / f.name)
    wait_for(lambda: models(server)["v2"]["root"] == new_id, "the watcher to move v2 to the new version")
    rest = list(stream)
    assert rest and all(chunk.model == old_id for chunk in rest)
    assert rest[-1].usage is not None and rest[-1].usage.completion_tokens >= 1
    assert ask(client, "v2").model == new_id
