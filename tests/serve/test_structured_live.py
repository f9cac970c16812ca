"""response_format is enforced, never ignored: on the real server with the tiny (random) model, every answer
under a JSON schema parses and validates against it (the grammar leaves the model no other choice), in both
stream modes; a schema the compiler cannot enforce is a 400 naming response_format; and the judge stage, run
against this server, gets parseable verdicts."""
from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from vietlegal.metrics import llm_judge, structured_answer
from vietlegal.params import JudgeConfig
from vietlegal.stages import judge

pytestmark = pytest.mark.slow
QUESTION = [{"role": "user", "content": "Người lao động nữ được nghỉ thai sản bao lâu?"}]
# Bounded schemas: every value has finitely many forms, so a constrained answer always ends (finish "stop").
BOUNDED = {
    "verdict": llm_judge.VERDICT_SCHEMA,
    "flags": {"type": "object", "properties": {"in_force": {"type": "boolean"},
                                               "kind": {"enum": ["luật", "nghị định", "thông tư"]},
                                               "article": {"type": "integer", "minimum": 1, "maximum": 999}},
              "required": ["in_force", "kind", "article"], "additionalProperties": False},
    "short_list": {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 1, "maxItems": 3},
}


@pytest.fixture(scope="module")
def client(live_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server.base_url + "/v1", api_key="test-key", max_retries=0, timeout=120)


def json_schema(name: str, schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


@pytest.mark.parametrize("name", sorted(BOUNDED))
def test_every_answer_under_a_bounded_schema_ends_and_validates(client, name):
    for seed in range(4):
        reply = client.chat.completions.create(model="vietlegal", messages=QUESTION, temperature=0.9, seed=seed,
                                               max_tokens=600, response_format=json_schema(name, BOUNDED[name]))
        choice = reply.choices[0]
        assert choice.finish_reason == "stop", f"{name} seed {seed}: {choice.message.content!r}"
        jsonschema.validate(json.loads(choice.message.content), BOUNDED[name])


def test_the_legal_answer_schema_validates_whenever_the_answer_ends(client):
    schema = structured_answer.schema()
    ended = 0
    for seed in range(6):
        reply = client.chat.completions.create(model="vietlegal", messages=QUESTION, temperature=0.9, seed=seed,
                                               max_tokens=300, response_format=json_schema("legal_answer", schema))
        choice = reply.choices[0]
        if choice.finish_reason == "length":
            continue  # a random model may not close its string in time; what it wrote is still a JSON prefix
        ended += 1
        answer = json.loads(choice.message.content)
        jsonschema.validate(answer, schema)
        assert structured_answer.as_text(choice.message.content) is not None
    assert ended >= 1


def test_json_object_gives_an_object_and_streams_the_same_text(client):
    kwargs = dict(model="vietlegal", messages=QUESTION, temperature=0.7, seed=5, max_tokens=400,
                  response_format={"type": "json_object"})
    whole = client.chat.completions.create(**kwargs).choices[0]
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **kwargs)
                       if c.choices)
    assert streamed == whole.message.content
    if whole.finish_reason == "stop":
        assert isinstance(json.loads(whole.message.content), dict)
    else:
        assert whole.message.content.startswith("{")


def test_a_schema_that_cannot_be_enforced_is_a_400_naming_response_format(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="vietlegal", messages=QUESTION,
                                       response_format=json_schema("bad", {"type": "no-such-type"}))
    body = err.value.body
    assert body["param"] == "response_format" and "cannot be enforced" in body["message"]
    for bad in ({"type": "yaml"}, {"type": "json_schema"}, {"type": "json_schema", "json_schema": {"schema": 3}}, "json"):
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="vietlegal", messages=QUESTION, response_format=bad)
        assert err.value.body["param"].startswith("response_format")  # the exact field, e.g. response_format.type


def test_the_judge_run_against_this_server_gets_parseable_verdicts(client, tmp_path):
    answers = tmp_path / "answers.jsonl"
    rows = [{"id": str(i), "question": QUESTION[0]["content"], "reference": "Theo khoản 1 Điều 139 Bộ luật Lao động 2019, 6 tháng.",
             "base": f"Câu trả lời {i}.", "tuned": f"Nghỉ 6 tháng (Điều 139 Bộ luật Lao động 2019), lần {i}."} for i in range(3)]
    answers.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    report = judge.run(JudgeConfig(enabled=True, model="vietlegal", concurrency=2), answers, tmp_path / "judge.json",
                       tmp_path / "verdicts.jsonl", tmp_path / "cache.jsonl", client=client)
    for system in ("base", "tuned"):
        assert (report[system]["scored"], report[system]["unparseable"], report[system]["failed"]) == (3, 0, 0), report
        assert 0 <= report[system]["overall"] <= 10
