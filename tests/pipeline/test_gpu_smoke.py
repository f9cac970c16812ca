"""benchmarks/gpu_smoke.py on this CPU machine: its dry run passes (lock, wheel list, size, imports, the steps it
would run), its wheel list follows requirements-gpu.txt, and its steps run as written, each in a process of its own
(in fp32 on the CPU; the GPU run differs only in precision and device)."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_smoke.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_smoke", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows(output: str) -> dict[str, list[str]]:
    """The printed table: name -> [state, figure] (columns are two or more spaces apart)."""
    return {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line.strip(), maxsplit=2)
                                              for line in output.splitlines() if line.strip())}


def test_dry_run_checks_the_lock_wheel_list_size_imports_and_steps_without_a_gpu():
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    table = rows(done.stdout)
    assert [table[name][0] for name in ("lock", "wheel list", "size", "imports")] == ["ok"] * 4, done.stdout
    assert table["gpu"][0] == "absent"
    smoke = load_script()
    assert [name for name in table if name in smoke.STEPS] == list(smoke.STEPS), "one row per step, in order"
    assert table["vllm offline"][0] == "would skip" and "vllm" in table["vllm offline"][1], "no vLLM on this machine"
    assert table["train (trl, bf16)"][0] == "would run"


def test_the_carried_list_is_what_the_gpu_image_lacks_at_the_gpu_locks_versions():
    smoke = load_script()
    assert {smoke.normal(n) for n in smoke.CARRIED} == smoke.needed_beyond_image()
    assert sum(smoke.installed_mb(n) for n in smoke.CARRIED) <= smoke.BUDGET_MB
    gpu = smoke.pins()
    assert dict(smoke.wheel_list()) == {n: gpu[smoke.normal(n)] for n in smoke.CARRIED}
    assert gpu["torch"] == "2.14.0", "the GPU lock's versions, not the CPU set's"


@pytest.mark.slow
def test_the_training_and_serving_steps_run_as_written_each_in_its_own_process(tmp_path):
    smoke = load_script()
    state, figure = smoke.in_process("train (trl, bf16)", tmp_path, 2, 300, precision="fp32")
    assert state.startswith("ok") and figure.startswith("2 steps"), figure
    manifest = json.loads((tmp_path / "adapter-trl" / "vietlegal.json").read_text(encoding="utf-8"))
    assert manifest["backend"] == "trl" and (tmp_path / "adapter-trl" / "adapter_model.safetensors").is_file()
    state, figure = smoke.in_process("serve (hf)", tmp_path, 2, 300, precision="fp32")
    assert state.startswith("ok") and "3 answers via the openai client" in figure, figure
    state, figure = smoke.in_process("vllm offline", tmp_path, 2, 120, precision="fp32")
    assert state.startswith("FAILED") and "ModuleNotFoundError" in figure, "a step that fails is a row, not a crash"
