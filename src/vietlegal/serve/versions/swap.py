"""Loading, switching and unloading adapter versions while the server runs (admin endpoints and `--watch`).

A version is copied to a private snapshot first and checked there (every file the manifest lists, with its
md5), so a directory that `dvc pull` or `cp` is still writing is never loaded, and nothing that changes on disk
afterwards can change what the worker holds. The worker loads it (the control message travels the request
queue, so it is in place before any request for it), then the name moves to the new version. Requests already
queued or decoding keep the version they resolved to: the worker drops old weights only once no sequence
uses them.
"""
from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from vietlegal.errors import AdapterError, AdapterIncomplete
from vietlegal.model import adapter
from vietlegal.serve.versions.catalog import Catalog, Served, check_adapter
from vietlegal.serve.log import logger
from vietlegal.serve.protocol.piece import Piece
from vietlegal.serve.versions.version import MERGED_SOURCE, adapter_version

SendControl = Callable[[dict], Awaitable[Piece]]  # a control payload to the worker -> its last piece


class Swapper:
    def __init__(self, catalog: Catalog, tokenizer, send: SendControl, snapshots: Path | None = None):
        self.catalog, self.tokenizer, self.send = catalog, tokenizer, send
        self.snapshots = Path(snapshots or tempfile.mkdtemp(prefix="vietlegal-adapters-"))
        self.lock = asyncio.Lock()  # one change at a time: two loads of one name must not interleave
        self.loaded: dict[str, Path] = {}  # worker key -> the snapshot it was loaded from
        self.held: set[str] = catalog.keys_in_use()  # the versions the worker holds (those of the start included)
        self.loop: asyncio.AbstractEventLoop | None = None  # the HTTP process's, where every change runs
        catalog.on_unused = self._on_unused

    async def load(self, name: str, path: str | Path) -> Served:
        """Serve `path` as `name` (new name, or the name's next version). AdapterError says why not; the name's
        old version keeps serving then."""
        self.loop = asyncio.get_running_loop()
        self.catalog.check_name(name)  # before anything is loaded
        if self.catalog.merged:
            raise AdapterError(fixed_model(self.catalog))
        async with self.lock:
            snapshot, served = await asyncio.to_thread(self._snapshot, name, Path(path))
            current = self.catalog.adapters.get(name)
            if current is not None and current.version == served.version:
                shutil.rmtree(snapshot, ignore_errors=True)
                return current
            if served.key in self.held:
                shutil.rmtree(snapshot, ignore_errors=True)  # the worker holds these weights already (another name)
            else:
                try:
                    await self._control({"control": "load", "adapter": served.key, "path": str(snapshot)})
                except AdapterError:
                    shutil.rmtree(snapshot, ignore_errors=True)
                    raise
                self.loaded[served.key] = snapshot
                self.held.add(served.key)
            old = self.catalog.put(served)
            logger.info("adapter %s now at %s (%s)%s", name, served.version.model_id, path,
                        f", was {old.version.model_id}" if old else "")
            if old is not None:
                await self._release(old.key)
            return served

    async def unload(self, name: str) -> Served:
        self.loop = asyncio.get_running_loop()
        async with self.lock:
            served = self.catalog.remove(name)
            await self._release(served.key)
            logger.info("adapter %s (%s) unloaded", name, served.version.model_id)
            return served

    def _snapshot(self, name: str, path: Path) -> tuple[Path, Served]:
        if not path.is_dir():
            raise AdapterError(f"{path}: not a directory")
        manifest = adapter.read_manifest(path)  # names the problem before anything is copied
        check_adapter(name, path, manifest)
        self.catalog.check_base(name, manifest)
        snapshot = self.snapshots / uuid.uuid4().hex
        try:
            shutil.copytree(path, snapshot)
        except (OSError, shutil.Error) as exc:  # a file replaced or removed mid-copy
            shutil.rmtree(snapshot, ignore_errors=True)
            raise AdapterIncomplete(f"{path}: changed while being read ({exc}); trying again") from None
        try:
            digests = adapter.file_digests(snapshot, manifest_too=True)  # read once: completeness and version
            manifest = adapter.check_complete(snapshot, digests)
            self.catalog.check_base(name, manifest)
            self._check_tokenizer(snapshot, manifest)
            # The snapshot's bytes name the version; dvc.lock, if any, is beside the source directory.
            version = adapter_version(snapshot, tracked_as=path, digests=digests)
        except AdapterError as exc:
            shutil.rmtree(snapshot, ignore_errors=True)
            raise type(exc)(str(exc).replace(str(snapshot), str(path))) from None  # name the user's directory
        return snapshot, Served(name, path, version, manifest)

    def _check_tokenizer(self, snapshot: Path, manifest) -> None:
        tokenizer = adapter.load_tokenizer(snapshot, manifest.base_model)
        if (tokenizer.get_vocab() != self.tokenizer.get_vocab()
                or tokenizer.chat_template != self.tokenizer.chat_template):
            raise AdapterError(f"{snapshot}: its tokenizer or chat template differs from the served adapters'; one "
                               "server renders every prompt with one template")

    async def _release(self, key: str) -> None:
        """Unload a version no name serves, unless requests resolved to it are still on their way: then the last of
        them does (Catalog.release -> _on_unused)."""
        if key in self.held and self.catalog.unused(key):
            # The worker frees the weights when its last sequence on them ends; the snapshot is already in memory.
            await self._control({"control": "unload", "adapter": key})
            snapshot = self.loaded.pop(key, None)
            if snapshot is not None:
                shutil.rmtree(snapshot, ignore_errors=True)
            self.held.discard(key)

    def _on_unused(self, key: str) -> None:
        """From any thread: the last request on an orphaned version is answered."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._release_locked(key)))

    async def _release_locked(self, key: str) -> None:
        async with self.lock:
            await self._release(key)

    def close(self) -> None:
        """At shutdown: the snapshots go (the worker's memory is all that used them)."""
        shutil.rmtree(self.snapshots, ignore_errors=True)

    async def _control(self, payload: dict) -> None:
        piece = await self.send({"id": f"control-{uuid.uuid4().hex[:12]}", **payload})
        if piece.error:
            raise AdapterError(f"the inference worker could not {payload['control']} the adapter: {piece.error}")


def fixed_model(catalog: Catalog) -> str:
    """Why a server that holds one plain model cannot load an adapter at run time, and how to start one that can."""
    served = next(iter(catalog.adapters.values()), None)
    if served is None:
        return ("this server serves the base alone (--model) and loads no adapter: start it with --model BASE "
                "--adapter NAME=DIR to serve adapters over it")
    if served.version.source == MERGED_SOURCE:
        return ("this server serves a merged model directory (--model), which takes no adapter: serve adapters with "
                "--adapter NAME=DIR over its base instead")
    return ("this server merged its only adapter into the base (the fast path) and cannot load another: start it "
            "with --watch, several adapters, or serve.merge_single_adapter: false")
