"""`vietlegal serve --watch`: a new version landing in an adapter's directory is loaded and its name moved to it.

Every `serve.watch_seconds` each served name's directory is looked at (file names, sizes and mtimes: cheap).
When that changes, the server tries to load it (swap.py): a directory still being written fails the manifest's
md5 check and is tried again at the next change or poll; one that is complete but cannot be served (another
base, a broken file) is refused with its reason in the log, once per state of the directory. Until a load
succeeds the old version keeps answering.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

from vietlegal.errors import AdapterError, AdapterIncomplete
from vietlegal.serve.log import logger
from vietlegal.serve.versions.swap import Swapper


def signature(path: Path) -> tuple:
    """What changes when anything in the directory is written, replaced or removed."""
    try:
        return tuple(sorted((p.relative_to(path).as_posix(), st.st_size, st.st_mtime_ns)
                            for p in path.rglob("*") if p.is_file() and (st := p.stat())))
    except OSError:  # a file vanished while listing: being replaced right now
        return ("changing",)


class Watcher:
    def __init__(self, swapper: Swapper, every: float):
        self.swapper, self.every = swapper, every
        self.seen: dict[str, tuple] = {}  # name -> the directory signature last handled (loaded or refused)
        self.waiting: dict[str, tuple] = {}  # name -> signature of a half-written directory, to retry

    async def run(self) -> None:
        for name, served in self.swapper.catalog.adapters.items():
            self.seen[name] = await asyncio.to_thread(signature, served.path)
        while True:
            await asyncio.sleep(self.every)
            await self.poll()

    async def poll(self) -> None:
        for name, served in list(self.swapper.catalog.adapters.items()):
            now = await asyncio.to_thread(signature, served.path)
            if now == self.seen.get(name):
                continue
            try:
                fresh = await self.swapper.load(name, served.path)
            except AdapterError as exc:
                if isinstance(exc, AdapterIncomplete):
                    if self.waiting.get(name) != now:
                        logger.info("adapter %s: %s is not complete yet (%s); still serving %s", name, served.path,
                                    exc, served.version.model_id)
                    self.waiting[name] = now
                    continue  # not marked seen: tried again at the next poll
                logger.error("adapter %s: refused the new contents of %s: %s; still serving %s", name, served.path, exc,
                             served.version.model_id)
            else:
                if fresh.version != served.version:
                    logger.info("adapter %s: new version %s picked up from %s", name, fresh.version.model_id,
                                served.path)
            self.waiting.pop(name, None)
            self.seen[name] = now

