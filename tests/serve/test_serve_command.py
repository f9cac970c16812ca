"""`vietlegal serve` before it starts: the params' serve section, the backend choice, and what the command line
refuses with a clear message."""
from __future__ import annotations

import pytest

from vietlegal.errors import ConfigError
from vietlegal.params import TINY_MODEL_ID, ServeConfig, load_params


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

    assert cli.main(["serve", "--adapter", str(tmp_path / "missing"), "--no-rag"]) == 2  # no index needed
    assert "dvc pull" in capsys.readouterr().err


def test_a_droplet_missing_both_the_adapter_and_the_index_hears_about_the_adapter_first(tmp_path, capsys):
    from vietlegal import cli

    params = tmp_path / "params.yaml"
    params.write_text(f"rag:\n  enabled: true\n  index_dir: {tmp_path / 'no-index'}\n"
                      f"  corpus_dir: {tmp_path / 'no-corpus'}\n", encoding="utf-8")
    assert cli.main(["serve", "--params", str(params), "--adapter", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "missing") in err and "no-index" not in err and "dvc pull" in err


def test_serve_refuses_a_host_litserve_cannot_bind(tiny_adapter, capsys):
    from vietlegal import cli

    assert cli.main(["serve", "--adapter", str(tiny_adapter), "--host", "localhost"]) == 2
    assert "127.0.0.1" in capsys.readouterr().err


# --- `--model`: what it combines with, and what it refuses (one line, exit 2, the fix named) ----------------------

def refused(argv: list[str], capsys) -> str:
    from vietlegal import cli

    assert cli.main(["serve", *argv, "--no-rag"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_merged_model_serves_alone(tiny_merged, tiny_adapter, tmp_path, capsys):
    err = refused(["--model", str(tiny_merged), "--adapter", f"v2={tiny_adapter}"], capsys)
    assert "serves alone" in err and "--adapter names v2" in err and "--model vietlegal/tiny-llama --adapter" in err
    params = tmp_path / "params.yaml"
    params.write_text(f"serve:\n  adapters: {{v2: {tiny_adapter}}}\n", encoding="utf-8")
    assert "serve.adapters (the params file) names v2" in refused(["--model", str(tiny_merged), "--params",
                                                                   str(params)], capsys)
    assert "drop --watch" in refused(["--model", str(tiny_merged), "--watch"], capsys)
    assert "drop --watch" in refused(["--model", TINY_MODEL_ID, "--watch"], capsys)


def test_an_adapter_given_as_the_model_or_a_merged_model_as_an_adapter_names_the_right_flag(tiny_merged, tiny_adapter,
                                                                                           tmp_path, capsys):
    assert f"serve it with --adapter {tiny_adapter}" in refused(["--model", str(tiny_adapter)], capsys)
    peft_only = tmp_path / "peft"
    peft_only.mkdir()
    (peft_only / "adapter_config.json").write_text("{}", encoding="utf-8")
    assert f"serve it with --adapter {peft_only}" in refused(["--model", str(peft_only)], capsys)
    err = refused(["--adapter", f"v1={tiny_merged}"], capsys)
    assert f"`vietlegal serve --model {tiny_merged}`" in err


def test_adapters_over_an_explicit_base_must_have_been_trained_on_it(tiny_adapter, capsys):
    err = refused(["--model", "meta-llama/Llama-3.1-8B-Instruct", "--adapter", str(tiny_adapter)], capsys)
    assert "was trained on vietlegal/tiny-llama@" in err and "pass --model vietlegal/tiny-llama" in err


def test_the_base_an_adapter_was_trained_on_is_accepted_under_any_of_its_names(tiny_adapter, tiny_base, tmp_path):
    """--model BASE with adapters changes nothing but the check: what is served is what the adapters name."""
    from vietlegal.serve.versions import whole_model

    directory, revision = tiny_base
    link = tmp_path / "tiny"
    link.symlink_to(directory)
    for name in (TINY_MODEL_ID, str(directory), str(link)):
        info, whole = whole_model.open_model(name, {"v1": tiny_adapter}, "--adapter", watch=True)
        assert whole is None and (info.base.model_id, info.base.revision) == (TINY_MODEL_ID, revision)


def test_a_merged_directory_half_copied_or_with_a_broken_version_is_refused_before_loading(tiny_merged, tmp_path,
                                                                                         capsys):
    import json
    import shutil

    copy = tmp_path / "merged"
    shutil.copytree(tiny_merged, copy)
    (copy / "tokenizer.json").write_text("{", encoding="utf-8")  # still being written
    assert f"{copy / 'tokenizer.json'}: md5 differs" in refused(["--model", str(copy)], capsys)
    shutil.copy(tiny_merged / "tokenizer.json", copy / "tokenizer.json")
    manifest = json.loads((copy / "vietlegal.json").read_text(encoding="utf-8"))
    manifest["merged"]["adapter_version"] = "v1"
    (copy / "vietlegal.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert "merged.adapter_version is 'v1', not an md5" in refused(["--model", str(copy)], capsys)


@pytest.mark.parametrize("a, b, same", [
    (("org/m", "org/m", None), ("org/m", "org/m", "abc"), True),  # the adapter pins the revision the hub id lacks
    (("org/m", "org/m", "abc"), ("org/m", "org/m", "abd"), False),
    (("org/m", "org/m", None), ("org/n", "org/n", None), False),
    (("org/m", "org/m", None), (".", ".", None), False),  # a hub id is never a local directory
    ((".", ".", None), ("./", "./", None), True),
    ((".", ".", "r1"), ("/", "/", "r1"), True),  # two directories a pretrain stage wrote with the same weights
    ((".", ".", "r1"), (".", ".", "r2"), False),
])
def test_same_model_is_one_directory_or_one_hub_id_at_revisions_that_agree(a, b, same):
    from vietlegal.model.base import ResolvedBase, same_model

    assert same_model(ResolvedBase(*a), ResolvedBase(*b)) is same is same_model(ResolvedBase(*b), ResolvedBase(*a))
