"""Switching versions in the HTTP process, with the worker's side recorded: what is loaded and unloaded, and when.
The real worker's side of the same messages is tests/serve/test_hf_adapters.py; the whole server,
tests/serve/test_versions_live.py."""
from __future__ import annotations

import asyncio
import json
import logging
import shutil

import pytest

from vietlegal.errors import AdapterError, AdapterIncomplete
from vietlegal.model import untrained
from vietlegal.params import TINY_MODEL_ID
from vietlegal.serve.versions.catalog import open_catalog
from vietlegal.serve.protocol.piece import Piece
from vietlegal.serve.versions.swap import Swapper
from vietlegal.serve.versions.version import BaseVersion, adapter_version
from vietlegal.serve.versions.watch import Watcher


@pytest.fixture(scope="module")
def versions(tmp_path_factory, tiny_base):
    root = tmp_path_factory.mktemp("swap")
    return {name: untrained.adapter(root / name, seed=seed) for name, seed in (("v1", 1), ("v2", 2), ("v3", 3))}


class Worker:
    """Records the control messages the worker would get, and answers them."""

    def __init__(self):
        self.got: list[tuple[str, str]] = []

    async def send(self, payload: dict) -> Piece:
        self.got.append((payload["control"], payload["adapter"]))
        return Piece(finish_reason="done")


def setup(tmp_path, versions, tiny_base, tiny_tokenizer):
    served = tmp_path / "served"
    shutil.copytree(versions["v1"], served)
    catalog = open_catalog(BaseVersion(TINY_MODEL_ID, tiny_base[1]), 2048, {"v": served}, {}, merged=False)
    worker = Worker()
    return served, catalog, worker, Swapper(catalog, tiny_tokenizer, worker.send, tmp_path / "snapshots")


def key(path) -> str:
    return adapter_version(path).hash


def test_a_version_in_use_by_a_request_resolved_before_the_switch_is_unloaded_only_after_it(
        tmp_path, versions, tiny_base, tiny_tokenizer):
    served, catalog, worker, swapper = setup(tmp_path, versions, tiny_base, tiny_tokenizer)

    async def scenario():
        early = catalog.acquire("v")  # resolved; its payload could still reach the queue after the switch
        await swapper.load("v", versions["v2"])
        assert worker.got == [("load", key(versions["v2"]))]  # v1 still has a request on its way: kept
        assert catalog.resolve("v").adapter == key(versions["v2"]) and early.adapter == key(versions["v1"])
        catalog.release(early)
        await asyncio.sleep(0.05)  # the release schedules the unload on the loop
        assert worker.got == [("load", key(versions["v2"])), ("unload", key(versions["v1"]))]
        late = catalog.acquire("v")
        await swapper.load("v", versions["v3"])  # nobody else on v2: unloaded at once... after `late` is answered
        assert worker.got[-1] == ("load", key(versions["v3"]))
        catalog.release(late)
        await asyncio.sleep(0.05)
        assert worker.got[-1] == ("unload", key(versions["v2"]))

    asyncio.run(scenario())
    assert not catalog.inflight


def test_reloading_the_served_version_or_another_name_at_it_loads_nothing(tmp_path, versions, tiny_base, tiny_tokenizer):
    served, catalog, worker, swapper = setup(tmp_path, versions, tiny_base, tiny_tokenizer)

    async def scenario():
        await swapper.load("v", served)
        await swapper.load("alias", versions["v1"])  # the same bytes under another name: shares the weights
        assert worker.got == []
        await swapper.unload("alias")
        assert worker.got == []  # "v" still serves them
        assert {s.key for s in catalog.adapters.values()} == {key(served)}

    asyncio.run(scenario())


def test_the_watcher_waits_for_a_half_written_version_and_refuses_a_broken_one(
        tmp_path, versions, tiny_base, tiny_tokenizer, caplog):
    served, catalog, worker, swapper = setup(tmp_path, versions, tiny_base, tiny_tokenizer)
    watcher = Watcher(swapper, every=3600)
    caplog.set_level(logging.INFO, logger="vietlegal.serve")

    async def scenario():
        watcher.seen = {"v": ()}  # as after run() started
        shutil.copy2(versions["v2"] / "vietlegal.json", served / "vietlegal.json")  # the manifest lands first
        await watcher.poll()
        assert worker.got == [] and catalog.resolve("v").version.hash == key(versions["v1"])
        assert "not complete yet" in caplog.text
        for f in versions["v2"].iterdir():
            shutil.copy2(f, served / f.name)
        await watcher.poll()
        assert worker.got == [("load", key(versions["v2"])), ("unload", key(versions["v1"]))]
        assert catalog.resolve("v").version.model_id == adapter_version(versions["v2"]).model_id

        # Complete (every md5 matches its manifest) but trained on another base revision: refused, v2 serves on.
        manifest = json.loads((served / "vietlegal.json").read_text(encoding="utf-8"))
        manifest["base"]["revision"] = "another"
        (served / "vietlegal.json").write_text(json.dumps(manifest), encoding="utf-8")
        await watcher.poll()
        assert "refused the new contents" in caplog.text and "another" in caplog.text
        assert catalog.resolve("v").version.hash == key(versions["v2"]) and len(worker.got) == 2
        await watcher.poll()  # refused once per state of the directory, not at every poll
        assert caplog.text.count("refused the new contents") == 1

    asyncio.run(scenario())


def test_a_half_copied_snapshot_names_the_users_directory(tmp_path, versions, tiny_base, tiny_tokenizer):
    served, catalog, worker, swapper = setup(tmp_path, versions, tiny_base, tiny_tokenizer)
    (served / "adapter_model.safetensors").write_bytes(b"truncated")
    with pytest.raises(AdapterIncomplete) as caught:
        asyncio.run(swapper.load("v", served))
    assert str(served) in str(caught.value) and "snapshots" not in str(caught.value)
    assert list((tmp_path / "snapshots").iterdir()) == []  # nothing left behind


def test_a_name_taken_by_a_route_is_refused_before_anything_loads(tmp_path, versions, tiny_base, tiny_tokenizer):
    served, catalog, worker, swapper = setup(tmp_path, versions, tiny_base, tiny_tokenizer)
    catalog.set_routes({"ab": {"v": 1.0}})
    with pytest.raises(AdapterError, match="taken"):
        asyncio.run(swapper.load("ab", versions["v2"]))
    assert worker.got == []
