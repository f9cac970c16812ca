"""The DVC remote against a real S3 server (SeaweedFS on 127.0.0.1): round trip, faults, interrupted transfers.

Every test works in a throwaway copy of the project with the committed `.dvc/config` (remote `spaces`,
s3://legal-datalake/vietlegal); only the endpoint and the credentials are pointed at the test server,
with `dvc remote modify --local` or AWS_* variables, exactly as docs/remote.md tells a droplet to.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
import unicodedata
from pathlib import Path

import pytest
from configobj import ConfigObj

from tests.helpers.project_copy import BUCKET, CHECKSUM_ENV, PREFIX, REMOTE, ROOT, Project, copy_project, hermetic_env
from tests.helpers.s3server import ACCESS_KEY, SECRET_KEY, SeaweedS3, closed_port, running_space

LAWS = [
    {"question": "Nam nữ bao nhiêu tuổi thì được kết hôn?",
     "answer": "Theo Điều 8 Luật Hôn nhân và gia đình 2014, nam từ đủ 20 tuổi, nữ từ đủ 18 tuổi."},
    {"question": "Lao động nữ được nghỉ thai sản bao lâu?",
     "answer": "Theo Điều 139 Bộ luật Lao động 2019, lao động nữ được nghỉ thai sản 06 tháng."},
]


# -- fixtures -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """One SeaweedFS server with the Space `legal-datalake`, shared by the tests that do not stop it."""
    with running_space(tmp_path_factory.mktemp("seaweedfs"), BUCKET) as server:
        yield server


@pytest.fixture
def own_s3(tmp_path):
    """A server of this test's own, for tests that kill and restart it."""
    with running_space(tmp_path / "seaweedfs", BUCKET) as server:
        yield server


@pytest.fixture
def workstation(tmp_path) -> Project:
    return copy_project(tmp_path / "workstation", tmp_path / "home")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_text(unicodedata.normalize("NFC", text), encoding="utf-8")


def write_many(directory: Path, count: int, size: int = 65536) -> None:
    """`count` distinct files: enough objects that a push or pull is still running when the server dies."""
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (directory / f"part-{i:03d}.bin").write_bytes(os.urandom(size))


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tree_digest(root: Path) -> dict[str, str]:
    """Every file of a checkout except DVC's own state and git's: what a fault must leave untouched."""
    return {
        str(p.relative_to(root)): md5(p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != ".git"
        and not p.relative_to(root).as_posix().startswith((".dvc/tmp/", ".dvc/cache/"))
    }


def remote_keys(s3: SeaweedS3, client=None) -> list[str]:
    return s3.objects(BUCKET, f"{PREFIX}/files/md5/", client)


def key_md5(key: str) -> str:
    """s3://legal-datalake/vietlegal/files/md5/ab/cdef...[.dir] -> abcdef..."""
    *_, head, tail = key.split("/")
    return (head + tail).removesuffix(".dir")


def assert_remote_objects_intact(s3: SeaweedS3) -> None:
    """Every object's content hashes to its name: nothing half-written survived on the remote."""
    client = s3.client()
    for key in remote_keys(s3):
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert md5(body) == key_md5(key), f"{key} holds other bytes than its name says"


def count(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    assert found, f"no {pattern!r} in:\n{text}"
    return int(found.group(1))


# -- the committed configuration --------------------------------------------------------------------------

def test_committed_remote_is_the_spaces_bucket_and_holds_no_secret():
    config = ConfigObj(str(ROOT / ".dvc" / "config"))
    remote = config[f'remote "{REMOTE}"']
    assert config["core"]["remote"] == REMOTE
    assert remote["url"] == f"s3://{BUCKET}/{PREFIX}"
    # The endpoint names the region only; the bucket goes in the url (a bucket in both doubles it).
    region = re.fullmatch(r"https://([a-z]+\d)\.digitaloceanspaces\.com", remote["endpointurl"])
    assert region and remote["region"] == region.group(1)
    secret_keys = {"access_key_id", "secret_access_key", "session_token", "credentialpath"}
    assert not secret_keys & set(remote), "credentials belong in .dvc/config.local or AWS_* variables"
    assert "/config.local" in (ROOT / ".dvc" / ".gitignore").read_text().splitlines()
    # Safe for hand-edited files on every machine; hardlinks are a per-droplet choice (docs/remote.md).
    assert [t.strip() for t in config["cache"]["type"].split(",")] == ["reflink", "copy"]


def test_remote_check_names_an_unknown_remote_and_a_directory_outside_any_project(workstation, tmp_path):
    unknown = workstation.run("vietlegal", "remote", "check", "-r", "nope", check=False)
    assert unknown.returncode == 2
    assert "vietlegal remote check: error: DVC remote not configured" in unknown.stdout and "'nope'" in unknown.stdout
    elsewhere = workstation.run("vietlegal", "remote", "check", "--root", str(tmp_path / "home"), check=False)
    assert elsewhere.returncode == 2 and "is not a DVC project" in elsewhere.stdout


# -- round trip ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_push_then_a_fresh_clone_pulls_only_that_file_identical(s3, workstation, tmp_path):
    for option, value in (("endpointurl", s3.endpoint), ("access_key_id", ACCESS_KEY), ("secret_access_key", SECRET_KEY)):
        workstation.dvc("remote", "modify", "--local", REMOTE, option, value)
    write_jsonl(workstation.path / "data/raw/laws.jsonl", LAWS)
    write_jsonl(workstation.path / "data/raw/other.jsonl", LAWS[:1])
    workstation.dvc("add", "data/raw/laws.jsonl", "data/raw/other.jsonl")
    workstation.run("git", "add", "data/raw/laws.jsonl.dvc", "data/raw/other.jsonl.dvc", "data/raw/.gitignore")
    workstation.commit("track raw data")

    pushed = workstation.dvc("push")
    assert count(r"(\d+) files? pushed", pushed.stdout) == 2
    want = (workstation.path / "data/raw/laws.jsonl").read_bytes()
    assert md5(want) in {key_md5(k) for k in remote_keys(s3)}

    # Another machine: git clone, credentials from the seed's DO_SPACES_* names mapped to AWS_*.
    droplet = workstation.clone(tmp_path / "droplet")
    droplet.use_server(s3.endpoint)
    droplet.env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    assert not (droplet.path / "data/raw/laws.jsonl").exists()
    pulled = droplet.dvc("pull", "data/raw/laws.jsonl")
    assert count(r"(\d+) files? (?:added|fetched)", pulled.stdout) == 1
    assert (droplet.path / "data/raw/laws.jsonl").read_bytes() == want
    assert not (droplet.path / "data/raw/other.jsonl").exists(), "a targeted pull fetched more than asked"
    assert "in sync" in droplet.dvc("status", "-c", "data/raw/laws.jsonl.dvc").stdout
    assert droplet.run("git", "status", "--porcelain").stdout == "", "a pull changed git-tracked files"

    # The tracked file sits inside the prepare stage's data/raw dependency: the DAG links them.
    assert "data/raw/laws.jsonl.dvc" in droplet.dvc("dag", "prepare").stdout


@pytest.mark.slow
def test_remote_check_passes_with_read_and_write_access(s3, workstation):
    workstation.use_server(s3.endpoint, ACCESS_KEY, SECRET_KEY)
    out = workstation.run("vietlegal", "remote", "check", "--write")
    assert out.stdout.startswith(f"ok: remote '{REMOTE}' (s3://{BUCKET}/{PREFIX} at {s3.endpoint}): read and write")
    assert "warning" not in out.stdout
    assert not [k for k in s3.objects(BUCKET, PREFIX) if ".vietlegal-check" in k], "the probe object was left"

    # Without the botocore checksum settings the check still passes, and says what is missing (dvc#10695).
    workstation.env = {k: v for k, v in workstation.env.items() if k not in CHECKSUM_ENV}
    out = workstation.run("vietlegal", "remote", "check")
    assert "warning: AWS_REQUEST_CHECKSUM_CALCULATION and AWS_RESPONSE_CHECKSUM_VALIDATION not set" in out.stdout


# -- faults: each gives DVC's message and `vietlegal remote check`'s, and changes nothing -------------------

def no_credentials(project: Project, s3: SeaweedS3) -> None:
    project.use_server(s3.endpoint)


def wrong_credentials(project: Project, s3: SeaweedS3) -> None:
    project.use_server(s3.endpoint, ACCESS_KEY, "not-the-secret")


def wrong_endpoint(project: Project, s3: SeaweedS3) -> None:
    project.use_server(f"http://127.0.0.1:{closed_port()}", ACCESS_KEY, SECRET_KEY)


def missing_bucket(project: Project, s3: SeaweedS3) -> None:
    project.use_server(s3.endpoint, ACCESS_KEY, SECRET_KEY)
    project.dvc("remote", "modify", "--local", REMOTE, "url", f"s3://no-such-space/{PREFIX}")


FAULTS = {
    "no credentials": (no_credentials, "Unable to locate credentials",
                       "no credentials for remote 'spaces'.*AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    "wrong credentials": (wrong_credentials, r"Forbidden|403",
                          "credentials rejected by http://127.0.0.1:\\d+ .*for bucket 'legal-datalake'"),
    "wrong endpoint": (wrong_endpoint, r"Could not connect to the endpoint URL: \"http://127.0.0.1:\d+",
                       r"cannot connect to http://127.0.0.1:\d+ for remote 'spaces'.*endpointurl"),
    "missing bucket": (missing_bucket, r"NoSuchBucket|specified bucket does not exist",
                       "bucket 'no-such-space' does not exist at http://127.0.0.1:\\d+"),
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
def test_fault_gives_a_clear_message_and_leaves_everything_as_it_was(fault, s3, workstation):
    setup, dvc_says, check_says = FAULTS[fault]
    write_jsonl(workstation.path / "data/raw/laws.jsonl", LAWS)
    workstation.dvc("add", "data/raw/laws.jsonl")
    workstation.commit("track raw data")
    setup(workstation, s3)
    before, objects = tree_digest(workstation.path), remote_keys(s3)

    pushed = workstation.dvc("push", check=False)
    assert pushed.returncode != 0
    assert re.search(dvc_says, pushed.stdout), pushed.stdout

    checked = workstation.run("vietlegal", "remote", "check", check=False)
    assert checked.returncode == 2
    lines = [line for line in checked.stdout.splitlines() if line.startswith("vietlegal remote check: error:")]
    assert len(lines) == 1 and re.search(check_says, lines[0]), checked.stdout
    assert "Traceback" not in checked.stdout

    assert tree_digest(workstation.path) == before
    assert workstation.run("git", "status", "--porcelain").stdout == ""
    assert remote_keys(s3) == objects


# -- interrupted transfers -----------------------------------------------------------------------------------

def signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:  # it has exited already; the caller's checks say so
        pass


def kill_when(s3: SeaweedS3, started, unfinished, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Kill the server once `started()` holds, with `proc` frozen (SIGSTOP) from that check to the kill.

    Unfrozen, a check slowed down by a busy 2-core box let a whole push finish before the kill (seen in CI);
    `unfinished()`, asked while `proc` is frozen, proves the transfer really is cut short."""
    deadline = time.monotonic() + timeout
    while not started():
        assert proc.poll() is None, "the transfer finished before the server could be stopped: add files"
        assert time.monotonic() < deadline, "the transfer never got going"
        time.sleep(0.05)
    signal_group(proc, signal.SIGSTOP)
    try:
        assert proc.poll() is None and unfinished(), "the transfer finished before the server could be stopped: add files"
        s3.kill()
    finally:
        signal_group(proc, signal.SIGCONT)


def start(project: Project, *args: str, **env: str) -> subprocess.Popen:
    """`args` in a process group of its own, so that freezing it freezes every thread and child it has."""
    return subprocess.Popen(args, cwd=project.path, env={**project.env, **env}, text=True, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


# botocore retries a refused connection ~10 s per file by default; one attempt keeps this test short.
# (On a droplet, a push to a dead endpoint can take minutes to give up; Ctrl-C is safe, see docs/remote.md.)
FAIL_FAST = {"AWS_MAX_ATTEMPTS": "1"}
JOBS = 2  # transfers in flight at once


@pytest.mark.slow
def test_server_killed_mid_push_then_the_rerun_uploads_only_what_is_missing(own_s3, workstation):
    workstation.use_server(own_s3.endpoint, ACCESS_KEY, SECRET_KEY)
    write_many(workstation.path / "data/raw/archive", 200)
    workstation.dvc("add", "data/raw/archive")
    workstation.commit("track an archive")
    before = tree_digest(workstation.path)

    client = own_s3.client()  # one, made before the push: a new one per check costs the CPU the push needs
    push = start(workstation, "dvc", "push", "-j", str(JOBS), **FAIL_FAST)
    # Fewer than 201 - JOBS stored while the push is frozen: at least one upload cannot have happened.
    kill_when(own_s3, lambda: len(remote_keys(own_s3, client)) >= 10,
              lambda: len(remote_keys(own_s3, client)) < 201 - JOBS, push)
    out = push.communicate(timeout=300)[0]
    assert push.returncode != 0, out
    failed = count(r"failed to push data to the cloud - (\d+) files? failed to upload", out)
    assert "Could not connect to the endpoint URL" in out
    assert tree_digest(workstation.path) == before, "a failed push changed the workspace"

    own_s3.start()
    present = len(remote_keys(own_s3))
    missing = 201 - present  # 200 files + the .dir listing
    assert 10 <= present < 201
    # Every missing object was reported failed (nothing lost silently). An upload in flight when the server
    # died may have been stored before its reply was lost: reported failed, yet present (seen once in CI).
    assert missing <= failed <= missing + JOBS, (failed, missing)
    assert_remote_objects_intact(own_s3)

    rerun = workstation.dvc("push")
    assert count(r"(\d+) files? pushed", rerun.stdout) == missing
    assert len(remote_keys(own_s3)) == 201
    assert_remote_objects_intact(own_s3)
    assert "in sync" in workstation.dvc("status", "-c", "data/raw/archive.dvc").stdout
    assert tree_digest(workstation.path) == before


@pytest.mark.slow
def test_server_killed_mid_pull_leaves_no_half_written_file_and_the_rerun_completes(own_s3, workstation, tmp_path):
    workstation.use_server(own_s3.endpoint, ACCESS_KEY, SECRET_KEY)
    archive = workstation.path / "data/raw/archive"
    write_many(archive, 200)
    workstation.dvc("add", "data/raw/archive")
    workstation.commit("track an archive")
    workstation.dvc("push")
    want = {p.name: md5(p.read_bytes()) for p in archive.iterdir()}

    droplet = workstation.clone(tmp_path / "droplet")
    droplet.use_server(own_s3.endpoint, ACCESS_KEY, SECRET_KEY)
    cache = droplet.path / ".dvc" / "cache"

    def cached() -> int:
        return sum(1 for p in cache.rglob("*") if p.is_file())

    pull = start(droplet, "dvc", "pull", "-j", "2", "data/raw/archive", **FAIL_FAST)
    kill_when(own_s3, lambda: cached() >= 10, lambda: cached() < 201, pull)  # 200 files + the .dir listing
    out = pull.communicate(timeout=300)[0]
    assert pull.returncode != 0, out
    assert re.search(r"failed to pull data from the cloud|files? failed to download", out), out

    # Whatever reached the workspace is whole; a file either is there with its right bytes or is not there.
    got = droplet.path / "data/raw/archive"
    partial = {p.name: md5(p.read_bytes()) for p in got.iterdir()} if got.exists() else {}
    assert all(want[name] == digest for name, digest in partial.items()), "a half-written file in the workspace"

    own_s3.start()
    droplet.dvc("pull", "data/raw/archive")
    assert {p.name: md5(p.read_bytes()) for p in got.iterdir()} == want


# -- cache link types ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_hardlinked_cache_survives_a_stage_that_rewrites_its_output(tmp_path):
    """The droplet setting (cache.type hardlink): `dvc repro` deletes a stage's outputs before running it,
    so a rewritten output gets a new inode and the cached copy of the old one keeps its bytes."""
    project = Project(tmp_path / "repo", hermetic_env(tmp_path / "home"))
    project.path.mkdir()
    project.run("git", "init", "-q")
    project.dvc("init", "-q")
    project.dvc("config", "cache.type", "hardlink")
    (project.path / "params.yaml").write_text("text: first\n")
    project.dvc("stage", "add", "-q", "-n", "write", "-p", "text", "-o", "out",
                "python -c \"import yaml,os; os.makedirs('out', exist_ok=True); "
                "open('out/adapter.bin','w').write(yaml.safe_load(open('params.yaml'))['text'] * 1000)\"")
    project.dvc("repro", "-q")
    first = project.path / "out" / "adapter.bin"
    assert first.stat().st_nlink == 2, "the output is not hardlinked to the cache"
    cached = [p for p in (project.path / ".dvc/cache/files/md5").rglob("*") if p.is_file() and not p.name.endswith(".dir")]
    assert len(cached) == 1

    (project.path / "params.yaml").write_text("text: second\n")
    project.dvc("repro", "-q")
    assert first.read_text() == "second" * 1000
    assert md5(cached[0].read_bytes()) == key_md5(str(cached[0].relative_to(project.path / ".dvc/cache")))
