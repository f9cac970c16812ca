"""benchmarks/gpu_smoke.py, on this CPU machine: its dry run passes (wheel list, size, imports), and its training
and serving steps run as written (in fp32 on the CPU; the GPU run differs only in precision and device)."""
from __future__ import annotations

import importlib.util
import json
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


def test_dry_run_checks_the_wheel_list_size_and_imports_without_a_gpu():
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line[:12].strip(): line[12:].split()[0] for line in done.stdout.splitlines() if line.strip()}
    assert rows["wheel list"] == rows["size"] == rows["imports"] == "ok" and rows["gpu"] == "absent", done.stdout


def test_the_carried_list_is_what_the_gpu_image_lacks():
    smoke = load_script()
    assert {smoke.normal(n) for n in smoke.CARRIED} == smoke.needed_beyond_image()
    assert sum(smoke.installed_mb(n) for n in smoke.CARRIED) <= smoke.BUDGET_MB


@pytest.mark.slow
def test_the_training_and_serving_steps_run_as_written(tmp_path):
    smoke = load_script()
    adapter, figure = smoke.train_adapter(tmp_path, "trl", 2, precision="fp32")
    assert "2 steps" in figure
    manifest = json.loads((adapter / "vietlegal.json").read_text(encoding="utf-8"))
    assert manifest["backend"] == "trl" and (adapter / "adapter_model.safetensors").is_file()
    assert "3 answers via the openai client" in smoke.step_serve(tmp_path, adapter)
