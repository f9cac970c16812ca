"""The project's calls into vLLM, checked against vLLM 0.33.0 as released (tests/helpers/gpu_packages.py: the real
wheel's Python code on this CPU machine, at requirements-gpu.txt's versions), and the strict stand-in
(tests/helpers/strict_vllm.py) proven to agree with it.

- Every request the server's real parser accepts becomes, through `vllm_engine.sampling_params`, a real
  SamplingParams that vLLM's own admission check (`InputProcessor.process_inputs`, on an engine config built from
  `engine_kwargs` for the tiny model) accepts, with and without the adapter's `LoRARequest`.
- `engine_kwargs` (offline evaluation and the server worker's shapes) makes a real engine config.
- Every call site in model/vllm_engine.py and serve/workers/vllm.py binds to the real signature.
- The stand-in's verdicts equal vLLM's on generated arguments (valid and not), its signatures equal vLLM's.

What stays unverified without a GPU: the engine running (kernels, memory, LoRA weights loading, decoding), and
defaults vLLM takes from the CUDA platform rather than the CPU one (max_num_batched_tokens, attention backend).
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.helpers import gpu_packages, strict_vllm
from vietlegal.model import vllm_engine

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CONTEXT = 2048  # the tiny model's max_position_embeddings
SETTINGS = settings(max_examples=150, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# Call sites on vLLM objects -> the real callable they reach (receiver names as the project's code spells them).
CALL_SITES = {"llm.generate": "LLM.generate", "self.engine.generate": "AsyncLLM.generate",
              "self.engine.abort": "AsyncLLM.abort", "AsyncLLM.from_engine_args": "AsyncLLM.from_engine_args",
              "LoRARequest": "LoRARequest", "self._lora_request": "LoRARequest"}
CALLERS = ("src/vietlegal/model/vllm_engine.py", "src/vietlegal/serve/workers/vllm.py")


@pytest.fixture(scope="module")
def oracle():
    with gpu_packages.Oracle("tests.helpers.vllm_oracle", gpu_packages.environment()) as real:
        yield real


@pytest.fixture(scope="module")
def surface(oracle) -> dict:
    found = oracle.ask("surface")
    assert found["ok"], found
    return found


@pytest.fixture(scope="module")
def engine(oracle, tiny_base, tiny_adapter) -> dict:
    """The real engine config of the offline evaluation's shape, kept by the oracle for admission checks."""
    kwargs = vllm_engine.engine_kwargs(str(tiny_base[0]), None, tiny_adapter, CONTEXT, 256, "float32",
                                       gpu_memory_utilization=0.85)
    made = oracle.ask("engine", kwargs=kwargs)
    assert made["ok"], made
    return made


def stand_in_classes() -> dict:
    made = strict_vllm.modules(strict_vllm.Recorder())
    return {"AsyncLLM": made["vllm.v1.engine.async_llm"].AsyncLLM, "LLM": made["vllm"].LLM,
            "LoRARequest": strict_vllm.LoRARequest}


def parameters(fn) -> list[list]:
    return [[p.name, p.kind.name, p.default is not inspect.Parameter.empty]
            for p in inspect.signature(fn).parameters.values() if p.name != "self"]


# --- the surface the project touches --------------------------------------------------------------------------

def test_the_stand_in_has_vllms_signatures_and_field_names(surface):
    classes = stand_in_classes()
    for name in ("AsyncLLM.generate", "AsyncLLM.abort", "AsyncLLM.from_engine_args", "LLM.generate"):
        owner, method = name.split(".")
        assert parameters(getattr(classes[owner], method)) == surface["signatures"][name], name
    assert parameters(strict_vllm.LoRARequest) == surface["signatures"]["LoRARequest"]
    assert surface["signatures"]["LLM.__init__"][0] == ["model", "POSITIONAL_OR_KEYWORD", False]
    assert surface["signatures"]["LLM.__init__"][-1][1] == "VAR_KEYWORD", "LLM passes the rest on to EngineArgs"
    assert list(strict_vllm.SAMPLING_FIELDS) == surface["sampling_fields"]
    assert [f.name for f in dataclasses.fields(strict_vllm.StructuredOutputsParams)] == surface["structured_fields"]
    assert set(strict_vllm.ENGINE_FIELDS) <= set(surface["engine_fields"]) <= set(surface["async_engine_fields"])
    assert {"text", "token_ids", "finish_reason"} <= set(surface["completion_fields"])
    assert {"outputs", "finished"} <= set(surface["request_output_attributes"])
    assert [f.name for f in dataclasses.fields(strict_vllm.Logprob)] == surface["logprob_fields"]
    assert tuple(surface["finish_reasons"]) == stand_in_finish_reasons()


def stand_in_finish_reasons() -> tuple:
    return strict_vllm.modules(strict_vllm.Recorder())["vllm.v1.engine"].FINISH_REASON_STRINGS


def test_the_offline_path_maps_or_refuses_every_finish_reason_vllm_has(surface):
    for reason in surface["finish_reasons"]:
        if reason in vllm_engine.FINISH_REASONS:
            assert vllm_engine.finish_reason(reason, "q") == reason
        else:
            with pytest.raises(Exception, match="not a stop or the length budget"):
                vllm_engine.finish_reason(reason, "q")


def call_sites() -> list[tuple[str, str, ast.Call]]:
    found = []
    for caller in CALLERS:
        for node in ast.walk(ast.parse((ROOT / caller).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in CALL_SITES:
                found.append((f"{caller}:{node.lineno}", CALL_SITES[ast.unparse(node.func)], node))
    return found


def test_every_call_the_project_makes_on_vllm_binds_to_the_real_signature(surface):
    sites = call_sites()
    assert {target for _, target, _ in sites} == set(CALL_SITES.values()), \
        "a call site moved or was renamed: update CALL_SITES so every vLLM call stays checked"
    for where, target, call in sites:
        real = surface["signatures"][target]
        signature = inspect.Signature([inspect.Parameter(name, getattr(inspect.Parameter, kind),
                                                         default=None if has_default else inspect.Parameter.empty)
                                       for name, kind, has_default in real])
        if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
            continue  # **kwargs: checked by value (engine_kwargs, sampling_params) below
        try:
            signature.bind(*call.args, **{k.arg: k.value for k in call.keywords})
        except TypeError as exc:
            pytest.fail(f"{where}: {ast.unparse(call)} does not fit vLLM's {target}{signature}: {exc}")


# --- engine arguments -----------------------------------------------------------------------------------------

def test_engine_kwargs_make_a_real_engine_config_with_the_bounds_asked(engine, tiny_adapter):
    assert (engine["max_num_seqs"], engine["gpu_memory_utilization"], engine["max_model_len"]) == (256, 0.85, CONTEXT)
    assert engine["max_lora_rank"] == 8 and engine["max_loras"] == 1 and engine["tokenizer"] == str(tiny_adapter)


def test_the_server_workers_engine_shape_makes_a_real_engine_config(oracle, tiny_base, tiny_adapter):
    # As serve/workers/vllm.py calls it: several adapters, the largest rank a run-time version may have.
    kwargs = vllm_engine.engine_kwargs(str(tiny_base[0]), None, tiny_adapter, CONTEXT, 16, "bfloat16", 1,
                                       max_loras=4, ranks=(64,))
    made = oracle.ask("construct", cls="EngineArgs", kwargs=kwargs)
    assert made["ok"], made


def test_a_model_served_whole_makes_a_real_engine_config_without_lora(oracle, tiny_merged):
    # As serve/workers/vllm.py calls it for `vietlegal serve --model`: the merged directory is the model, no LoRA.
    kwargs = vllm_engine.model_kwargs(str(tiny_merged), None, str(tiny_merged), CONTEXT, 16, "bfloat16")
    assert not {"enable_lora", "max_loras", "max_lora_rank"} & set(kwargs)
    made = oracle.ask("construct", cls="EngineArgs", kwargs=kwargs)
    assert made["ok"], made


# --- every request the server accepts -------------------------------------------------------------------------

SCHEMA_LEAF = st.sampled_from([{"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "number"},
                               {"enum": ["Điều 8", "Điều 139"]}, {"type": "string", "maxLength": 40}])


def nested_schema(levels: int) -> dict:
    """A schema whose JSON document nests `levels` objects and arrays (what vLLM limits to 64)."""
    schema: dict = {"type": "string"}
    for _ in range(levels - 1):
        schema = {"type": "array", "items": schema}
    return schema


SCHEMA = st.one_of(
    st.recursive(SCHEMA_LEAF, lambda inner: st.one_of(
        st.builds(lambda items: {"type": "array", "items": items}, inner),
        st.builds(lambda props: {"type": "object", "properties": props, "required": sorted(props)},
                  st.dictionaries(st.sampled_from(["answer", "citations", "điều", "x"]), inner, min_size=1, max_size=3))),
        max_leaves=6),
    st.integers(1, 32).map(nested_schema),
)
JSON_SCHEMA = SCHEMA.map(lambda s: {"type": "json_schema", "json_schema": {"name": "a", "schema": s}})
RESPONSE_FORMAT = st.one_of(st.none(), st.just({"type": "text"}), st.just({"type": "json_object"}), JSON_SCHEMA, JSON_SCHEMA)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
BODY = st.fixed_dictionaries(
    {"messages": st.lists(TEXT.map(lambda t: {"role": "user", "content": t or "Tuổi kết hôn?"}), min_size=1, max_size=2)},
    optional={"max_tokens": st.one_of(st.integers(1, 64), st.integers(1, CONTEXT)),
              "temperature": st.one_of(st.floats(0, 2), st.sampled_from([0, 0.001, 1e-7, 1e-40, 2])),
              "top_p": st.one_of(st.floats(0, 1), st.sampled_from([0, 1e-9])),
              "stop": st.one_of(TEXT, st.lists(TEXT, max_size=4)),
              "seed": st.one_of(st.integers(-2**63, 2**63 - 1), st.sampled_from([0, -1, 2**63 - 1, -2**63])),
              "n": st.integers(1, 3),
              "presence_penalty": st.floats(-2, 2), "frequency_penalty": st.floats(-2, 2),
              "repetition_penalty": st.floats(0.01, 4), "top_k": st.sampled_from([-1, 0, 1, 5, 50]),
              "min_p": st.floats(0, 1), "min_tokens": st.integers(0, 8), "ignore_eos": st.booleans(),
              "stop_token_ids": st.lists(st.integers(0, 255), max_size=3),
              "logprobs": st.booleans(), "top_logprobs": st.integers(0, 5),
              "response_format": RESPONSE_FORMAT})


@pytest.fixture(scope="module")
def validator(tiny_tokenizer, tiny_adapter, tiny_base):
    from vietlegal.params import TINY_MODEL_ID
    from vietlegal.serve.protocol.convert import Validator
    from vietlegal.serve.versions.catalog import open_catalog
    from vietlegal.serve.versions.version import BaseVersion

    catalog = open_catalog(BaseVersion(TINY_MODEL_ID, tiny_base[1]), CONTEXT, {"vietlegal": tiny_adapter}, {}, merged=True)
    return Validator(tiny_tokenizer, context=CONTEXT, default_max_tokens=32, catalog=catalog)


def stand_in_admits(config, payload: dict, end_ids: set[int], lora: list | None) -> None:
    """The project's conversion with the stand-in's classes, then its admission check (raises when it refuses)."""
    from vietlegal.model.sampling import SamplingRequest

    with pytest.MonkeyPatch.context() as patch:
        strict_vllm.install(patch)
        request = SamplingRequest.from_payload(payload)
        params = vllm_engine.sampling_params(request, end_ids)
        strict_vllm.admit(config, list(request.prompt_ids), params, strict_vllm.LoRARequest(*lora) if lora else None)


@SETTINGS
@given(body=BODY, with_adapter=st.booleans())
def test_every_request_the_server_accepts_vllm_admits(oracle, engine, validator, tiny_adapter, body, with_adapter):
    from vietlegal.serve.protocol.errors import ApiError

    try:
        job = validator.parse(json.dumps(body).encode(), "chatcmpl-contract")
    except ApiError:
        event("refused by the server")
        return  # refused with a 4xx by the server: never reaches vLLM
    event(f"accepted, {'json_schema' if job.sampling.json_schema else 'json_object' if job.sampling.json_object else 'text'}")
    validator.catalog.release(job.target)
    lora = ["v1", 1, str(tiny_adapter)] if with_adapter else None
    for payload in json.loads(json.dumps(job.payloads())):  # one per choice (n), as the worker gets them
        real = oracle.ask("request", payload=payload, end_ids=sorted(validator.end_ids), lora=lora)
        assert real["ok"], f"the server accepted {body} but vLLM refuses it: {real['error']}"
        seed = None if payload["seed"] is None else payload["seed"] % 2**64  # the HF loop's torch seed, unsigned
        assert (real["max_tokens"], real["seed"]) == (payload["max_new_tokens"], seed)
        assert (real["stop"] or None) == (payload["stop"] or None)
        ends = set() if payload["ignore_eos"] else validator.end_ids
        assert real["stop_token_ids"] == sorted(set(payload["stop_token_ids"]) | ends)
        if payload["json_schema"] is not None:
            assert real["structured"]["json"] == json.loads(payload["json_schema"])
        assert real["structured"] is None or real["structured"]["json_object"] in (None, True)
        stand_in_admits(strict_vllm.Config(CONTEXT, 3000, True), payload, validator.end_ids, lora)


@pytest.mark.parametrize("levels", [65, 100])
def test_a_schema_vllm_refuses_as_too_deep_is_refused_by_the_server(oracle, engine, validator, levels):
    from vietlegal.serve.protocol.errors import ApiError

    body = {"messages": [{"role": "user", "content": "Tuổi kết hôn?"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": nested_schema(levels)}}}
    payload = {"prompt_ids": [5] * 8, "max_new_tokens": 1, "json_schema": json.dumps(nested_schema(levels))}
    assert not oracle.ask("request", payload=payload, end_ids=[9], lora=None)["ok"], "vLLM refuses it"
    with pytest.raises(ApiError) as refused:
        validator.parse(json.dumps(body).encode(), "chatcmpl-deep")
    assert refused.value.status == 400


# --- the stand-in agrees with vLLM ----------------------------------------------------------------------------

@st.composite
def one_wrong(draw, valid: dict, invalid: dict, base: dict | None = None) -> dict:
    """Fields from their valid ranges (each optional), or the same with one field wrong (out of range, or a name vLLM
    does not have): both verdicts get examples, each refusal with one cause."""
    kwargs = {**(base or {}), **draw(st.fixed_dictionaries({}, optional=valid))}
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(invalid)))
        kwargs[name] = draw(invalid[name])
    return kwargs


SAMPLING = one_wrong(
    {"max_tokens": st.integers(1, 70), "temperature": st.floats(0, 2), "top_p": st.floats(0, 1, exclude_min=True),
     "seed": st.one_of(st.none(), st.integers(-1, 2**63 - 1)), "n": st.just(1), "top_k": st.integers(-1, 5),
     "min_p": st.floats(0, 1), "presence_penalty": st.floats(-2, 2), "frequency_penalty": st.floats(-2, 2),
     "repetition_penalty": st.floats(0.5, 2), "min_tokens": st.just(0), "logprobs": st.one_of(st.none(), st.integers(0, 5)),
     "stop": st.one_of(st.none(), TEXT.filter(bool), st.lists(TEXT.filter(bool), max_size=3)),
     "stop_token_ids": st.lists(st.integers(0, 3000), max_size=3), "skip_special_tokens": st.booleans()},
    {"max_tokens": st.sampled_from([0, -2]), "temperature": st.sampled_from([-0.5, 2.01, float("nan"), float("inf")]),
     "top_p": st.sampled_from([0, -0.1, 1.01, float("nan")]), "n": st.sampled_from([0, -1, 2]),
     "top_k": st.integers(-5, -2), "min_p": st.sampled_from([-0.1, 1.5, float("nan")]),
     "presence_penalty": st.sampled_from([-2.5, 2.5, float("nan")]), "repetition_penalty": st.sampled_from([0, -1, float("nan")]),
     "min_tokens": st.integers(71, 90), "logprobs": st.integers(-5, -2), "stop": st.sampled_from(["", ["Điều", ""]]),
     "detokenize": st.just(False), "lora_int_id": st.just(1), "stop_sequences": st.just(["x"]), "max_new_tokens": st.just(5)},
    {"max_tokens": 70})
STRUCTURED = st.fixed_dictionaries({}, optional={
    "json": st.one_of(SCHEMA, SCHEMA.map(json.dumps)), "json_object": st.sampled_from([True, False]),
    "regex": st.just("[0-9]+"), "choice": st.just(["có", "không"]), "disable_any_whitespace": st.booleans(),
    "whitespace_pattern": st.just(" ?")})
LORA = one_wrong({"load_inplace": st.booleans(), "base_model_name": st.just("meta-llama/Llama-3.1-8B-Instruct")},
                 {"lora_int_id": st.integers(-2, 0), "lora_path": st.just(""), "lora_id": st.just(1), "id": st.just(1)},
                 {"lora_name": "v1", "lora_int_id": 1, "lora_path": "/models/adapter"})


def stand_in_verdict(cls: str, kwargs: dict) -> bool:
    try:
        if cls == "SamplingParams":
            made = dict(kwargs)
            if isinstance(made.get("structured_outputs"), dict):
                made["structured_outputs"] = strict_vllm.StructuredOutputsParams(**made["structured_outputs"])
            strict_vllm.SamplingParams(**made)
        elif cls == "StructuredOutputsParams":
            strict_vllm.StructuredOutputsParams(**kwargs)
        elif cls == "LoRARequest":
            strict_vllm.LoRARequest(**kwargs)
        else:
            strict_vllm.EngineArgs(**kwargs).create_engine_config()
    except (TypeError, ValueError, AssertionError):
        return False
    return True


def engine_arguments(model: str, adapter: str):
    return one_wrong(
        {"max_lora_rank": st.sampled_from([8, 64, 320]), "max_loras": st.integers(1, 4),
         "gpu_memory_utilization": st.sampled_from([0.5, 0.92, 1.0]), "max_num_seqs": st.integers(1, 512),
         "max_model_len": st.sampled_from([None, 16, CONTEXT]), "dtype": st.sampled_from(["auto", "bfloat16", "float32"])},
        {"max_lora_rank": st.sampled_from([0, 2, 12, 1024]), "max_loras": st.just(0),
         "gpu_memory_utilization": st.sampled_from([-0.1, 0.0, 1.01]), "max_num_seqs": st.just(0),
         "max_model_len": st.just(CONTEXT + 1), "dtype": st.sampled_from(["bf16", "fp16"]), "max_lora": st.just(1),
         "lora_modules": st.just(["v1=/models/adapter"])},
        vllm_engine.engine_kwargs(model, None, adapter, CONTEXT, 64, "float32"))


@SETTINGS
@given(data=st.data())
def test_the_stand_in_accepts_exactly_what_vllm_accepts(oracle, tiny_base, tiny_adapter, data):
    cls = data.draw(st.sampled_from(["SamplingParams", "SamplingParams", "StructuredOutputsParams", "LoRARequest",
                                     "EngineArgs"]))
    if cls == "SamplingParams":
        kwargs = data.draw(SAMPLING)
        if data.draw(st.booleans()):
            kwargs["structured_outputs"] = data.draw(STRUCTURED)
    elif cls == "StructuredOutputsParams":
        kwargs = data.draw(STRUCTURED)
    elif cls == "LoRARequest":
        kwargs = data.draw(LORA)
    else:
        kwargs = data.draw(engine_arguments(str(tiny_base[0]), str(tiny_adapter)))
    real = oracle.ask("construct", cls=cls, kwargs=json.loads(json.dumps(kwargs)))
    event(f"{cls} {'accepted' if real['ok'] else 'refused'}")
    assert stand_in_verdict(cls, kwargs) == real["ok"], f"{cls}({kwargs}): vLLM says {real}"


def test_vllm_drops_unknown_structured_output_keys_and_the_stand_in_refuses_them(oracle):
    # vLLM's StructuredOutputsParams is a pydantic dataclass (extra keys ignored): a misspelt key would be lost on
    # the GPU without a word, so the stand-in is stricter there and fails the test that makes one.
    assert oracle.ask("construct", cls="StructuredOutputsParams", kwargs={"json_object": True, "schema": {}})["ok"]
    with pytest.raises(TypeError):
        strict_vllm.StructuredOutputsParams(json_object=True, schema={})


@pytest.mark.parametrize(("prompt_length", "stop_ids", "depth"), [
    (CONTEXT - 1, [9], 3), (CONTEXT, [9], 3), (CONTEXT + 1, [9], 3), (5, [2999], 3), (5, [3000], 3),
    (5, [9], 64), (5, [9], 65), (0, [9], 3)])
def test_the_stand_in_admits_exactly_what_vllms_engine_admits(oracle, engine, tiny_adapter, prompt_length, stop_ids,
                                                              depth):
    schema = json.dumps(nested_schema(depth), separators=(",", ":"))
    payload = {"prompt_ids": [5] * prompt_length, "max_new_tokens": 1, "json_schema": schema}
    real = oracle.ask("request", payload=payload, end_ids=stop_ids, lora=["v1", 1, str(tiny_adapter)])
    try:
        stand_in_admits(strict_vllm.Config(CONTEXT, 3000, True), payload, set(stop_ids), ["v1", 1, str(tiny_adapter)])
        accepted = True
    except (TypeError, ValueError, AssertionError):
        accepted = False
    assert accepted == real["ok"], real
