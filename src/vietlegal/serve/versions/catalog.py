"""The models one server answers for, in the HTTP process: adapter versions over one base, the base itself,
and A/B routes. A request's `model` is resolved here to the adapter the worker decodes with and the version
that answers (named in the response, the log line and /metrics).

    names     adapter names (`--adapter NAME=DIR`, serve.adapters), each at one version at a time
    versions  `vietlegal-<hash>` pins exactly one served version
    routes    serve.routes: a public name with weights over adapter names, sticky per `user`
    base      the base model's id: the adapter off (not when a single adapter is merged into the base); the
              only name when the base is served alone (`--model BASE`)

Changes (a version loaded, switched or unloaded) replace the tables whole, so the request threads that read
them never see one half-updated. `acquire` resolves a request and counts it against its version until `release`:
a version's weights are unloaded only once no name points at it and no request that resolved to it is left
(a request resolved just before a switch may reach the worker's queue after it).
"""
from __future__ import annotations

import hashlib
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vietlegal.errors import AdapterError, ConfigError
from vietlegal.model.adapter import BASE_ADAPTER, AdapterManifest
from vietlegal.serve.protocol.errors import ApiError
from vietlegal.serve.versions.version import AdapterVersion, BaseVersion, merged_version

MODEL_ALIAS = "vietlegal"  # accepted besides the names: "the default model of this server"


@dataclass(frozen=True)
class Served:
    """One adapter name at its current version."""

    name: str
    path: Path  # where it is configured (and watched)
    version: AdapterVersion
    manifest: AdapterManifest

    @property
    def key(self) -> str:
        """The worker's name for the loaded weights: one per version, shared by names at the same version."""
        return self.version.hash


@dataclass(frozen=True)
class Target:
    """What a request resolved to: the worker's adapter (None: the merged or only model) and who answers."""

    adapter: str | None
    version: AdapterVersion | BaseVersion
    route: str | None = None


@dataclass
class Catalog:
    base: BaseVersion
    context: int  # every model here shares the base's context window
    # The worker holds one plain model, nothing to switch: a lone adapter folded into the base at load, a merged
    # directory (`--model`), or the base alone (`--model BASE`: no adapters). No base entry beside an adapter.
    merged: bool = False
    adapters: dict[str, Served] = field(default_factory=dict)
    routes: dict[str, dict[str, float]] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)  # route choice for requests without `user`
    inflight: Counter = field(default_factory=Counter)  # worker key -> requests resolved to it and not yet answered
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # request threads vs the event loop
    on_unused: object = None  # called with a worker key once no name and no request uses it (swap.Swapper sets it)

    # --- changes -------------------------------------------------------------------------------------------
    def check_base(self, name: str, manifest: AdapterManifest) -> None:
        if (manifest.base_model, manifest.base_revision) != (self.base.model_id, self.base.revision):
            raise AdapterError(f"adapter {name!r} was trained on {_base_name(manifest.base_model, manifest.base_revision)}"
                               f", but this server serves {_base_name(self.base.model_id, self.base.revision)}: every "
                               "adapter of one server must share the base model and revision")

    def check_name(self, name: str) -> None:
        if name in self.routes or name == self.base.model_id:
            raise AdapterError(f"adapter name {name!r} is taken by a route or the base model; pick another")

    def put(self, served: Served) -> Served | None:
        """Add a name, or move it to a new version; returns what it replaced."""
        self.check_base(served.name, served.manifest)
        self.check_name(served.name)
        with self.lock:
            old = self.adapters.get(served.name)
            self.adapters = {**self.adapters, served.name: served}
        return old

    def remove(self, name: str) -> Served:
        if name not in self.adapters:
            raise ApiError(404, f"The lora adapter '{name}' cannot be found (GET /v1/models)", "lora_name",
                           "model_not_found")
        users = sorted(route for route, weights in self.routes.items() if name in weights)
        if users:
            raise ApiError(409, f"adapter {name!r} is in route {users[0]!r} (serve.routes): change the route first",
                           "lora_name", "adapter_in_route")
        if len(self.adapters) == 1:
            raise ApiError(409, f"adapter {name!r} is the last one served; load another first", "lora_name",
                           "last_adapter")
        with self.lock:
            served = self.adapters[name]
            self.adapters = {k: v for k, v in self.adapters.items() if k != name}
        return served

    def set_routes(self, routes: dict[str, dict[str, float]]) -> None:
        for route, weights in routes.items():
            if route in self.adapters or route == self.base.model_id:
                raise ConfigError(f"serve.routes.{route}: the name is also an adapter or the base; pick another")
            unknown = sorted(set(weights) - set(self.adapters))
            if unknown:
                raise ConfigError(f"serve.routes.{route}: {unknown[0]!r} is not a served adapter (served: "
                                  f"{', '.join(sorted(self.adapters))})")
        self.routes = {route: dict(weights) for route, weights in routes.items()}

    def keys_in_use(self) -> set[str]:
        return {served.key for served in self.adapters.values()}

    def unused(self, key: str) -> bool:
        """No name serves this version and no request resolved to it is still on its way: it may be unloaded."""
        with self.lock:
            return key not in self.keys_in_use() and not self.inflight[key]

    def acquire(self, model: str | None, user: str | None = None) -> Target:
        """`resolve`, counted against the version until `release`."""
        with self.lock:
            target = self.resolve(model, user)
            if target.adapter not in (None, BASE_ADAPTER):
                self.inflight[target.adapter] += 1
        return target

    def release(self, target: Target) -> None:
        """The request is answered (or refused); the last one on a version no name serves lets it be unloaded."""
        key = target.adapter
        if key in (None, BASE_ADAPTER):
            return
        with self.lock:
            self.inflight[key] -= 1
            if self.inflight[key] <= 0:
                del self.inflight[key]
            orphaned = key not in self.keys_in_use() and not self.inflight[key]
        if orphaned and self.on_unused is not None:
            self.on_unused(key)

    # --- requests ------------------------------------------------------------------------------------------
    @property
    def default(self) -> str:
        """What a request without `model` (or with the alias) gets: the first route, else the first adapter, else
        the base served alone."""
        return next(iter(self.routes), None) or next(iter(self.adapters), self.base.model_id)

    def resolve(self, model: str | None, user: str | None = None) -> Target:
        adapters, routes = self.adapters, self.routes  # one consistent view
        name = self.default if model in (None, "") or (model == MODEL_ALIAS and model not in adapters) else model
        route = None
        if name in routes:
            route, name = name, pick(routes[name], name, user, self.rng)
        if name in adapters:
            return self._target(adapters[name], route)
        for served in adapters.values():
            if served.version.model_id == name:
                return self._target(served, None)
        if name == self.base.model_id and self.serves_base:
            return Target(None if self.merged else BASE_ADAPTER, self.base)
        raise ApiError(404, f"The model '{model}' does not exist; this server serves {', '.join(self.names())} "
                            "(GET /v1/models)", "model", "model_not_found")

    def _target(self, served: Served, route: str | None) -> Target:
        return Target(None if self.merged else served.key, served.version, route)

    @property
    def serves_base(self) -> bool:
        """The base answers: beside adapters kept apart, or alone; not when an adapter is folded into the weights."""
        return not self.merged or not self.adapters

    def names(self) -> list[str]:
        return [*self.routes, *self.adapters, *([self.base.model_id] if self.serves_base else [])]

    def models(self, created: int) -> list[dict]:
        """GET /v1/models entries, vLLM's fields plus the version each name answers with."""
        common = {"object": "model", "created": created, "owned_by": "vietlegal", "max_model_len": self.context}
        found = [{"id": route, **common, "root": route, "parent": self.base.model_id, "routes": weights}
                 for route, weights in self.routes.items()]
        found += [{"id": s.name, **common, "root": s.version.model_id, "parent": self.base.model_id,
                   "adapter_version": s.version.hash, "version_source": s.version.source} for s in self.adapters.values()]
        if self.serves_base:
            found.append({"id": self.base.model_id, **common, "root": self.base.model_id, "parent": None,
                          "adapter_version": None})
        return found


def open_catalog(base: BaseVersion, context: int, adapters: dict[str, Path], routes: dict[str, dict[str, float]],
                 merged: bool, whole: Served | None = None) -> Catalog:
    """The catalog a server starts with: every adapter checked (complete, same base), then the routes. `whole`: a
    merged directory served as it is (served_merged), with no adapters."""
    catalog = Catalog(base, context, merged=merged)
    if whole is not None:
        catalog.put(whole)
    for name, path in adapters.items():
        catalog.put(served_at(name, Path(path)))
    catalog.set_routes(routes)
    return catalog


def served_at(name: str, path: Path) -> Served:
    from vietlegal.model import adapter
    from vietlegal.serve.log import logger
    from vietlegal.serve.versions.version import adapter_version

    manifest = adapter.read_manifest(path)
    check_adapter(name, path, manifest)  # before its files are hashed
    digests = adapter.file_digests(path, manifest_too=True)  # read once: the completeness check and the version
    if manifest.files:
        adapter.check_complete(path, digests)
    else:
        logger.warning("adapter %s: %s/vietlegal.json lists no file md5s (trained before they were recorded): "
                       "a half-copied version of it could not be told apart", name, path)
    return Served(name, path, adapter_version(path, digests=digests), manifest)


def check_adapter(name: str, path: Path, manifest: AdapterManifest) -> None:
    """An adapter directory, not a merged model (whose LoRA weights are already folded into a whole model)."""
    if manifest.merged:
        raise AdapterError(f"adapter {name!r}: {path} is a merged model (vietlegal.json has `merged`), not an "
                           f"adapter: serve it alone with `vietlegal serve --model {path}`")


def served_merged(name: str, path: Path) -> Served:
    """A merged model directory (`vietlegal export`), complete (every file its manifest lists, with its md5), at the
    version of the adapter folded into it."""
    from vietlegal.model import adapter

    manifest = adapter.check_complete(path)
    return Served(name, path, merged_version(manifest, path), manifest)


def pick(weights: dict[str, float], route: str, user: str | None, rng: random.Random) -> str:
    """A weighted choice of adapter name; the same `user` always lands on the same name (for fixed weights)."""
    total = sum(weights.values())
    if user:
        digest = hashlib.sha256(f"{route}\0{user}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64 * total
    else:
        point = rng.random() * total
    for name, weight in weights.items():
        point -= weight
        if point < 0:
            return name
    return next(reversed(weights))  # float rounding at the very top


def _base_name(model: str, revision: str | None) -> str:
    return f"{model}@{revision}" if revision else model
