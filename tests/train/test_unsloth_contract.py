"""The Unsloth backend's calls, checked against Unsloth 2026.10.9 as released (tests/helpers/gpu_packages.py: the
real wheels on this CPU machine, at requirements-gpu.txt's versions), and the strict stand-in
(tests/helpers/strict_unsloth.py) proven to agree with it.

Without a GPU, Unsloth shows two faces. Its GPU classes (`import unsloth` under UNSLOTH_ALLOW_CPU=1, Unsloth's own
switch for CPU-only CI) give the signatures the H200 run calls: every argument the project passes is a named
parameter there, and the stand-in has exactly those. Its CPU fallback (unsloth_zoo.cpu) really runs: the project's
UnslothBackend loads and wraps the tiny model in the trainer's precision, trains two steps through TRL as Unsloth
patches it, and writes nothing into the working directory; and the stand-in's verdicts equal the real ones on
generated arguments. Unverified here: the GPU classes' loading (4-bit, Triton kernels, Unsloth's gradient
checkpointing), which need CUDA.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.helpers import gpu_packages, strict_unsloth
from vietlegal.model import base as base_model
from vietlegal.params import TrainConfig
from vietlegal.train import unsloth_backend

pytestmark = pytest.mark.slow
ROOT = gpu_packages.ROOT
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def gpu_classes(tmp_path_factory):
    cache = tmp_path_factory.mktemp("unsloth-gpu")
    env = gpu_packages.environment(UNSLOTH_ALLOW_CPU="1", VIETLEGAL_CACHE=str(cache))
    env.pop("UNSLOTH_COMPILE_LOCATION", None)
    with gpu_packages.Oracle("tests.helpers.unsloth_oracle", env, cwd=cache) as real:
        yield real


@pytest.fixture(scope="module")
def cpu_unsloth(tmp_path_factory):
    """The real CPU fallback, started in an empty directory (whatever Unsloth writes there is seen)."""
    cwd = tmp_path_factory.mktemp("unsloth-cwd")
    env = gpu_packages.environment()
    env.pop("UNSLOTH_COMPILE_LOCATION", None)
    with gpu_packages.Oracle("tests.helpers.unsloth_oracle", env, cwd=cwd) as real:
        yield real, cwd


@pytest.fixture(scope="module")
def gpu_signatures(gpu_classes) -> dict:
    real = gpu_classes.ask("signatures")
    assert real["ok"], real
    return real


def named(parameters: list[list]) -> list[str]:
    return [name for name, kind in parameters if kind in ("POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY") and name != "model"]


def test_the_stand_in_has_the_gpu_classes_parameters(gpu_signatures):
    real = gpu_signatures
    assert real["class"] == "unsloth.models.loader.FastLanguageModel", "the GPU classes, not the CPU fallback"
    assert named(real["from_pretrained"]) == list(strict_unsloth.FROM_PRETRAINED) + ["on_model_resolved"]
    assert named(real["get_peft_model"]) == list(strict_unsloth.GET_PEFT_MODEL)
    assert named(real["patch_peft_model"]) == list(strict_unsloth.PATCH_PEFT_MODEL), "stage align's adapter path"


TRAIN = st.builds(TrainConfig, lora_r=st.sampled_from([1, 8, 16, 64]), lora_alpha=st.sampled_from([8, 16, 32]),
                  lora_dropout=st.sampled_from([0.0, 0.05, 0.1]), load_in_4bit=st.booleans(),
                  gradient_checkpointing=st.booleans(),
                  target_modules=st.lists(st.sampled_from(PROJECTIONS), min_size=1, max_size=7, unique=True))


@settings(max_examples=50, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=TRAIN, precision=st.sampled_from(["bf16", "fp16", "fp32"]))
def test_every_argument_the_backend_passes_is_a_named_parameter_of_the_gpu_classes(gpu_signatures, cfg, precision):
    real = gpu_signatures
    base = base_model.resolve("vietlegal/tiny-llama")
    loading = unsloth_backend.from_pretrained_kwargs(base, cfg, 2048, 7, precision)
    wrapping = unsloth_backend.peft_kwargs(cfg, 7)
    assert set(loading) <= set(named(real["from_pretrained"])), "not passed on through **kwargs: named parameters"
    assert set(wrapping) <= set(named(real["get_peft_model"]))
    assert str(loading["dtype"]) in ("torch.float16", "torch.bfloat16", "torch.float32"), "Unsloth asserts these"
    assert wrapping["use_gradient_checkpointing"] in ("unsloth", False)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_backend_loads_and_wraps_the_tiny_model_with_the_real_unsloth(cpu_unsloth, precision):
    real, cwd = cpu_unsloth
    cfg = TrainConfig(lora_r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    made = real.ask("backend", train=dataclasses.asdict(cfg), precision=precision, max_seq_length=512, seed=7)
    assert made["ok"], made
    assert (made["type"], made["r"], made["lora_alpha"], made["target_modules"]) == \
        ("PeftModelForCausalLM", 8, 16, ["q_proj", "v_proj"])
    assert made["modules_to_save"] is None and made["bias"] == "none"
    assert made["dtype"] == {"fp32": "torch.float32", "bf16": "torch.bfloat16"}[precision], "the trainer's precision"
    assert made["overrides"] == {"gradient_checkpointing": False}
    assert made["compile_location"].endswith("unsloth_compiled_cache/2026.10.9")
    # outside the checkout (a cache beside it, e.g. /tmp/x-home next to /tmp/x, is fine)
    assert not Path(made["compile_location"]).resolve().is_relative_to(ROOT)
    assert not (cwd / "unsloth_compiled_cache").exists()


def test_two_training_steps_run_through_the_real_unsloth(cpu_unsloth, tmp_path):
    real, cwd = cpu_unsloth
    done = real.ask("train", work=str(tmp_path), steps=2)
    assert done["ok"], done
    assert done["figure"].startswith("2 steps") and "adapter_model.safetensors" in done["files"]
    assert done["manifest"]["backend"] == "unsloth"
    assert sorted(p.name for p in cwd.iterdir()) == [], "Unsloth wrote into the working directory"


FROM_PRETRAINED = st.fixed_dictionaries({}, optional={
    "dtype": st.sampled_from([None, "float16", "bfloat16", "float32", "int8"]), "load_in_4bit": st.just(False),
    "max_seq_length": st.sampled_from([256, 512]), "bogus_option": st.just(1)})
GET_PEFT_MODEL = st.fixed_dictionaries({}, optional={
    "r": st.sampled_from([1, 8, 0, -1, 2.0]), "lora_alpha": st.sampled_from([8, 16]),
    "lora_dropout": st.sampled_from([0.0, 0.1, 1.0, 1.5]), "bias": st.sampled_from(["none", "all", "lora_only", "some"]),
    "target_modules": st.lists(st.sampled_from([*PROJECTIONS, "nope"]), min_size=1, max_size=3, unique=True),
    "use_rslora": st.booleans(), "bogus_option": st.just(1)})


def stand_in_verdict(loading: dict, wrapping: dict) -> bool:
    import unsloth

    try:
        model, _ = unsloth.FastLanguageModel.from_pretrained(**loading)
        unsloth.FastLanguageModel.get_peft_model(model, **wrapping)
    except (TypeError, ValueError, NotImplementedError):
        return False
    return True


@settings(max_examples=40, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(loading=FROM_PRETRAINED, wrapping=GET_PEFT_MODEL)
def test_the_stand_in_refuses_exactly_what_unsloth_refuses(cpu_unsloth, tiny_base, loading, wrapping):
    real, _ = cpu_unsloth
    loading = {"model_name": str(tiny_base[0]), "use_exact_model_name": True, **loading}
    verdict = real.ask("load", from_pretrained=dict(loading), peft=dict(wrapping))
    assert "ok" in verdict and ("error" in verdict or verdict["ok"]), verdict
    event(f"unsloth {'accepted' if verdict['ok'] else 'refused in ' + verdict['stage']}")
    with pytest.MonkeyPatch.context() as patch:
        strict_unsloth.install(patch)
        assert stand_in_verdict(loading, wrapping) == verdict["ok"], f"{loading} {wrapping}: Unsloth says {verdict}"
