"""DVC-level, as a new user tries it: after the pipeline `dvc repro export` is off (a note, {"enabled": false},
nothing built); with export.enabled only the export stage reruns and writes the merged model, the GGUF files with
their Modelfiles and each format's cost; and on another machine `dvc pull models/export` is the one command (or one format's two files).
Runs in a throwaway copy of the project (tests/helpers/project_copy.py), on a tiny sample and a 4-step training."""
from __future__ import annotations

import json

import pytest

from tests.conftest import QA
from tests.helpers.project_copy import copy_project

pytestmark = pytest.mark.slow
FORMATS = ("f16", "q8_0", "q4_k_m")


def test_repro_export_off_then_on_and_pull_it_elsewhere(tmp_path, llama_cpp):
    from vietlegal.model import tiny
    from vietlegal.model.adapter import check_complete, dir_md5

    project = copy_project(tmp_path / "project", tmp_path / "home")
    project.env["VIETLEGAL_CACHE"] = str(tiny.cache_root())  # the tiny model and llama.cpp's build, reused
    (project.path / "data" / "sample" / "legal_qa.jsonl").write_text(
        "".join(json.dumps({"question": q, "answer": a}, ensure_ascii=False) + "\n" for q, a in QA), encoding="utf-8")
    project.update_params("prepare", val_fraction=0.25, test_fraction=0.25)
    project.update_params("train", max_steps=4, batch_size=4, warmup_steps=0, eval_steps=4, save_steps=4)
    project.update_params("generate", max_new_tokens=16)
    project.update_params("rag", dense=False)
    project.commit("small sample, fast training")

    log = project.dvc("repro", "export", timeout=900).stdout
    assert "Running stage 'train'" in log and "Running stage 'export'" in log
    export, metrics = project.path / "models" / "export", project.path / "metrics" / "export.json"
    assert [p.name for p in export.iterdir()] == ["DISABLED.txt"]
    assert json.loads(metrics.read_text(encoding="utf-8")) == {"enabled": False}

    project.update_params("export", enabled=True)
    log = project.dvc("repro", "export", timeout=900).stdout
    assert "Stage 'train' didn't change, skipping" in log and "Running stage 'export'" in log
    report = json.loads(metrics.read_text(encoding="utf-8"))
    adapter = project.path / "models" / "adapter"
    test_split = project.path / "data" / "processed" / "test.jsonl"
    assert report["adapter"]["version"] == dir_md5(adapter)
    assert report["questions"] == len(test_split.read_text(encoding="utf-8").splitlines()) >= 1
    assert list(report["formats"]) == list(FORMATS) and report["reference_format"] == "f16"
    for fmt, m in report["formats"].items():
        assert (export / "gguf" / m["file"]).stat().st_size == m["bytes"]
        assert m["perplexity"] > 1 and 0 <= m["citation_f1"] <= 1 and 0 <= m["same_answer_as_f16"] <= 1
    f16 = report["formats"]["f16"]
    assert f16["perplexity_vs_f16"] == 1.0 and f16["same_answer_as_f16"] == 1.0
    # F16 against float32 transformers on the same answers: rounding only (tests/export/test_asking_live.py).
    assert f16["perplexity_vs_transformers"] == pytest.approx(1.0, abs=1e-3)
    assert project.dvc("status", "export").stdout.strip().endswith("Data and pipelines are up to date.")

    remote = tmp_path / "remote"
    project.dvc("remote", "add", "-f", "-d", "local", str(remote))
    project.dvc("push", "models/export")
    project.commit("export")
    machine = project.clone(tmp_path / "in-house")
    machine.dvc("pull", "models/export")
    pulled = machine.path / "models" / "export"
    assert not (machine.path / "models" / "adapter").exists()
    assert check_complete(pulled / "merged").merged["adapter_version"] == report["adapter"]["version"]
    assert check_complete(pulled / "gguf").files == check_complete(export / "gguf").files
    assert {p.name for p in (pulled / "gguf").glob("*.gguf")} == {f"vietlegal-{f}.gguf" for f in FORMATS}

    # A machine that runs one format pulls that file and its Modelfile alone.
    small = project.clone(tmp_path / "workstation")
    small.dvc("pull", "models/export/gguf/vietlegal-q4_k_m.gguf", "models/export/gguf/vietlegal-q4_k_m.Modelfile")
    assert sorted(p.name for p in (small.path / "models" / "export").rglob("*") if p.is_file()) == [
        "vietlegal-q4_k_m.Modelfile", "vietlegal-q4_k_m.gguf"]
