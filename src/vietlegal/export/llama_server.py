"""llama.cpp's server (`llama-server`, OpenAI-compatible) on a GGUF file, as a child process on 127.0.0.1.

What the export stage scores each format through, what the tests compare with `vietlegal serve`, and what an
in-house machine runs by hand (docs/export.md gives the command line). Started on enter, healthy (model loaded)
before it returns, stopped on exit.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from vietlegal.child_server import HOST, free_port, health
from vietlegal.errors import ExportError
from vietlegal.export.llama_cpp import LlamaCpp

ALIAS = "vietlegal"  # the model name the server answers to (and reports)
# Llama-3.1's template writes "Today Date: {date_string}", "26 Jul 2024" when the renderer gives none (transformers,
# so training, evaluation and `vietlegal serve`); llama.cpp gives today's date, which would change every prompt
# every day. Pinned to the template's own default, the prompts are the ones the model was trained and scored on.
TEMPLATE_DATE = "26 Jul 2024"
CHAT_TEMPLATE_KWARGS = '{"date_string": "%s"}' % TEMPLATE_DATE


class LlamaServer:
    def __init__(self, llama: LlamaCpp, gguf: Path, log: Path, threads: int | None = None, context: int = 4096,
                 extra_args: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = Path(log)
        # One slot: requests run one after another on one KV cache, the same numbers every run. --jinja renders
        # the GGUF's own chat template (tokenizer.chat_template), not a built-in approximation of it.
        self.cmd = [str(llama.server), "-m", str(gguf), "--host", HOST, "--port", str(self.port), "--alias", ALIAS,
                    "-c", str(context), "-np", "1", "-t", str(threads or os.cpu_count() or 1), "--jinja",
                    "--chat-template-kwargs", CHAT_TEMPLATE_KWARGS, "--no-webui", *extra_args]
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 120) -> LlamaServer:
        self.log = open(self.log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise ExportError(f"llama-server exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.health() == 200:  # 503 while the model loads
                return self
            time.sleep(0.2)
        self.stop()
        raise ExportError(f"llama-server not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def health(self) -> int | None:
        return health(self.port)

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
        self.proc = None
