"""A throwaway copy of this project as its own git repo, and DVC/git commands run inside it.

DVC tests never run in the real work tree (they would rewrite its outputs and dvc.lock). The copy holds
what `git ls-files` lists (tracked and untracked-but-not-ignored), so it is what a fresh clone would have.
Every command gets a hermetic environment: no AWS settings from this machine, no DVC global config,
no analytics, no instance-metadata lookups.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
REMOTE = "spaces"
BUCKET = "legal-datalake"
PREFIX = "vietlegal"

# What the docs tell every machine to export for an S3-compatible store (dvc#10695).
CHECKSUM_ENV = {"AWS_REQUEST_CHECKSUM_CALCULATION": "when_required", "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}


def hermetic_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DVC_", "DO_SPACES_"))}
    env.update(
        HOME=str(home),
        AWS_CONFIG_FILE=str(home / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        DVC_NO_ANALYTICS="1",
        DVC_GLOBAL_CONFIG_DIR=str(home / "dvc-global"),
        DVC_SYSTEM_CONFIG_DIR=str(home / "dvc-system"),
        DVC_SITE_CACHE_DIR=str(home / "dvc-site-cache"),
        GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.invalid",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **CHECKSUM_ENV,
    )
    env.update(extra)
    return env


@dataclass
class Project:
    """One checkout (the copy, or a clone of it) with its own environment for commands."""

    path: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        """Run a command in the checkout; output is stdout and stderr together, as a user sees it."""
        proc = subprocess.run(
            args, cwd=self.path, env={**self.env, **env}, text=True, timeout=timeout,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"`{' '.join(args)}` exited {proc.returncode} in {self.path}:\n{proc.stdout}")
        return proc

    def dvc(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run("dvc", *args, **kw)

    def dvc_json(self, *args: str, timeout: float = 300):
        """`dvc <args> --json`, parsing stdout only: DVC warns on stderr (e.g. about plots not made yet)."""
        done = subprocess.run(["dvc", *args, "--json"], cwd=self.path, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"`dvc {' '.join(args)} --json` exited {done.returncode}:\n{done.stderr}")
        return json.loads(done.stdout)

    def update_params(self, section: str, **values) -> None:
        """Change keys of one params.yaml section, as `dvc exp run -S` would."""
        path = self.path / "params.yaml"
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
        params[section].update(values)
        path.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)

    def use_server(self, endpoint: str, access_key: str | None = None, secret_key: str | None = None) -> None:
        """Point the committed remote at a test server in .dvc/config.local: what `dvc remote modify --local`
        writes (test_remote's round trip runs those commands; here the file is written directly, since each
        `dvc` start costs a second of CPU)."""
        from configobj import ConfigObj

        local = ConfigObj(str(self.path / ".dvc" / "config.local"))
        section = local.setdefault(f'remote "{REMOTE}"', {})
        section["endpointurl"] = endpoint
        if access_key is not None:
            section.update({"access_key_id": access_key, "secret_access_key": secret_key})
        local.write()

    def clone(self, dest: Path) -> "Project":
        """`git clone` this checkout: what another machine gets (no DVC cache, no config.local)."""
        subprocess.run(["git", "clone", "-q", str(self.path), str(dest)], check=True, env=self.env)
        return Project(dest, dict(self.env))


def project_files() -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"], check=True, capture_output=True
    ).stdout.decode()
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


# What every copy changes so that a test never pays for the default's pre-training (a minute on 2 cores): the
# pretrain stage still runs, on the real code path, for two steps of a small model, and the generated statute
# Q&A hold out a handful of articles, so the test splits stay a few dozen questions.
FAST_PARAMS = {"pretrain": {"steps": 2, "eval_every": 2, "hidden_size": 64, "intermediate_size": 128},
               "statute_qa": {"val_fraction": 0.005, "test_fraction": 0.005}}


def copy_project(dest: Path, home: Path, fast: bool = True) -> Project:
    """Copy the project into `dest`, make it a git repo with one commit, and return it; `fast`: FAST_PARAMS."""
    for rel in project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    (dest / "data" / "raw").mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    project = Project(dest, hermetic_env(home))
    for section, values in (FAST_PARAMS if fast else {}).items():
        project.update_params(section, **values)
    project.run("git", "init", "-q")
    project.commit("project copy")
    return project


def small_project(dest: Path, home: Path) -> Project:
    """A copy whose sample is the eight QA pairs of tests/conftest.py, with fast params (two training steps, eight
    new tokens, BM25 only), committed: the whole pipeline in a couple of minutes on the tiny model."""
    from tests.conftest import QA
    from vietlegal.model import tiny

    project = copy_project(dest, home)
    project.env["VIETLEGAL_CACHE"] = str(tiny.cache_root())  # reuse the built tiny model
    sample = project.path / "data" / "sample" / "legal_qa.jsonl"
    sample.write_text("".join(json.dumps({"question": q, "answer": a}, ensure_ascii=False) + "\n" for q, a in QA),
                      encoding="utf-8")
    project.update_params("prepare", val_fraction=0.25, test_fraction=0.25)
    project.update_params("train", max_steps=2, batch_size=2, eval_steps=2, save_steps=2, logging_steps=1)
    project.update_params("generate", max_new_tokens=8)
    project.update_params("rag", dense=False)  # train follows ground, which follows index: BM25 builds in a second
    project.commit("small sample, fast params")
    return project
