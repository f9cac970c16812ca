"""`vietlegal serve` before it starts: the params' serve section, the backend choice, and what the command line
refuses with a clear message."""
from __future__ import annotations

import pytest

from vietlegal.errors import ConfigError
from vietlegal.params import ServeConfig, load_params


def test_params_yaml_serve_section_loads(tmp_path):
    from pathlib import Path

    cfg = load_params(Path(__file__).resolve().parents[2] / "params.yaml").serve
    assert isinstance(cfg, ServeConfig) and cfg.backend in ("hf", "vllm") and cfg.max_batch_size >= 1
    bad = tmp_path / "params.yaml"
    bad.write_text("serve:\n  max_batch: 4\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="serve.max_batch"):
        load_params(bad)


def test_unknown_backend_and_vllm_without_a_gpu_are_clear_errors(monkeypatch):
    from vietlegal.serve import server

    with pytest.raises(ConfigError, match="serve.backend"):
        server.make_api(ServeConfig(backend="tgi"), {"k": "adapter"}, None, None, None)
    monkeypatch.setattr(server, "cuda_available", lambda: False)
    with pytest.raises(server.HardwareError, match="CUDA"):
        server.make_api(ServeConfig(backend="vllm"), {"k": "adapter"}, None, None, None)


def test_serve_without_an_adapter_says_how_to_get_one(tmp_path, capsys):
    from vietlegal import cli

    assert cli.main(["serve", "--adapter", str(tmp_path / "missing")]) == 2
    assert "dvc pull" in capsys.readouterr().err


def test_serve_refuses_a_host_litserve_cannot_bind(tiny_adapter, capsys):
    from vietlegal import cli

    assert cli.main(["serve", "--adapter", str(tiny_adapter), "--host", "localhost"]) == 2
    assert "127.0.0.1" in capsys.readouterr().err
