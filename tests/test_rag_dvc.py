"""DVC-level: `dvc repro retrieval` builds the index from the bundled corpus and reports recall@k, and a
retrieval-only param change does not rebuild the index. Runs in a throwaway copy of the project (BM25
only: the dense path is tested with a real model in test_rag_dense.py)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

pytestmark = pytest.mark.slow

DVC = str(Path(sys.executable).parent / "dvc")


def sh(cwd: Path, *args: str) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def set_params(project: Path, **rag) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["rag"].update(rag)
    path.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.fixture
def project(tmp_path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    out = tmp_path / "project"
    for name in files:
        if (ROOT / name).is_file():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, out / name)
    assert out.resolve() != ROOT.resolve()
    set_params(out, dense=False)
    sh(out, "git", "init", "-q")
    return out


def test_repro_retrieval_builds_the_index_and_a_retrieval_param_change_does_not_rebuild_it(project):
    log = sh(project, DVC, "repro", "retrieval")
    assert "Running stage 'index'" in log and "Running stage 'retrieval'" in log
    manifest = json.loads((project / "models" / "index" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["corpus"]["provisions"] == sum(1 for _ in open(project / "data" / "corpus" / "provisions.jsonl", encoding="utf-8"))
    report = json.loads((project / "metrics" / "retrieval.json").read_text(encoding="utf-8"))
    assert report["questions"] > 0 and report["gold_missing_from_corpus"] == 0
    assert report["bm25"]["recall@10"] >= report["bm25"]["recall@1"] > 0

    set_params(project, recall_k=[1, 2])
    log = sh(project, DVC, "repro", "retrieval")
    assert "Stage 'index' didn't change, skipping" in log and "Running stage 'retrieval'" in log
    assert "recall@2" in json.loads((project / "metrics" / "retrieval.json").read_text(encoding="utf-8"))["bm25"]
