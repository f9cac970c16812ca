"""Building llama.cpp from the registry's source: only the vendored tree is taken, the cache is keyed and reused,
and a machine without a compiler is told what to install (the build itself: tests/export/conftest.py)."""
from __future__ import annotations

import io
import tarfile

import pytest

from vietlegal.errors import ExportError
from vietlegal.export import llama_cpp


def sdist(path, names: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in names.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_only_the_vendored_llama_cpp_is_extracted(tmp_path):
    archive = sdist(tmp_path / "llama_cpp_python-0.3.36.tar.gz", {
        "llama_cpp_python-0.3.36/pyproject.toml": b"[project]",
        "llama_cpp_python-0.3.36/vendor/llama.cpp/CMakeLists.txt": b"project(llama.cpp)",
        "llama_cpp_python-0.3.36/vendor/llama.cpp/convert_hf_to_gguf.py": b"print()",
        "llama_cpp_python-0.3.36/vendor/llama.cpp/.git": b"gitdir: ../../.git/modules/vendor/llama.cpp",
        "llama_cpp_python-0.3.36/llama_cpp/llama.py": b"",
    })
    llama_cpp._extract(archive, tmp_path / "src")
    found = sorted(p.relative_to(tmp_path / "src").as_posix() for p in (tmp_path / "src").rglob("*"))
    assert found == ["CMakeLists.txt", "convert_hf_to_gguf.py"]


def test_an_archive_without_the_vendored_tree_is_refused(tmp_path):
    archive = sdist(tmp_path / "other.tar.gz", {"other-1.0/setup.py": b""})
    with pytest.raises(ExportError, match="has no vendor/llama.cpp/"):
        llama_cpp._extract(archive, tmp_path / "src")


def test_the_cache_lives_under_the_vietlegal_cache_keyed_by_version(monkeypatch, tmp_path):
    monkeypatch.setenv("VIETLEGAL_CACHE", str(tmp_path))
    where = llama_cpp.cache_dir()
    assert where.parent == tmp_path / "llama.cpp" and where.name.startswith(llama_cpp.SOURCE_VERSION + "-")
    assert not llama_cpp.LlamaCpp(where).complete()


def test_a_machine_without_a_compiler_is_told_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("VIETLEGAL_CACHE", str(tmp_path))  # nothing built there
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ExportError, match=r"needs cmake, make, c\+\+ on PATH \(Debian: apt-get install cmake"):
        llama_cpp.ensure_built()
