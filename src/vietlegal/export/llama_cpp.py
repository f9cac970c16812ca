"""llama.cpp's quantiser and server, built once per machine from the registry's source, and its converter.

llama.cpp reaches a machine without internet (or a GPU) as source only: the `llama-cpp-python` sdist on PyPI
vendors it at vendor/llama.cpp (convert_hf_to_gguf.py, gguf-py, tools/quantize, tools/server). We take that
source at a pinned version and hash, build only `llama-quantize` and `llama-server` (CPU, Release, static, no
TLS, no web UI download) into a cache directory outside git, and reuse the build while it is there:

    $VIETLEGAL_CACHE/llama.cpp/<version>-<build key>/   (default ~/.cache/vietlegal/...)
      llama.cpp/        the vendored source (convert_hf_to_gguf.py runs from here)
      build/bin/        llama-quantize, llama-server
      built.json        what was built, with which flags, in how many seconds

Building is serialised by a lock file, so the stage and a test session never build the same directory twice.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vietlegal.errors import ExportError

SOURCE_PACKAGE = "llama-cpp-python"
SOURCE_VERSION = "0.3.36"
SOURCE_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
VENDORED = "vendor/llama.cpp/"
TOOLS = ("llama-quantize", "llama-server")
# Only what the two tools need: no tests, examples or unified app; no OpenSSL (nothing is downloaded at run time);
# no web UI (LLAMA_USE_PREBUILT_UI would fetch one from the Hugging Face hub at build time); static, so the two
# binaries can be copied alone. GGML_NATIVE (the default) tunes for this CPU: the build key includes the CPU flags.
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)
BUILT = "built.json"


@dataclass(frozen=True)
class LlamaCpp:
    """A built llama.cpp: where its converter, quantiser and server are."""

    root: Path

    @property
    def source(self) -> Path:
        return self.root / "llama.cpp"

    @property
    def converter(self) -> Path:
        return self.source / "convert_hf_to_gguf.py"

    @property
    def quantize(self) -> Path:
        return self.root / "build" / "bin" / "llama-quantize"

    @property
    def server(self) -> Path:
        return self.root / "build" / "bin" / "llama-server"

    def info(self) -> dict:
        return json.loads((self.root / BUILT).read_text(encoding="utf-8"))

    def complete(self) -> bool:
        return (self.root / BUILT).exists() and self.converter.exists() and all(
            os.access(p, os.X_OK) for p in (self.quantize, self.server))


def build_key() -> str:
    """What makes a build reusable: the source, the flags, the compiler and this CPU's instruction set."""
    flags = ""
    if Path("/proc/cpuinfo").exists():
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    compiler = shutil.which("c++") or ""
    h = hashlib.sha256(json.dumps([SOURCE_SHA256, CMAKE_FLAGS, platform.machine(), flags, compiler]).encode())
    return f"{SOURCE_VERSION}-{h.hexdigest()[:12]}"


def cache_dir() -> Path:
    from vietlegal.model.tiny import cache_root

    return cache_root() / "llama.cpp" / build_key()


def ensure_built(jobs: int | None = None, log=sys.stderr) -> LlamaCpp:
    """The cached build, building it first when it is not there (minutes: see docs/export.md)."""
    found = LlamaCpp(cache_dir())
    if found.complete():
        return found
    missing = [tool for tool in ("cmake", "make", "c++") if shutil.which(tool) is None]
    if missing:
        raise ExportError(f"building llama.cpp needs {', '.join(missing)} on PATH (Debian: apt-get install cmake "
                          "build-essential)")
    found.root.parent.mkdir(parents=True, exist_ok=True)
    with open(found.root.parent / f".{found.root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it: wait, then reuse its build
        if not found.complete():
            _build(found, jobs or os.cpu_count() or 1, log)
    return found


def _build(target: LlamaCpp, jobs: int, log) -> None:
    shutil.rmtree(target.root, ignore_errors=True)
    target.root.mkdir(parents=True)
    t0 = time.perf_counter()
    print(f"llama.cpp: fetching {SOURCE_PACKAGE}=={SOURCE_VERSION} (source) into {target.root}", file=log)
    with tempfile.TemporaryDirectory(prefix="llama-cpp-src-") as tmp:
        _extract(_download(Path(tmp)), target.source)
    fetched = time.perf_counter() - t0
    build = target.root / "build"
    print(f"llama.cpp: building {', '.join(TOOLS)} with {jobs} job(s)", file=log)
    _run(["cmake", "-S", str(target.source), "-B", str(build), *CMAKE_FLAGS], log)
    _run(["cmake", "--build", str(build), "--config", "Release", "-j", str(jobs), "--target", *TOOLS], log)
    seconds = time.perf_counter() - t0
    info = {"source": f"{SOURCE_PACKAGE}=={SOURCE_VERSION}", "sha256": SOURCE_SHA256, "flags": list(CMAKE_FLAGS),
            "jobs": jobs, "fetch_seconds": round(fetched, 1), "build_seconds": round(seconds - fetched, 1)}
    (target.root / BUILT).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(f"llama.cpp: built in {seconds:.0f}s -> {build / 'bin'}", file=log)


def _download(into: Path) -> Path:
    """The pinned sdist through pip (its index settings, mirrors and proxies), checked against its sha256."""
    requirement = into / "requirement.txt"
    requirement.write_text(f"{SOURCE_PACKAGE}=={SOURCE_VERSION} --hash=sha256:{SOURCE_SHA256}\n", encoding="utf-8")
    # --no-binary for this package only: its build dependencies come as wheels (building pip's cmake from source
    # would take an hour); pip prepares the sdist's metadata, which does not compile anything.
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--no-binary",
                           SOURCE_PACKAGE, "-d", str(into), "-r", str(requirement)], capture_output=True, text=True)
    found = sorted(into.glob("llama_cpp_python-*.tar.gz"))
    if done.returncode != 0 or not found:
        raise ExportError(f"could not download {SOURCE_PACKAGE}=={SOURCE_VERSION} from the package index: "
                          f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}; check pip's index settings")
    return found[0]


def _extract(sdist: Path, into: Path) -> None:
    """vendor/llama.cpp/ of the sdist, alone, into `into`."""
    into.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            _, _, rel = member.name.partition("/")
            if rel.startswith(VENDORED) and rel != VENDORED and not rel.startswith(VENDORED + ".git"):
                member.name = rel[len(VENDORED):]
                tar.extract(member, into, filter="data")
    if not (into / "CMakeLists.txt").exists():
        raise ExportError(f"{sdist.name}: has no {VENDORED} (not the sdist this version pins)")


def _run(cmd: list[str], log) -> None:
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-30:])
        print(tail, file=log)
        raise ExportError(f"building llama.cpp failed at `{' '.join(cmd[:3])} ...` (exit {done.returncode}); "
                          "the last lines of its output are above")
