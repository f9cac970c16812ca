"""Backend choice, the Unsloth argument mapping (with a stand-in for the GPU-only package), hardware
rules, run keys and checkpoint hygiene, curve trimming and the atomic adapter write: no training."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from vietlegal.model.adapter import AdapterManifest

from vietlegal.params import BaseConfig, TrainConfig
from vietlegal.errors import ConfigError
from vietlegal.train import backends, checkpoints, export, hardware, lora, tracking
from vietlegal.train.hardware import Hardware
from vietlegal.errors import HardwareError
from tests.helpers import strict_unsloth

ROOT = Path(__file__).resolve().parents[2]
CPU = Hardware("cpu", None, 0, False, 2)
H200 = Hardware("cuda", "NVIDIA H200", 1, True, 16)
T4 = Hardware("cuda", "Tesla T4", 1, False, 4)


@pytest.mark.parametrize(
    ("requested", "hw", "processes", "has_unsloth", "chosen"),
    [
        ("auto", CPU, 1, True, "trl"),
        ("auto", H200, 1, True, "unsloth"),
        ("auto", H200, 1, False, "trl"),
        ("auto", H200, 2, True, "trl"),  # Unsloth is single-GPU; accelerate launch goes through TRL
        ("trl", H200, 1, True, "trl"),
        ("unsloth", H200, 1, True, "unsloth"),
    ],
)
def test_auto_picks_unsloth_only_on_one_cuda_gpu_with_unsloth(requested, hw, processes, has_unsloth, chosen):
    assert backends.select(requested, hw, processes, has_unsloth=has_unsloth) == chosen


def test_unsloth_requested_where_it_cannot_run_says_why():
    with pytest.raises(HardwareError, match="needs a CUDA GPU"):
        backends.select("unsloth", CPU, 1, has_unsloth=True)
    with pytest.raises(HardwareError, match="not installed"):
        backends.select("unsloth", H200, 1, has_unsloth=False)
    with pytest.raises(HardwareError, match="2 processes"):
        backends.select("unsloth", H200, 2, has_unsloth=True)
    with pytest.raises(ConfigError, match="train.backend 'fast'"):
        backends.select("fast", CPU, 1)


def test_lora_never_targets_embeddings_or_lm_head():
    with pytest.raises(ConfigError, match=r"lm_head.*vLLM"):
        lora.lora_settings(TrainConfig(target_modules=["q_proj", "lm_head"]))


@pytest.fixture
def fake_unsloth(monkeypatch):
    """The strict stand-in for the GPU-only package (tests/helpers/strict_unsloth.py, proven against Unsloth
    2026.10.9 by tests/train/test_unsloth_contract.py): records the calls, returns the real tiny model with PEFT LoRA."""
    monkeypatch.delenv("UNSLOTH_COMPILE_LOCATION", raising=False)  # restored after the test: the backend sets it
    return strict_unsloth.install(monkeypatch)


def test_unsloth_backend_maps_params_to_the_seed_setup(fake_unsloth, tiny_base):
    import torch
    from peft import PeftModel

    from vietlegal.model import base as base_model

    cfg = TrainConfig(load_in_4bit=True, lora_r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    backend = backends.get("unsloth")
    model = backend.load_model(base_model.resolve("vietlegal/tiny-llama"), cfg, 2048, 7, "bf16")
    assert isinstance(model, PeftModel)
    loaded = fake_unsloth["from_pretrained"]
    assert loaded["model_name"] == str(tiny_base[0])
    assert loaded["load_in_4bit"] is True and loaded["max_seq_length"] == 2048 and loaded["dtype"] is torch.bfloat16
    assert loaded["use_exact_model_name"] is True, "never swap the pinned repo for an Unsloth mirror"
    lora = fake_unsloth["get_peft_model"]
    assert lora["use_gradient_checkpointing"] == "unsloth" and lora["random_state"] == 7
    assert lora["r"] == 8 and lora["lora_alpha"] == 16 and lora["target_modules"] == ["q_proj", "v_proj"]
    assert lora["modules_to_save"] is None
    assert backend.trainer_overrides(cfg) == {"gradient_checkpointing": False}  # Unsloth's own checkpointing


def test_unsloth_loads_in_the_trainers_precision_fp32_included(fake_unsloth, tiny_base):
    import torch

    from vietlegal.model import base as base_model

    backend = backends.get("unsloth")
    for precision, dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        model = backend.load_model(base_model.resolve("vietlegal/tiny-llama"), TrainConfig(), 512, 7, precision)
        # Unsloth's dtype=None is its own pick (bf16 where the hardware has it), not the trainer's fp32.
        assert fake_unsloth["from_pretrained"]["dtype"] is dtype and next(model.parameters()).dtype == dtype


def test_unsloths_generated_modules_go_to_the_cache_never_the_checkout(fake_unsloth, tmp_path, monkeypatch):
    import os

    from vietlegal.model.tiny import cache_root

    backends.get("unsloth")
    location = Path(os.environ["UNSLOTH_COMPILE_LOCATION"])
    assert location == cache_root() / "unsloth_compiled_cache" / "unversioned"  # the stand-in has no dist metadata
    assert ROOT not in location.parents, "Unsloth's default, ./unsloth_compiled_cache, would land in the checkout"
    monkeypatch.setenv("UNSLOTH_COMPILE_LOCATION", str(tmp_path / "mine"))
    backends.get("unsloth")
    assert os.environ["UNSLOTH_COMPILE_LOCATION"] == str(tmp_path / "mine"), "a location the user set wins"


@pytest.mark.parametrize(("method", "kwargs", "error"), [
    ("from_pretrained", {"model_name": "x", "bogus": 1}, TypeError),
    ("from_pretrained", {"model_name": "x", "dtype": "int8"}, ValueError),
    ("get_peft_model", {"r": 0}, TypeError),
    ("get_peft_model", {"r": 8.0}, TypeError),
    ("get_peft_model", {"lora_dropout": 1.5}, ValueError),
    ("get_peft_model", {"bias": "some"}, NotImplementedError),
    ("get_peft_model", {"adapter_name": "x"}, TypeError),
])
def test_the_stand_in_refuses_what_unsloth_refuses(fake_unsloth, method, kwargs, error):
    import unsloth

    with pytest.raises(error):
        getattr(unsloth.FastLanguageModel, method)(**kwargs) if method == "from_pretrained" else \
            unsloth.FastLanguageModel.get_peft_model(None, **kwargs)


@pytest.mark.parametrize("name", ["trl", "unsloth"])
def test_both_backends_continue_the_sft_adapter_trainable_on_its_base(name, fake_unsloth, tiny_adapter):
    """What stage align trains: the SFT adapter's own weights, trainable, nothing else (and Unsloth's patches on)."""
    from peft import PeftModel
    from safetensors.torch import load_file

    from vietlegal.model import base as base_model

    model = backends.get(name).load_adapter(base_model.resolve("vietlegal/tiny-llama"), tiny_adapter,
                                            TrainConfig(gradient_checkpointing=True), 512, 3, "fp32")
    assert isinstance(model, PeftModel) and list(model.peft_config) == ["default"]
    saved = load_file(str(tiny_adapter / "adapter_model.safetensors"))
    trainable = {n.replace(".default.", "."): p for n, p in model.named_parameters() if p.requires_grad}
    assert set(trainable) == set(saved) and all(trainable[k].equal(saved[k]) for k in saved)
    if name == "unsloth":
        assert fake_unsloth["from_pretrained"]["use_exact_model_name"] is True
        assert fake_unsloth["patch_peft_model"] == "unsloth" and "get_peft_model" not in fake_unsloth


def test_precision_follows_the_hardware():
    assert hardware.precision(None, CPU) == "fp32"
    assert hardware.precision(None, H200) == "bf16"
    assert hardware.precision(None, T4) == "fp16"
    assert hardware.precision(False, H200) == "fp32"
    with pytest.raises(HardwareError, match="Tesla T4 has no bf16.*train.bf16: null"):
        hardware.precision(True, T4)


def test_4bit_without_a_gpu_is_refused_with_the_fix():
    with pytest.raises(HardwareError, match="no CUDA GPU.*train.load_in_4bit: false"):
        hardware.check_quantization(TrainConfig(load_in_4bit=True), CPU)
    hardware.check_quantization(TrainConfig(load_in_4bit=False), CPU)


def test_out_of_memory_message_lists_the_seed_fixes_with_numbers():
    import torch

    cfg, base = TrainConfig(batch_size=8, grad_accum=2, load_in_4bit=False), BaseConfig(max_seq_length=2048)
    exc = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert hardware.is_out_of_memory(exc)
    message = str(hardware.out_of_memory(exc, cfg, base))
    assert "train.batch_size: 4 with train.grad_accum: 4 (same effective batch of 16)" in message
    assert "train.load_in_4bit: true" in message and "base.max_seq_length: 1024" in message
    aligning = str(hardware.out_of_memory(exc, cfg, base, batch=("align", 2, 4)))  # stage align sets its own batch
    assert "align.batch_size: 1 with align.grad_accum: 8 (same effective batch of 8)" in aligning
    assert "train.load_in_4bit: true" in aligning


def test_run_key_changes_with_anything_that_shapes_the_result():
    base, cfg = BaseConfig(), TrainConfig()
    key = checkpoints.run_key(base, cfg, "rev", "data", "trl", 1)
    assert key == checkpoints.run_key(base, TrainConfig(out_dir="elsewhere", cpu_threads=4), "rev", "data", "trl", 1)
    for other in (
        checkpoints.run_key(base, TrainConfig(learning_rate=1e-4), "rev", "data", "trl", 1),
        checkpoints.run_key(BaseConfig(max_seq_length=256), cfg, "rev", "data", "trl", 1),
        checkpoints.run_key(base, cfg, "rev2", "data", "trl", 1),
        checkpoints.run_key(base, cfg, "rev", "data2", "trl", 1),
        checkpoints.run_key(base, cfg, "rev", "data", "unsloth", 1),
        checkpoints.run_key(base, cfg, "rev", "data", "trl", 2),
    ):
        assert other != key


def test_prepare_deletes_other_runs_and_half_written_checkpoints(tmp_path):
    root = tmp_path / "checkpoints"
    for run, step, complete in (("old", 40, True), ("mine", 20, True), ("mine", 40, True), ("mine", 60, False)):
        ckpt = root / run / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        if complete:
            (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    assert checkpoints.prepare(root, "mine") == root / "mine" / "checkpoint-40"
    assert not (root / "old").exists(), "a checkpoint of other params is never resumed"
    assert not (root / "mine" / "checkpoint-60").exists(), "killed mid-write: no trainer_state.json"
    assert checkpoints.prepare(root, "new") is None and [p.name for p in root.iterdir()] == ["new"]


def test_resumed_curves_drop_rows_after_the_checkpoint(tmp_path):
    tsv = tmp_path / "plots" / "metrics" / "loss" / "train.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("timestamp\tstep\ttrain\n1\t5\t8.0\n2\t10\t7.9\n3\t15\t7.8\n", encoding="utf-8")
    tracking.trim(tmp_path, 10)
    assert tsv.read_text(encoding="utf-8").splitlines() == ["timestamp\tstep\ttrain", "1\t5\t8.0", "2\t10\t7.9"]


def test_a_crash_while_writing_leaves_the_previous_adapter(tmp_path, tiny_adapter, tiny_tokenizer):
    import shutil

    out = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, out)
    before = sorted(p.name for p in out.iterdir())
    staging = export.staging_dir(out)
    shutil.copytree(tiny_adapter, staging)

    class Crash(RuntimeError):
        pass

    class CrashingTokenizer:
        def save_pretrained(self, path):
            raise Crash("disk full")

    with pytest.raises(Crash):
        export.finish(staging, out, CrashingTokenizer(), AdapterManifest("vietlegal/tiny-llama", "rev"))
    assert sorted(p.name for p in out.iterdir()) == before
    export.finish(staging, out, tiny_tokenizer, AdapterManifest("vietlegal/tiny-llama", "rev"))
    assert json.loads((out / "vietlegal.json").read_text())["base"] == {"model": "vietlegal/tiny-llama", "revision": "rev"}
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "vietlegal/tiny-llama"
    assert config["target_modules"] == ["q_proj", "v_proj"], "sorted: PEFT's set order changes with PYTHONHASHSEED"
    assert not staging.exists()


def test_unsloth_is_imported_before_transformers_trl_and_peft(tmp_path):
    """Unsloth patches transformers/trl/peft when it is imported first; the stage reaches the backend choice
    (params, hardware, accelerate state) without importing any of them."""
    import os
    import subprocess

    fake = tmp_path / "unsloth"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import sys\nALREADY = sorted({'transformers', 'trl', 'peft'} & set(sys.modules))\n", encoding="utf-8")
    code = ("from vietlegal.params import TrainConfig\nimport vietlegal.stages.train, vietlegal.stages.align\n"
            "from vietlegal.train import backends, hardware\n"
            "hardware.setup(TrainConfig())\nbackends.get('unsloth')\nimport unsloth\nprint(unsloth.ALREADY)")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
