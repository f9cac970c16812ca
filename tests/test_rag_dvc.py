"""DVC-level: `dvc repro retrieval` builds the index from the bundled corpus and reports recall@k, and a
retrieval-only param change does not rebuild the index. Runs in a throwaway copy of the project
(tests/project_copy.py; BM25 only: the dense path is tested with a real model in test_rag_dense.py)."""
from __future__ import annotations

import json

import pytest

from project_copy import Project, copy_project

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path) -> Project:
    from vietlegal import tiny

    project = copy_project(tmp_path / "project", tmp_path / "home")
    project.env["VIETLEGAL_CACHE"] = str(tiny.cache_root())  # reuse the built tiny model
    project.update_params("rag", dense=False)
    return project


def read_report(project: Project) -> dict:
    return json.loads((project.path / "metrics" / "retrieval.json").read_text(encoding="utf-8"))


def test_repro_retrieval_builds_the_index_and_a_retrieval_param_change_does_not_rebuild_it(project):
    log = project.dvc("repro", "retrieval").stdout
    assert "Running stage 'index'" in log and "Running stage 'retrieval'" in log
    manifest = json.loads((project.path / "models" / "index" / "manifest.json").read_text(encoding="utf-8"))
    corpus = project.path / "data" / "corpus" / "provisions.jsonl"
    assert manifest["corpus"]["provisions"] == sum(1 for _ in open(corpus, encoding="utf-8"))
    report = read_report(project)
    assert report["questions"] > 0 and report["gold_missing_from_corpus"] == 0
    assert report["bm25"]["recall@10"] >= report["bm25"]["recall@1"] > 0

    project.update_params("rag", recall_k=[1, 2])
    log = project.dvc("repro", "retrieval").stdout
    assert "Stage 'index' didn't change, skipping" in log and "Running stage 'retrieval'" in log
    assert "recall@2" in read_report(project)["bm25"]
