"""Graceful stop: on SIGTERM or SIGINT the server stops admitting requests, lets those in flight finish, then
exits 0, whether the signal reaches the main process alone (`docker stop`, `kill PID`, systemd's KillMode=mixed)
or every process of the group (systemd's default KillMode=control-group, Ctrl-C in a terminal, `kill -- -PGID`).

    main process       SIGTERM/SIGINT -> forwarded to the HTTP processes; once they are done, LitServe stops its
                       inference workers; a second signal stops at once
    LitServe's helpers the manager (request queue) and the ZeroMQ broker (worker -> HTTP messages) are forked from
                       the main process and inherit its handler, which ignores the signal there: a group signal
                       killed them and cut every stream in flight; LitServe ends them after the drain
    HTTP process       SIGTERM/SIGINT -> draining: every new request gets 503 with OpenAI's error object and
                       Retry-After; when nothing is in flight, or after serve.drain_seconds, uvicorn's own
                       handler runs and uvicorn exits
    inference worker   SIGTERM asks it to stop once it decodes nothing and the request queue has held nothing for
                       a wait (LitServe's own stop, or a group signal); what was queued before is answered first;
                       SIGINT is ignored
"""
from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from vietlegal.serve.log import logger
from vietlegal.serve.protocol.errors import ApiError

RETRY_AFTER_SECONDS = 5
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _State:
    draining = False
    in_flight = 0


STATE = _State()  # per HTTP process


class DrainGate:
    """ASGI middleware: counts the requests in flight and, while draining, answers new ones with 503."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if STATE.draining:
            error = ApiError(503, "the server is shutting down and takes no new requests; retry in a few seconds "
                                  "(on another replica if there is one)", None, "shutting_down",
                             headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
            await error.response()(scope, receive, send)
            return
        STATE.in_flight += 1
        try:
            await self.app(scope, receive, send)  # returns once a streamed body has been sent whole
        finally:
            STATE.in_flight -= 1


def install_http_handler(drain_seconds: float) -> None:
    """In the HTTP process, inside its event loop (after uvicorn installed its signal handlers): SIGTERM and SIGINT
    drain."""
    loop = asyncio.get_running_loop()
    uvicorn_exit = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def on_stop(signum, frame) -> None:
        if STATE.draining:
            return
        STATE.draining = True
        logger.info("%s: no new requests; draining %d in flight for at most %.0fs", signal.Signals(signum).name,
                    STATE.in_flight, drain_seconds)
        loop.call_soon_threadsafe(
            lambda: loop.create_task(_exit_when_drained(uvicorn_exit[signum], signum, drain_seconds)))

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_stop)


async def _exit_when_drained(uvicorn_exit, signum: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while STATE.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    logger.info("drained (%d request(s) still in flight); stopping", STATE.in_flight)
    if callable(uvicorn_exit):
        uvicorn_exit(signum, None)


def install_main_handler(drain_seconds: float) -> None:
    """In the main process, before LitServe forks its helpers (see the module doc)."""
    handler = main_process_handler(drain_seconds)
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)


def main_process_handler(drain_seconds: float):
    """The main process's handler: drain the HTTP processes, then let LitServe stop the rest. Inherited by the
    processes LitServe forks, where it does nothing."""
    main_pid, stopping = os.getpid(), []

    def on_stop(signum, frame) -> None:
        if os.getpid() != main_pid:
            return  # a forked helper (manager, broker): it ends when LitServe shuts down, after the drain
        if stopping:
            raise KeyboardInterrupt  # a second signal: stop now
        stopping.append(signum)
        servers = [p for p in mp.active_children() if p.name.startswith("LitServer-")]
        for process in servers:
            os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + drain_seconds + 10  # uvicorn's own close takes a moment after the drain
        for process in servers:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
        raise KeyboardInterrupt  # LitServe's shutdown: workers stopped, exit 0

    return on_stop


def ignore_sigterm_in_worker() -> None:
    """An inference worker ends when LitServe stops it, after the HTTP side drained (see the module doc)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def stop_requested_by_sigterm():
    """For a worker whose loop can tell when it is idle: SIGTERM only records the request (the loop stops once it
    decodes nothing and waited on an empty queue), since a request the HTTP side queued just before a group signal
    still has to be answered; exiting in the handler when the decoder was empty lost it. SIGINT stays ignored:
    Ctrl-C reaches the whole group, and the drain, not the worker, decides. Returns `requested()`."""
    requested: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: requested.append(signum))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return lambda: bool(requested)
