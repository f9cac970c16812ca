"""The version lock (scripts/lock.py, docs/dependencies.md).

Against the registry: the committed requirements-gpu.txt resolves to itself for Linux x86-64 on Python 3.11 and
3.12 and requirements.txt on 3.11 (uv, metadata only; no wheel needs a placeholder: PyPI has every one). Offline,
on copies of the files: a version bumped on one side only, or a pin pyproject.toml no longer allows, fails the
check with the package named.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
KINDS = {"gpu": "requirements-gpu.txt", "cpu": "requirements.txt", "dev": "requirements-dev.txt",
         "nodeps": "requirements-nodeps.txt"}


def load_lock():
    spec = importlib.util.spec_from_file_location("lock", ROOT / "scripts" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock = load_lock()


def copy_lock(target: Path) -> dict[str, Path]:
    target.mkdir(parents=True, exist_ok=True)
    for name in (*KINDS.values(), "pyproject.toml"):
        shutil.copy(ROOT / name, target / name)
    return {kind: target / name for kind, name in KINDS.items()}


def repin(path: Path, name: str, version: str) -> None:
    pattern = re.compile(rf"^{re.escape(name)}==[^\s;]+", flags=re.M | re.I)
    text, count = pattern.subn(f"{name}=={version}", path.read_text(encoding="utf-8"))
    assert count, f"{path.name} pins no {name}"
    path.write_text(text, encoding="utf-8")


@pytest.mark.slow
def test_the_committed_lock_resolves_for_the_gpu_and_cpu_machines_against_the_registry():
    done = subprocess.run([sys.executable, "scripts/lock.py", "--check"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lock holds" in done.stdout and "2.13.0 CPU, 2.14.0 GPU" in done.stdout


def test_the_committed_files_agree_with_each_other_and_pyproject(tmp_path):
    lock.check(copy_lock(tmp_path), resolve=False)


def test_a_one_sided_transformers_bump_fails_naming_the_package(tmp_path, monkeypatch, capsys):
    files = copy_lock(tmp_path)
    repin(files["cpu"], "transformers", "5.18.0")
    monkeypatch.setattr(lock, "FILES", files)
    assert lock.main(["--check", "--offline"]) == 2
    err = capsys.readouterr().err
    assert "transformers: requirements.txt side 5.18.0, requirements-gpu.txt 5.17.0" in err
    assert "python scripts/lock.py" in err, "says how to fix it"


SHARED = sorted((set(lock.read_pins(ROOT / KINDS["cpu"], "3.11")) | set(lock.read_pins(ROOT / KINDS["nodeps"], "3.11")))
                & set(lock.read_pins(ROOT / KINDS["gpu"], "3.11")) - lock.TORCH_FAMILY)


@settings(max_examples=40, derandomize=True, deadline=None, database=None)
@given(name=st.sampled_from(SHARED), side=st.sampled_from(["cpu", "gpu"]))
def test_any_shared_library_bumped_on_one_side_fails_naming_it(tmp_path_factory, name, side):
    files = copy_lock(tmp_path_factory.mktemp("lock"))
    kind = "nodeps" if side == "cpu" and name in lock.read_pins(files["nodeps"]) else side
    repin(files[kind], name, "999.0.0")
    with pytest.raises(lock.LockError, match=rf"{re.escape(name)}: requirements.txt side \S+, requirements-gpu.txt"):
        lock.check(files, resolve=False)


def test_torch_alone_differs_between_the_two_sides(tmp_path):
    files = copy_lock(tmp_path)
    cpu, gpu = lock.read_pins(files["cpu"], "3.11"), lock.read_pins(files["gpu"], "3.11")
    assert [n for n in set(cpu) & set(gpu) if cpu[n] != gpu[n]] == ["torch"]
    assert (cpu["torch"], gpu["torch"]) == ("2.13.0", "2.14.0")


def test_a_pin_pyproject_no_longer_allows_fails_naming_it(tmp_path):
    files = copy_lock(tmp_path)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8").replace('"vllm==0.33.0"', '"vllm==0.34.0"'), encoding="utf-8")
    with pytest.raises(lock.LockError, match=r"vllm: pyproject.toml asks ==0.34.0 \(gpu\), requirements-gpu.txt pins 0.33.0"):
        lock.check(files, resolve=False)


def test_a_dependency_added_to_pyproject_without_relocking_fails_naming_it(tmp_path):
    files = copy_lock(tmp_path)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8").replace('    "packaging",\n', '    "packaging",\n    "underthesea",\n'),
                         encoding="utf-8")
    with pytest.raises(lock.LockError, match=r"underthesea: pyproject.toml asks any version \(cpu\), requirements.txt pins nothing"):
        lock.check(files, resolve=False)
