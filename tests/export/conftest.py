"""llama.cpp built once (cached across sessions under the tiny model's cache root; the first build takes minutes,
see docs/export.md) and the tiny adapter exported through the stage's own code."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def llama_cpp():
    import shutil

    from vietlegal.export.llama_cpp import LlamaCpp, cache_dir, ensure_built

    missing = [tool for tool in ("cmake", "make", "c++") if shutil.which(tool) is None]
    if missing and not LlamaCpp(cache_dir()).complete():
        pytest.skip(f"building llama.cpp needs {', '.join(missing)}: apt-get install cmake g++ make (.ci/run does)")
    return ensure_built()


@pytest.fixture(scope="session")
def exported(tmp_path_factory, llama_cpp, tiny_adapter) -> tuple[Path, dict]:
    """(models/export-shaped directory, {format: file facts}) for the session's tiny adapter, default formats."""
    from vietlegal.params import Params
    from vietlegal.stages.export import write_files

    out = tmp_path_factory.mktemp("export") / "export"
    out.mkdir()
    _, formats = write_files(Params(), llama_cpp, tiny_adapter, out)
    return out, formats


@pytest.fixture(scope="session")
def f16_server(tmp_path_factory, llama_cpp, exported):
    """llama-server on the exported F16 file, one thread, as the export stage starts it."""
    from vietlegal.export.llama_server import LlamaServer

    out, formats = exported
    with LlamaServer(llama_cpp, out / "gguf" / formats["f16"]["file"], tmp_path_factory.mktemp("llama") / "log",
                     threads=1) as server:
        yield server
