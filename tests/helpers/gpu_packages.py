"""vLLM and Unsloth as released, importable on a CPU machine: what the contract tests check the project's calls
against (tests/model/test_vllm_contract.py, tests/train/test_unsloth_contract.py).

requirements-gpu.txt names every version. The wheels of vllm, unsloth and unsloth_zoo are downloaded (pip, no
dependencies) and unpacked without their ELF binaries (CUDA kernels, which cannot load without a GPU) and
without unsloth's `studio` web app; the few packages vLLM imports that the CPU set lacks (SIDE_PACKAGES) are
installed beside them at the GPU lock's versions. All of it lands in one directory, .gpu-packages/<key>/site
(git-ignored), built once per key. A subprocess of the test interpreter with that directory on PYTHONPATH
imports them over the CPU environment: the same version of every library the two sets share, torch 2.13.0 (CPU)
where the GPU set has 2.14.0. `VLLM_TARGET_DEVICE=cpu` selects vLLM's CPU platform, so engine configs and the
engine's request validation (`InputProcessor`) run; nothing that needs a kernel does. Unsloth 2026.10.9 runs on
the CPU by itself (its CPU fallback: no 4-bit, no Triton kernels).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".gpu-packages"
GPU_LOCK = ROOT / "requirements-gpu.txt"
WHEELS = ("vllm", "unsloth", "unsloth-zoo")  # unpacked from their Linux x86-64 wheels, binaries left out
# What `import vllm` and the parts the contract tests reach need beyond the CPU set (found by importing them):
# the sampling and LoRA structs (msgspec, cbor2, pybase64, cachetools, py-cpuinfo, blake3, oss-harmony,
# partial-json-parser), the engine config (einops, llguidance) and JSON-schema request checks (lm-format-enforcer,
# interegular).
SIDE_PACKAGES = ("msgspec", "cbor2", "pybase64", "cachetools", "py-cpuinfo", "blake3", "oss-harmony",
                 "partial-json-parser", "einops", "llguidance", "lm-format-enforcer", "interegular")
SKIPPED_TOP_LEVEL = ("studio/",)  # unsloth's browser app: not the library
ELF = b"\x7fELF"


class BuildError(RuntimeError):
    pass


def pins() -> dict[str, str]:
    """Name -> version of what the side directory holds, read from requirements-gpu.txt (this Python's lines)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from lock import read_pins
    finally:
        sys.path.pop(0)
    gpu = read_pins(GPU_LOCK, f"{sys.version_info.major}.{sys.version_info.minor}")
    missing = [n for n in (*WHEELS, *SIDE_PACKAGES) if n not in gpu]
    if missing:
        raise BuildError(f"requirements-gpu.txt pins no version of {missing}; run `python scripts/lock.py`")
    return {name: gpu[name] for name in (*WHEELS, *SIDE_PACKAGES)}


def key(versions: dict[str, str]) -> str:
    text = json.dumps([sys.version_info[:2], sorted(versions.items()), SKIPPED_TOP_LEVEL], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def site() -> Path:
    """The directory to put on PYTHONPATH, built on first use (under a lock: one build per key)."""
    versions = pins()
    target = CACHE / key(versions)
    if (target / "complete.json").exists():
        return target / "site"
    CACHE.mkdir(exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "complete.json").exists():
            build(target, versions)
    return target / "site"


def build(target: Path, versions: dict[str, str]) -> None:
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=CACHE))
    try:
        wheels, out = work / "wheels", work / "site"
        pip("download", "--no-deps", "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
            "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}", "--implementation", "cp",
            "-d", str(wheels), *[f"{n}=={versions[n]}" for n in WHEELS])
        downloaded = sum(p.stat().st_size for p in wheels.glob("*.whl"))
        skipped = sum(unpack(wheel, out) for wheel in sorted(wheels.glob("*.whl")))
        pip("install", "--no-deps", "--no-compile", "--target", str(out), *[f"{n}=={versions[n]}" for n in SIDE_PACKAGES])
        shutil.rmtree(wheels)
        (work / "complete.json").write_text(json.dumps(
            {"versions": versions, "wheels_mb": round(downloaded / 1e6, 1), "binaries_left_out_mb": round(skipped / 1e6, 1)},
            indent=1), encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def unpack(wheel: Path, out: Path) -> int:
    """Extract a wheel's Python code and data; returns the bytes of binaries left out."""
    skipped = 0
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            if member.is_dir() or member.filename.startswith(SKIPPED_TOP_LEVEL):
                continue
            data = archive.read(member)
            if data.startswith(ELF):
                skipped += len(data)
                continue
            path = out / member.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return skipped


def pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args, "-q", "--disable-pip-version-check"],
                          capture_output=True, text=True)
    if done.returncode:
        raise BuildError(f"pip {' '.join(args[:3])} ... failed (needs PyPI):\n{done.stderr[-3000:]}")


def environment(**extra: str) -> dict[str, str]:
    """The environment of a subprocess that imports the real packages."""
    path = os.pathsep.join(p for p in (str(site()), str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "VLLM_TARGET_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false",
            **extra}


class Oracle:
    """A subprocess that answers JSON requests, one per line, with the real packages (tests/helpers/vllm_oracle.py).
    Its log goes to a file, read back when it fails."""

    def __init__(self, module: str, env: dict[str, str], cwd: Path = ROOT):
        self.log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self.process = subprocess.Popen([sys.executable, "-m", module], cwd=cwd, env=env, text=True, encoding="utf-8",
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        ready = self._read()
        if ready != {"ready": True}:
            raise BuildError(f"{module} did not start: {ready}")

    def ask(self, op: str, **fields) -> dict:
        self.process.stdin.write(json.dumps({"op": op, **fields}, ensure_ascii=True) + "\n")
        self.process.stdin.flush()
        return self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.kill()
            self.log.seek(0)
            raise BuildError(f"the oracle ended:\n{self.log.read()[-4000:]}")
        return json.loads(line)

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# --- the oracle's side (tests/helpers/vllm_oracle.py, unsloth_oracle.py) ----------------------------------------

def take_stdout():
    """The answers' channel: the process's stdout, kept apart; what the packages print goes to stderr (the log)."""
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


def answer_requests(channel, ops: dict) -> None:
    """Say ready, then answer each JSON request line with ops[request["op"]](**the rest); a failure is an answer."""
    def answer(message: dict) -> None:
        channel.write(json.dumps(message, ensure_ascii=True, default=repr) + "\n")
        channel.flush()

    answer({"ready": True})
    for line in sys.stdin:
        message = json.loads(line)
        op = message.pop("op")
        try:
            answer(ops[op](**message))
        except Exception as exc:  # noqa: BLE001 - every refusal is an answer
            answer({"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:600]}"})
