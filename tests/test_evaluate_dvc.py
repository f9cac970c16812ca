"""DVC-level: an evaluation param change reruns only `evaluate`, and `dvc metrics diff` shows it.

Runs the real pipeline (prepare -> train -> generate -> perplexity -> evaluate) on the tiny
model in a throwaway copy of the project, never in the working tree itself.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import QA, ROOT

pytestmark = pytest.mark.slow

DVC = str(Path(sys.executable).parent / "dvc")


def sh(cwd: Path, *args: str) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def sh_json(cwd: Path, *args: str):
    """Parse only stdout: DVC writes warnings to stderr."""
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


@pytest.fixture
def project(tmp_path) -> Path:
    """A git+DVC copy of the project's files, with a small sample and fast params."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    out = tmp_path / "project"
    for name in files:
        src = ROOT / name
        if src.is_file():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out / name)
    sample = out / "data" / "sample" / "legal_qa.jsonl"
    sample.parent.mkdir(parents=True, exist_ok=True)
    sample.write_text("".join(json.dumps({"question": q, "answer": a}, ensure_ascii=False) + "\n" for q, a in QA), encoding="utf-8")
    params = yaml.safe_load((out / "params.yaml").read_text(encoding="utf-8"))
    params["prepare"].update(sample="data/sample/legal_qa.jsonl", val_fraction=0.25, test_fraction=0.25)
    params["train"].update(max_steps=2, batch_size=2, eval_steps=2, save_steps=2, logging_steps=1)
    params["generate"].update(max_new_tokens=8)
    (out / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")
    assert out.resolve() != ROOT.resolve()
    sh(out, "git", "init", "-q")
    sh(out, "git", "add", "-A")
    sh(out, "git", "-c", "user.email=test@example.com", "-c", "user.name=test", "commit", "-qm", "copy")
    return out


def commit(project: Path, message: str) -> None:
    sh(project, "git", "add", "-A")
    sh(project, "git", "-c", "user.email=test@example.com", "-c", "user.name=test", "commit", "-qm", message)


@pytest.mark.skipif(importlib.util.find_spec("vietlegal.train") is None, reason="vietlegal.train is not written yet: no adapter to evaluate")
def test_evaluation_param_change_reruns_only_evaluate_and_shows_in_metrics_diff(project):
    sh(project, DVC, "repro", "evaluate")  # the judge stage is off by default; nothing here needs it
    before = json.loads((project / "metrics" / "eval.json").read_text(encoding="utf-8"))
    assert "nw:2" in before["signatures"]["chrf"]
    commit(project, "baseline")

    log = sh(project, DVC, "exp", "run", "evaluate", "-S", "evaluate.chrf_word_order=0")
    for stage in ("prepare", "train", "generate", "perplexity"):
        assert f"Stage '{stage}' didn't change, skipping" in log
    assert "Running stage 'evaluate'" in log
    after = json.loads((project / "metrics" / "eval.json").read_text(encoding="utf-8"))
    assert "nw:0" in after["signatures"]["chrf"]
    assert after["tuned"]["perplexity"] == before["tuned"]["perplexity"]  # not recomputed, same value

    diff = sh_json(project, DVC, "metrics", "diff", "--json")["metrics/eval.json"]
    assert diff["tuned.chrf_0_100"]["new"] == pytest.approx(after["tuned"]["chrf_0_100"])
    assert diff["tuned.chrf_0_100"]["old"] == pytest.approx(before["tuned"]["chrf_0_100"])
    assert "tuned.perplexity" not in diff and "tuned.rougeL_f1" not in diff

    # A decoding param change invalidates generation only: DVC reports just `generate` as changed.
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    params["generate"]["max_new_tokens"] = 4
    (project / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")
    status = sh_json(project, DVC, "status", "evaluate", "--with-deps", "--json")
    assert set(status) == {"generate"}
