"""DVC-level: an evaluation param change reruns only `evaluate`, and `dvc metrics diff` shows it.

Runs the real pipeline (prepare -> train -> generate -> perplexity -> evaluate) on the tiny
model in a throwaway copy of the project (tests/project_copy.py), never in the working tree itself.
"""
from __future__ import annotations

import json

import pytest

from tests.conftest import QA
from tests.helpers.project_copy import Project, copy_project

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path) -> Project:
    """A git+DVC copy of the project's files, with a small sample and fast params."""
    from vietlegal.model import tiny

    project = copy_project(tmp_path / "project", tmp_path / "home")
    project.env["VIETLEGAL_CACHE"] = str(tiny.cache_root())  # reuse the built tiny model
    sample = project.path / "data" / "sample" / "legal_qa.jsonl"
    sample.write_text("".join(json.dumps({"question": q, "answer": a}, ensure_ascii=False) + "\n" for q, a in QA), encoding="utf-8")
    project.update_params("prepare", sample="data/sample/legal_qa.jsonl", val_fraction=0.25, test_fraction=0.25)
    project.update_params("train", max_steps=2, batch_size=2, eval_steps=2, save_steps=2, logging_steps=1)
    project.update_params("generate", max_new_tokens=8)
    project.update_params("rag", dense=False)  # train follows ground, which follows index: BM25 only builds in a second
    project.commit("small sample, fast params")
    return project


def read_eval(project: Project) -> dict:
    return json.loads((project.path / "metrics" / "eval.json").read_text(encoding="utf-8"))


def test_evaluation_param_change_reruns_only_evaluate_and_shows_in_metrics_diff(project):
    project.dvc("repro", "evaluate")  # the judge stage is off by default; nothing here needs it
    before = read_eval(project)
    assert "nw:2" in before["signatures"]["chrf"]
    project.commit("baseline")

    log = project.dvc("exp", "run", "evaluate", "-S", "evaluate.chrf_word_order=0").stdout
    for stage in ("prepare", "train", "generate", "perplexity"):
        assert f"Stage '{stage}' didn't change, skipping" in log
    assert "Running stage 'evaluate'" in log
    after = read_eval(project)
    assert "nw:0" in after["signatures"]["chrf"]
    assert after["tuned"]["perplexity"] == before["tuned"]["perplexity"]  # not recomputed, same value

    diff = project.dvc_json("metrics", "diff")["metrics/eval.json"]
    assert diff["tuned.chrf_0_100"]["new"] == pytest.approx(after["tuned"]["chrf_0_100"])
    assert diff["tuned.chrf_0_100"]["old"] == pytest.approx(before["tuned"]["chrf_0_100"])
    assert "tuned.perplexity" not in diff and "tuned.rougeL_f1" not in diff

    # A decoding param change invalidates generation only: DVC reports just `generate` as changed.
    project.update_params("generate", max_new_tokens=4)
    status = project.dvc_json("status", "evaluate", "--with-deps")
    assert set(status) == {"generate"}
