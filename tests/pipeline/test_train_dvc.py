"""DVC-level: `dvc repro` trains, keeps the checkpoints (not a DVC output, so never deleted) so a `dvc repro` after SIGKILL resumes,
keeps them out of git, and `dvc plots show` / `dvc exp show` see the curves, params and metrics. Runs in a throwaway
copy of the project (tests/project_copy.py), never in the working tree."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest
import yaml

from tests.conftest import QA
from tests.helpers.project_copy import copy_project

pytestmark = pytest.mark.slow


def test_repro_trains_resumes_from_persisted_checkpoints_and_renders_curves(tmp_path):
    from vietlegal.model import tiny

    project = copy_project(tmp_path / "project", tmp_path / "home")
    project.env["VIETLEGAL_CACHE"] = str(tiny.cache_root())  # reuse the built tiny model
    sample = project.path / "data" / "sample" / "legal_qa.jsonl"
    sample.write_text("".join(json.dumps({"question": p + q, "answer": a}, ensure_ascii=False) + "\n"
                              for p in ("", "Xin hỏi: ", "Cho tôi biết: ") for q, a in QA), encoding="utf-8")
    params = yaml.safe_load((project.path / "params.yaml").read_text(encoding="utf-8"))
    params["prepare"].update(val_fraction=0.15, test_fraction=0.15)
    params["train"].update(max_steps=4, batch_size=4, warmup_steps=0, logging_steps=1, eval_steps=2, save_steps=2)
    params["rag"].update(dense=False)  # train follows ground, which follows index: BM25 only builds in a second
    (project.path / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")
    project.commit("small sample, fast training")

    first = project.dvc("repro", "train").stdout
    assert "starting fresh" in first
    assert list((project.path / "models" / "checkpoints").glob("*/checkpoint-4/trainer_state.json"))
    status = project.run("git", "status", "--porcelain", "--ignored").stdout
    assert "!! models/checkpoints/" in status, "optimizer state stays out of git (and of `dvc exp` commits)"

    plots = project.dvc_json("plots", "show")["data"]
    loss = plots["dvclive/plots/metrics/loss/train.tsv"][0]["content"]["data"]["values"]
    assert [int(v["step"]) for v in loss] == [1, 2, 3, 4]
    assert "dvclive/plots/metrics/loss/eval.tsv" in plots and "dvclive/plots/metrics/learning_rate.tsv" in plots

    workspace = project.dvc_json("exp", "show")[0]["data"]
    assert workspace["params"]["params.yaml"]["data"]["train"]["max_steps"] == 4
    metrics = workspace["metrics"]["metrics/train.json"]["data"]
    assert metrics["label_audit"]["share_ending_in_eot"] == 1.0 and metrics["global_step"] == 4
    assert "loss" in workspace["metrics"]["dvclive/metrics.json"]["data"]

    # SIGKILL the whole `dvc repro` mid-run; DVC never deletes the undeclared checkpoints dir -> the next `dvc repro` resumes
    params["train"].update(max_steps=40, save_steps=4, eval_steps=40)
    (project.path / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")
    old_run = next((project.path / "models" / "checkpoints").iterdir()).name
    killed = subprocess.Popen(["dvc", "repro", "train"], cwd=project.path, env=project.env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, saved = time.monotonic() + 180, []
    while not saved and time.monotonic() < deadline and killed.poll() is None:
        saved = [p for p in (project.path / "models" / "checkpoints").glob("*/checkpoint-*/trainer_state.json")
                 if p.parent.parent.name != old_run]
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL and saved, "the run must be killed after its first checkpoint"
    again = project.dvc("repro", "train").stdout
    resumed = re.search(r"resuming from models/checkpoints/\S+ \(step (\d+)\)", again)
    assert resumed and 4 <= int(resumed.group(1)) < 40, again[-2000:]
    assert json.loads((project.path / "metrics" / "train.json").read_text())["global_step"] == 40
