"""Shared fixtures: the real tiny Llama, small Vietnamese conversations, a valid PEFT adapter."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = "Bạn là một chuyên gia tư vấn pháp luật Việt Nam."

QA = [
    ("Nam nữ bao nhiêu tuổi thì được kết hôn?",
     "Theo điểm a khoản 1 Điều 8 Luật Hôn nhân và gia đình 2014, nam từ đủ 20 tuổi trở lên, nữ từ đủ 18 tuổi trở lên."),
    ("Người lao động nữ được nghỉ thai sản bao lâu?",
     "Theo khoản 1 Điều 139 Bộ luật Lao động 2019, lao động nữ được nghỉ thai sản trước và sau khi sinh con là 06 tháng."),
    ("Thời hiệu khởi kiện tranh chấp hợp đồng là bao lâu?",
     "Theo Điều 429 Bộ luật Dân sự 2015, thời hiệu khởi kiện để yêu cầu Tòa án giải quyết tranh chấp hợp đồng là 03 năm."),
    ("Người bao nhiêu tuổi được coi là người cao tuổi?",
     "Theo Điều 2 Luật Người cao tuổi 2009, người cao tuổi là công dân Việt Nam từ đủ 60 tuổi trở lên."),
    ("Người từ đủ bao nhiêu tuổi phải chịu trách nhiệm hình sự về mọi tội phạm?",
     "Theo khoản 1 Điều 12 Bộ luật Hình sự 2015, người từ đủ 16 tuổi trở lên phải chịu trách nhiệm hình sự về mọi tội phạm."),
    ("Thời gian thử việc tối đa đối với công việc cần trình độ cao đẳng là bao lâu?",
     "Theo khoản 2 Điều 25 Bộ luật Lao động 2019, thời gian thử việc không quá 60 ngày đối với công việc cần trình độ từ cao đẳng trở lên."),
    ("Lãi suất vay theo thỏa thuận tối đa là bao nhiêu?",
     "Theo khoản 1 Điều 468 Bộ luật Dân sự 2015, lãi suất theo thỏa thuận không được vượt quá 20%/năm của khoản tiền vay."),
    ("Người lao động làm việc bình thường được nghỉ hằng năm bao nhiêu ngày?",
     "Theo khoản 1 Điều 113 Bộ luật Lao động 2019, người lao động làm việc đủ 12 tháng được nghỉ hằng năm 12 ngày làm việc."),
]


def conversation(q: str, a: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}, {"role": "assistant", "content": a}]


@pytest.fixture(scope="session")
def conversations() -> list[list[dict]]:
    return [conversation(q, a) for q, a in QA]


@pytest.fixture(scope="session")
def tiny_base():
    """(directory, revision) of the real tiny Llama-3.1-architecture model, built once."""
    from vietlegal.model import tiny

    return tiny.ensure_built()


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_base):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base[0])


@pytest.fixture
def processed_dir(tmp_path, conversations) -> Path:
    """data/processed-shaped directory: train gets all conversations, val and test two each."""
    out = tmp_path / "processed"
    out.mkdir()
    splits = {"train": conversations, "val": conversations[:2], "test": conversations[-2:]}
    for name, convs in splits.items():
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for i, msgs in enumerate(convs):
                f.write(json.dumps({"id": f"{name}-{i}", "source": f"fixture:{i + 1}", "messages": msgs}, ensure_ascii=False) + "\n")
    return out


@pytest.fixture(scope="session")
def tiny_adapter(tmp_path_factory, tiny_base) -> Path:
    """A valid, untrained LoRA adapter directory on the tiny base, in the layout `train` writes."""
    from vietlegal.model import untrained

    return untrained.adapter(tmp_path_factory.mktemp("adapter"), seed=0)


@pytest.fixture(scope="session")
def tiny_merged(tmp_path_factory, tiny_adapter) -> Path:
    """`tiny_adapter` merged into its base by the export stage's own code (models/export/merged's layout)."""
    from vietlegal.export.merge import merge

    out = tmp_path_factory.mktemp("export") / "merged"
    merge(tiny_adapter, out)
    return out


def _work_tree_status() -> set[str]:
    import subprocess

    done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True,
                          text=True)
    return set(done.stdout.splitlines()) if done.returncode == 0 else set()


@pytest.fixture(scope="session", autouse=True)
def _work_tree_untouched():
    """No test writes into the checkout (a stage run with its default paths would: they are relative to it)."""
    before = _work_tree_status()
    yield
    written = sorted(_work_tree_status() - before)
    assert not written, f"tests wrote into the work tree: {written}"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    # Nothing in the test suite may reach a hub.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


SERVE_TEST_PARAMS = """\
serve:
  max_batch_size: 8
  batch_timeout: 0.05
  max_new_tokens: 16
  max_body_bytes: 20000
  queue_timeout: 120
  cpu_threads: 1
  cors_origins: ["http://localhost:3000"]
"""


def _run(cmd: list[str], cwd) -> None:
    import subprocess

    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_TERMINAL_PROMPT": "0"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def pulled_adapter(tmp_path_factory, tiny_adapter):
    """The serving droplet's view: a clean git clone of a project whose models/adapter is a DVC output,
    with only the adapter pulled from the remote. Returns (clone dir, md5 dvc.lock records for it)."""
    import shutil
    import sys

    import yaml

    root = tmp_path_factory.mktemp("droplet")
    origin, clone, remote = root / "origin", root / "clone", root / "remote"
    origin.mkdir()
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    dvc = [sys.executable, "-m", "dvc"]
    _run(git + ["init", "-q"], origin)
    _run(dvc + ["init", "-q"], origin)
    shutil.copytree(tiny_adapter, origin / "models" / "adapter")
    (origin / "params.yaml").write_text(SERVE_TEST_PARAMS, encoding="utf-8")
    _run(dvc + ["stage", "add", "-n", "train", "-o", "models/adapter", "true"], origin)
    _run(dvc + ["commit", "-f", "-q", "train"], origin)  # records the adapter's hash in dvc.lock
    _run(dvc + ["remote", "add", "-d", "storage", str(remote)], origin)
    _run(dvc + ["push", "-q"], origin)
    _run(git + ["add", "-A"], origin)
    _run(git + ["commit", "-q", "-m", "adapter"], origin)
    _run(git + ["clone", "-q", str(origin), str(clone)], root)
    assert not (clone / "models" / "adapter").exists()
    _run(dvc + ["pull", "-q", "models/adapter"], clone)
    lock = yaml.safe_load((clone / "dvc.lock").read_text(encoding="utf-8"))
    md5 = lock["stages"]["train"]["outs"][0]["md5"].removesuffix(".dir")
    return clone, md5


@pytest.fixture(scope="session")
def live_server(tmp_path_factory, pulled_adapter):
    """`vietlegal serve` as run on the droplet (in the clean clone, its params.yaml, default --adapter
    models/adapter) at 127.0.0.1 on a free port with Bearer key "test-key". Started once for the
    session; its whole process group is killed at teardown."""
    from tests.helpers.droplet import droplet_server

    clone, _ = pulled_adapter
    with droplet_server(clone, tmp_path_factory.mktemp("serve") / "server.log") as server:
        yield server
