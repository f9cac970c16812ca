"""Run `vietlegal serve` as a child process on 127.0.0.1 and wait until /health says it is loaded.

Used by the tests and benchmarks/bench_serve.py. The server runs in its own process group
(LitServe adds a manager, an inference worker and a uvicorn process), and `stop` ends exactly
that group: SIGTERM, then SIGKILL after a grace period.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from vietlegal.child_server import HOST, free_port, health


class ServerProcess:
    def __init__(self, adapter: str | Path | list[str], log_path: str | Path, api_key: str | None = None,
                 params: str | Path | None = None, port: int | None = None, cwd: str | Path | None = None,
                 env: dict | None = None, extra_args: tuple[str, ...] = ()):
        """`adapter`: a directory, or a list of `--adapter` values (DIR or NAME=DIR)."""
        self.port = port or free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.api_key, self.log_path = api_key, Path(log_path)
        adapters = [str(adapter)] if isinstance(adapter, (str, Path)) else list(adapter)
        self.cmd = [sys.executable, "-m", "vietlegal.cli", "serve", *(a for value in adapters for a in ("--adapter", value)),
                    "--host", HOST, "--port", str(self.port), *extra_args]
        if params:
            self.cmd += ["--params", str(params)]
        self.env = {**os.environ, **(env or {})}
        if api_key:
            self.env["VIETLEGAL_API_KEY"] = api_key  # by environment: the key stays out of `ps`
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> ServerProcess:
        self.log = open(self.log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"vietlegal serve exited with {code}; log:\n{self.log_text()}")
            if self.health() == 200:
                return self
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"vietlegal serve not healthy after {timeout:.0f}s; log:\n{self.log_text()}")

    def health(self) -> int | None:
        return health(self.port)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def stop(self, grace: float = 15) -> None:
        """SIGTERM the server's process group (LitServe shuts down its children), SIGKILL what is left."""
        if self.proc is None:
            return
        group = self.proc.pid  # start_new_session: the group id is the server's pid
        _signal_group(group, signal.SIGTERM)
        if not _wait_group(self.proc, grace):
            _signal_group(group, signal.SIGKILL)
            _wait_group(self.proc, 5)
        self.log.close()
        self.proc = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass


def _wait_group(proc: subprocess.Popen, seconds: float) -> bool:
    """True once the leader is reaped and no process of its group is left (bounded wait)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        proc.poll()
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False
