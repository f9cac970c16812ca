"""The Makefile's install rules, run by the real `make` against a throw-away venv whose `pip` only records what it
is asked (installing the GPU set needs CUDA wheels of several GB): a GPU environment never gets the CPU set."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def venv(tmp_path) -> Path:
    root = tmp_path / "venv"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").symlink_to(sys.executable)
    (root / "bin" / "pip").write_text(f'#!/bin/sh\necho "pip $*" >> "{root}/pip.log"\n', encoding="utf-8")
    (root / "bin" / "pip").chmod(0o755)
    return root


def make(venv: Path, target: str) -> tuple[list[str], str]:
    done = subprocess.run(["make", "-s", target, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    log = venv / "pip.log"
    calls = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls, done.stdout


def test_a_cpu_venv_gets_the_cpu_set_and_the_test_tools(venv):
    calls, _ = make(venv, "install-dev")
    assert calls == ["pip install -q -r requirements.txt -e .", "pip install -q --no-deps -r requirements-nodeps.txt",
                     "pip install -q -r requirements-dev.txt -c requirements.txt"]


def test_make_gpu_installs_the_whole_gpu_lock_and_the_package_without_dependencies(venv):
    calls, out = make(venv, "gpu")
    assert calls == ["pip install -r requirements-gpu.txt", "pip install --no-deps -e ."]
    assert (venv / "gpu-environment").exists() and "dvc repro" in out


@pytest.mark.parametrize("how", ["make gpu", "vllm installed by hand"])
@pytest.mark.parametrize("target", ["install", "install-dev"])
def test_a_gpu_venv_never_gets_the_cpu_set(venv, how, target):
    if how == "make gpu":
        make(venv, "gpu")
    else:
        (venv / "lib" / "python3.12" / "site-packages" / "vllm").mkdir(parents=True)
    calls, out = make(venv, target)
    assert not any("requirements.txt" in call for call in calls), calls
    assert "not installing the CPU set over it" in out
    assert calls == ([] if target == "install" else ["pip install -q -r requirements-dev.txt -c requirements-gpu.txt"])
