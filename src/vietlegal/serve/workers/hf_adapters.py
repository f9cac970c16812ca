"""The adapters the HF worker holds over its one copy of the base, and when it may drop one.

A version being replaced or unloaded is only dropped once no sequence decodes on it any more, so a request
always finishes on the version it started with. With a single adapter merged into the base (the fast path)
there is nothing to load or unload.
"""
from __future__ import annotations

from collections import Counter

from vietlegal.model import mixed_lora
from vietlegal.model.adapter import BASE_ADAPTER
from vietlegal.serve.log import logger


class WorkerAdapters:
    def __init__(self, model, merged: bool):
        self.model, self.merged = model, merged
        self.in_use: Counter[str] = Counter()
        self.retiring: set[str] = set()

    def names(self) -> set[str]:
        return set() if self.merged else set(self.model.peft_config)

    def load(self, key: str, path: str) -> None:
        if self.merged:
            raise RuntimeError("the only adapter is merged into the base; nothing else can be loaded")
        self.retiring.discard(key)
        if key not in self.model.peft_config:
            self.model.load_adapter(path, adapter_name=key)
            self.model.eval()
            mixed_lora.changed(self.model)
        logger.info("worker loaded adapter %s from %s", key, path)

    def unload(self, key: str) -> None:
        if key not in self.names():
            return
        self.retiring.add(key)
        self._drop_retired()

    def acquire(self, key: str | None) -> None:
        if key is None:
            return
        if key not in self.names() and key != BASE_ADAPTER:
            raise KeyError(key)
        self.in_use[key] += 1

    def release(self, key: str | None) -> None:
        if key is None:
            return
        self.in_use[key] -= 1
        if self.in_use[key] <= 0:
            del self.in_use[key]
            self._drop_retired()

    def _drop_retired(self) -> None:
        for key in sorted(self.retiring):
            if not self.in_use.get(key) and len(self.model.peft_config) > 1:
                self.model.delete_adapter(key)
                mixed_lora.changed(self.model)
                self.retiring.discard(key)
                logger.info("worker dropped adapter %s (no sequence uses it)", key)
