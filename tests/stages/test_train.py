"""The train stage end to end on the real tiny model: the adapter contract, the metrics, resume after
SIGKILL, no resume across a params change, and the errors a user can fix."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from vietlegal import cli
from vietlegal.model.adapter import SETTINGS_FILE, load_for_inference

pytestmark = pytest.mark.slow

FAST = {"max_steps": 6, "batch_size": 4, "grad_accum": 1, "warmup_steps": 0, "logging_steps": 1, "eval_steps": 3,
        "save_steps": 3, "cpu_threads": 1}


def write_params(where: Path, base: dict | None = None, **train) -> Path:
    params = {"base": {"model": "vietlegal/tiny-llama", "max_seq_length": 512, **(base or {})}, "train": {**FAST, **train}}
    path = where / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def curve_steps(tsv: Path) -> list[int]:
    header, *rows = tsv.read_text(encoding="utf-8").splitlines()
    column = header.split("\t").index("step")
    return [int(row.split("\t")[column]) for row in rows]


def train(processed_dir: Path, *extra: str) -> int:
    return cli.main(["train", "--data", str(processed_dir), *extra])


def test_writes_a_servable_adapter_and_the_metrics(tmp_path, monkeypatch, processed_dir, tiny_base, conversations, capsys):
    from safetensors import safe_open

    from vietlegal.model.chat import encode_prompt

    monkeypatch.chdir(tmp_path)
    write_params(tmp_path)
    assert train(processed_dir) == 0

    adapter = tmp_path / "models" / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["modules_to_save"] is None and config["base_model_name_or_path"] == "vietlegal/tiny-llama"
    with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as f:
        assert all("lora_" in k for k in f.keys()), "no embeddings or lm_head: vLLM can load it"
    settings = json.loads((adapter / SETTINGS_FILE).read_text())
    assert settings["base"] == {"model": "vietlegal/tiny-llama", "revision": tiny_base[1]}
    assert settings["backend"] == "trl" and settings["train"]["max_steps"] == 6
    assert {"torch", "transformers", "trl", "peft"} <= set(settings["versions"]) and settings["data_hash"]
    assert settings["hardware"]["device"] == "cpu"
    assert settings["context"] == {"with_context": False}  # prepare's splits: no context.json from stage ground

    model, tokenizer, _ = load_for_inference(adapter)
    assert tokenizer.chat_template and tokenizer.pad_token == "<|finetune_right_pad_id|>"
    assert encode_prompt(tokenizer, conversations[0][:-1])  # the shipped tokenizer renders prompts
    assert model.get_input_embeddings().num_embeddings == len(tokenizer), "vocabulary never resized"

    metrics = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert metrics["label_audit"]["share_ending_in_eot"] == 1.0
    assert metrics["label_audit"]["truncated"] == 0
    assert 0.9 <= metrics["label_audit"]["padding_efficiency"] <= 1.0
    assert metrics["global_step"] == 6 and metrics["backend"] == "trl"
    assert metrics["train_tokens_per_second"] > 0 and metrics["peak_memory_gb"] > 0 and metrics["wall_seconds"] > 0
    assert metrics["train_loss"] is not None
    assert metrics["eval_loss"] < metrics["base_eval_loss"], "six steps at lr 3e-3 already move the random tiny model"

    assert curve_steps(tmp_path / "dvclive/plots/metrics/loss/train.tsv") == [1, 2, 3, 4, 5, 6], "x = optimizer step"
    assert curve_steps(tmp_path / "dvclive/plots/metrics/loss/eval.tsv") == [0, 3, 6], "step 0 is the base model"
    assert "train: adapter -> models/adapter" in capsys.readouterr().err


def test_sigkilled_training_resumes_from_its_last_checkpoint(tmp_path, processed_dir, monkeypatch, capsys):
    params = write_params(tmp_path, max_steps=40, save_steps=4, eval_steps=40)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "vietlegal.cli", "train", "--data", str(processed_dir), "--params",
                             str(params)], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    states = []
    while not states and time.monotonic() < deadline and proc.poll() is None:
        states = list((tmp_path / "models" / "checkpoints").glob("*/checkpoint-*/trainer_state.json"))
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    err = proc.communicate()[1].decode()
    assert proc.returncode == -signal.SIGKILL, f"training ended before the kill:\n{err[-2000:]}"
    assert states, f"no checkpoint appeared:\n{err[-2000:]}"
    assert not (tmp_path / "models" / "adapter").exists(), "a killed run leaves no adapter behind"

    monkeypatch.chdir(tmp_path)
    assert train(processed_dir) == 0
    err = capsys.readouterr().err
    metrics = json.loads((tmp_path / "metrics" / "train.json").read_text())
    step = metrics["resumed_from_step"]
    assert step is not None and step >= 4 and f"(step {step})" in err and "resuming from" in err
    assert metrics["global_step"] == 40
    assert metrics["base_eval_loss"] is not None, "the base's eval (step 0) survives the resume"
    steps = curve_steps(tmp_path / "dvclive/plots/metrics/loss/train.tsv")
    assert steps == sorted(set(steps)) and steps[-1] == 40, "resumed curves continue without duplicate steps"


def test_a_params_change_never_resumes_stale_state(tmp_path, processed_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, max_steps=3)
    assert train(processed_dir) == 0
    first = json.loads((tmp_path / "metrics" / "train.json").read_text())["run_key"]
    assert (tmp_path / "models" / "checkpoints" / first / "checkpoint-3").exists()

    write_params(tmp_path, max_steps=3, learning_rate=1e-3)
    capsys.readouterr()
    assert train(processed_dir) == 0
    metrics = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert metrics["run_key"] != first and metrics["resumed_from_step"] is None
    assert "starting fresh" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "models" / "checkpoints").iterdir()] == [metrics["run_key"]]


def error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("vietlegal train: error:")]
    assert len(lines) == 1
    return lines[0]


def test_missing_base_model_says_which_param(tmp_path, monkeypatch, processed_dir, capsys):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, base={"model": "/nonexistent/llama"})
    assert train(processed_dir) == 2
    assert "base.model: directory '/nonexistent/llama' does not exist" in error_line(capsys)


def test_hub_model_unavailable_offline_names_the_model_and_the_token(tmp_path, monkeypatch, processed_dir, capsys):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, base={"model": "meta-llama/Llama-3.1-8B-Instruct"})
    assert train(processed_dir) == 2
    line = error_line(capsys)
    assert "meta-llama/Llama-3.1-8B-Instruct" in line and "HF_TOKEN" in line


def test_gated_model_without_token_says_export_hf_token(tmp_path, monkeypatch, processed_dir, capsys):
    import transformers

    def gated(*args, **kwargs):  # what transformers raises for a gated repo without access (no hub here)
        raise OSError("You are trying to access a gated repo.\nMake sure to have access to it at "
                      "https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct.\n401 Client Error.")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", gated)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, base={"model": "meta-llama/Llama-3.1-8B-Instruct"})
    assert train(processed_dir) == 2
    line = error_line(capsys)
    assert "is gated" in line and "export HF_TOKEN=" in line


def test_base_without_chat_template_is_refused(tmp_path, monkeypatch, processed_dir, tiny_base, capsys):
    base = tmp_path / "no-template"
    shutil.copytree(tiny_base[0], base)
    (base / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((base / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, base={"model": str(base)})
    assert train(processed_dir) == 2
    assert "no chat template" in error_line(capsys)


def test_4bit_without_gpu_is_a_hardware_error(tmp_path, monkeypatch, processed_dir, capsys):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, load_in_4bit=True)
    assert train(processed_dir) == 2
    assert "train.load_in_4bit: false" in error_line(capsys)


def test_cuda_out_of_memory_becomes_the_seed_fixes(tmp_path, monkeypatch, processed_dir, capsys):
    import torch
    import transformers

    def oom(self, *args, **kwargs):  # a GPU running out of memory, which cannot happen here
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.91 GiB")

    monkeypatch.setattr(transformers.Trainer, "train", oom)
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, batch_size=4, grad_accum=2)
    assert train(processed_dir) == 2
    line = error_line(capsys)
    assert "CUDA out of memory" in line and "train.batch_size: 2 with train.grad_accum: 4" in line
    assert "train.load_in_4bit: true" in line and "base.max_seq_length: 256" in line
