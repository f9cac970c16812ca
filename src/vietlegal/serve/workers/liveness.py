"""Which inference worker process is the current one, shared by the worker and the HTTP process.

The worker records itself when its setup starts (pid, and one more generation); LitServe's monitor
(`restart_workers=True`) starts a new worker when one dies. The HTTP process reads this to answer /health (503
while no live worker holds the model) and to fail, with a 503 the client may retry, every request that was in
flight when a new generation started: those were lost with the dead worker, and nothing else would ever end them.
"""
from __future__ import annotations

import multiprocessing as mp
import os


class Liveness:
    def __init__(self):
        ctx = mp.get_context("spawn")  # the worker is spawned: these travel with its LitAPI (inheritance, as allowed)
        self._generation = ctx.Value("i", 0)
        self._pid = ctx.Value("i", 0)
        self._ready = ctx.Value("i", 0)

    def starting(self) -> None:
        """In the worker, before it loads the model."""
        with self._generation.get_lock():
            self._generation.value += 1
            self._pid.value, self._ready.value = os.getpid(), 0

    def ready(self) -> None:
        """In the worker, once the model is loaded."""
        self._ready.value = 1

    @property
    def generation(self) -> int:
        return self._generation.value

    def alive(self) -> bool:
        """A worker has loaded the model and its process is running (not gone, not a zombie awaiting its reaper)."""
        if not self._ready.value:
            return False
        return process_running(self._pid.value)


def process_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
