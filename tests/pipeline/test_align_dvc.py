"""DVC-level: the review-to-alignment loop of docs/review.md on the tiny model, in a throwaway copy of the project.
Without verdicts `align` trains nothing and a second `dvc repro` is a no-op; with side-by-side verdicts under
data/raw/feedback (`dvc add`), `dvc repro` trains `align` (and not `train`: no correction changed its data),
`dvc metrics diff` shows SFT against aligned on held-out pairs, `evaluate` scores the aligned adapter, and one
`vietlegal serve` answers with both versions through the openai client."""
from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import QA
from tests.helpers.preference_pairs import review_bodies, write_reviews
from tests.helpers.project_copy import small_project
from vietlegal.serve.process import ServerProcess

pytestmark = pytest.mark.slow
A, B = f"vietlegal-{'a' * 12}", f"vietlegal-{'b' * 12}"  # the versions the generated reviews name


def test_verdicts_dvc_add_repro_trains_align_and_both_versions_serve(tmp_path):
    project = small_project(tmp_path / "project", tmp_path / "home")
    project.update_params("align", max_steps=30)
    project.commit("align: 30 steps")

    log = project.dvc("repro", "evaluate", timeout=900).stdout
    assert "Running stage 'align'" in log and "no preference pairs" in log
    assert (project.path / "models" / "aligned" / "NOT_TRAINED.txt").exists()
    assert "aligned" not in json.loads((project.path / "metrics" / "eval.json").read_text(encoding="utf-8"))
    assert "Data and pipelines are up to date" in project.dvc("repro", "evaluate").stdout, "no verdicts: a no-op"
    project.commit("first run")

    write_reviews(project.path / "data" / "raw" / "feedback", review_bodies())  # what serve.feedback_dir holds
    project.dvc("add", "data/raw/feedback")
    log = project.dvc("repro", "evaluate", timeout=900).stdout
    assert "Running stage 'align'" in log and "Stage 'train' didn't change" in log, log
    diff = project.dvc_json("metrics", "diff")["metrics/align.json"]
    assert diff["trained"]["new"] is True and diff["held_out.pairs"]["new"] >= 8
    assert 0 <= diff["held_out.sft.preference_accuracy"]["new"] <= 1
    assert 0 <= diff["held_out.aligned.preference_accuracy"]["new"] <= 1
    report = json.loads((project.path / "metrics" / "eval.json").read_text(encoding="utf-8"))
    assert report["aligned"]["examples"] == report["tuned"]["examples"] and "delta_aligned" in report
    review = json.loads((project.path / "metrics" / "review.json").read_text(encoding="utf-8"))
    assert review["models"][A]["reviewed"] == review["models"][B]["reviewed"] == len(review_bodies())
    assert project.dvc_json("status", "evaluate", "--with-deps") == {}

    with ServerProcess(["sft=models/adapter", "aligned=models/aligned"], tmp_path / "serve.log", api_key="k",
                       cwd=project.path, env={**project.env, "HF_HUB_OFFLINE": "1"}) as server:
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="k", max_retries=0, timeout=120)
        assert {"sft", "aligned"} <= {m.id for m in client.models.list().data}
        versions = set()
        for name in ("sft", "aligned"):
            reply = client.chat.completions.create(model=name, temperature=0, max_tokens=8,
                                                   messages=[{"role": "user", "content": QA[1][0]}])
            assert reply.choices[0].message.content and reply.model.startswith("vietlegal-")
            versions.add(reply.model)
    assert len(versions) == 2, "each answer names its own version"
