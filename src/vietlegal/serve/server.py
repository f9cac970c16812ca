"""Wire the pieces into one LitServer: spec (HTTP side), LitAPI (worker side), limits, errors."""
from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
from pathlib import Path

import litserve as ls
from starlette.middleware.cors import CORSMiddleware

from vietlegal.errors import ConfigError, HardwareError
from vietlegal.model.base import ResolvedBase
from vietlegal.params import SERVE_BACKENDS, ServeConfig
from vietlegal.serve.http import drain
from vietlegal.serve.protocol import errors as protocol
from vietlegal.serve.review import routes as review_routes
from vietlegal.serve.versions.catalog import Catalog, open_catalog
from vietlegal.serve.http.drain import DrainGate
from vietlegal.serve.workers.hf_loop import HFLoop
from vietlegal.serve.workers.hf import HFChatAPI
from vietlegal.serve.http.limits import BodyLimit
from vietlegal.serve.versions.model_info import ModelInfo
from vietlegal.serve.protocol.convert import Validator
from vietlegal.serve.http.routes import ChatSpec
from vietlegal.serve.versions.whole_model import WholeModel
from vietlegal.serve.versions.watch import Watcher
from vietlegal.serve.log import logger
from vietlegal.serve.workers.base import ChatAPI
from vietlegal.serve.workers.liveness import Liveness


def build(info: ModelInfo, adapters: dict[str, Path], cfg: ServeConfig, api_key: str | None, system_prompt: str | None,
          grounder=None, watch: bool = False, whole: WholeModel | None = None) -> ls.LitServer:
    """`info`: the first adapter's (tokenizer, base, context), or the whole model's; `adapters`: name -> directory,
    served together; `grounder`: vietlegal.serve.grounding's retrieval step (None: answer closed-book); `watch`:
    pick up new versions written into the adapters' directories; `whole`: a model served as it is (`--model`: a
    merged directory or a base alone), with no adapters."""
    merged = whole is not None or (cfg.backend == "hf" and cfg.merge_single_adapter and len(adapters) == 1
                                   and not watch)
    catalog = open_catalog(info.base, info.context, adapters, cfg.routes, merged, whole.served if whole else None)
    validator = Validator(info.tokenizer, info.context, cfg.max_new_tokens, catalog, system_prompt, grounder,
                          info.vocab_size)
    cancel_queue = mp.get_context("spawn").Queue()  # HTTP process -> worker: ids of requests whose client left
    liveness = Liveness()
    spec = ChatSpec(validator, catalog, cfg.max_body_bytes, cancel_queue, cfg.max_queued, admin_key=api_key,
                    liveness=liveness)
    api, accelerator, devices = make_api(cfg, {} if whole else worker_adapters(catalog), api_key, cancel_queue, spec,
                                         merged, liveness, whole.model if whole else None)
    server = ls.LitServer(
        api,
        accelerator=accelerator,
        devices=devices,
        workers_per_device=1,  # one copy of the model; concurrency comes from batching
        fast_queue=True,  # ZMQ for worker -> HTTP messages: no manager round trip per streamed piece
        timeout=cfg.queue_timeout,
        restart_workers=True,  # a worker that dies is started again (workers/liveness.py tells the HTTP side)
        middlewares=middlewares(cfg),
        model_metadata={"models": catalog.names(), "base": info.base.model_id},
    )
    protocol.install(server.app)
    review_routes.install(server.app, api_key=api_key, feedback_dir=cfg.feedback_dir, grounder=grounder,
                          enabled=cfg.review_page, max_body_bytes=cfg.max_body_bytes)
    on_start(server, cfg.drain_seconds, spec, Watcher(spec.swapper, cfg.watch_seconds) if watch else None)
    return server


def worker_adapters(catalog: Catalog) -> dict[str, str]:
    """What the worker loads at start: each served version once (names at one version share it)."""
    return {served.key: str(served.path) for served in catalog.adapters.values()}


def on_start(server: ls.LitServer, drain_seconds: float, spec: ChatSpec, watcher: Watcher | None) -> None:
    """Each HTTP process installs the draining signal handlers as it starts, runs the watchers (adapter versions,
    the worker's liveness) while it serves, and removes the loaded versions' snapshots when it stops (LitServe's
    lifespan, wrapped)."""
    litserve_lifespan = server.app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app):
        drain.install_http_handler(drain_seconds)
        async with litserve_lifespan(app):
            tasks = [asyncio.create_task(watch_worker(spec))]
            if watcher:
                tasks.append(asyncio.create_task(watcher.run()))
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                spec.swapper.close()

    server.app.router.lifespan_context = lifespan


async def watch_worker(spec: ChatSpec, every: float = 0.2) -> None:
    """A new worker generation means the old worker died with whatever it held: fail those requests now (503,
    retryable) instead of leaving their clients waiting forever."""
    seen = spec.liveness.generation
    while True:
        await asyncio.sleep(every)
        now = spec.liveness.generation
        if now != seen:
            failed = spec.fail_in_flight("the inference worker stopped unexpectedly and was restarted; retry")
            logger.error("inference worker restarted (generation %d); %d request(s) in flight failed with 503", now,
                         failed)
            seen = now


def middlewares(cfg: ServeConfig) -> list[tuple[type, dict]]:
    """The body limit, and CORS for the origins in serve.cors_origins: a browser's preflight is answered here,
    before the routes, so it needs no key; the request that follows still does."""
    found: list[tuple[type, dict]] = [(BodyLimit, {"max_bytes": cfg.max_body_bytes}), (DrainGate, {})]
    if cfg.cors_origins:
        found.append((CORSMiddleware, {"allow_origins": list(cfg.cors_origins), "allow_methods": ["GET", "POST"],
                                       "allow_headers": ["Authorization", "Content-Type"], "max_age": 600}))
    return found


def make_api(cfg: ServeConfig, adapters: dict[str, str], api_key: str | None, cancel_queue,
             spec: ChatSpec, merged: bool = True, liveness: Liveness | None = None,
             whole: ResolvedBase | None = None) -> tuple[ChatAPI, str, int | str]:
    """(the LitAPI for serve.backend, LitServe's accelerator, its devices); `whole`: the model the worker loads as it
    is, instead of `adapters` over their base."""
    if cfg.backend == "hf":
        # Continuous batching (hf_loop.py): no batch window; max_batch_size bounds the sequences in flight.
        api = HFChatAPI(adapters, api_key, cancel_queue, liveness, whole, max_batch_size=cfg.max_batch_size, spec=spec,
                        cpu_threads=cfg.cpu_threads, loop=HFLoop(), merge=merged)
        return api, "auto", "auto"
    if cfg.backend == "vllm":
        if not cuda_available():
            raise HardwareError("serve.backend vllm needs a CUDA GPU (and `pip install vllm`); on this machine use "
                                "serve.backend: hf")
        from vietlegal.serve.workers.vllm import VLLMChatAPI

        # LitServe cannot batch async APIs; vLLM batches continuously itself. One LitServe worker: with
        # tensor parallelism vLLM starts a process per GPU itself (a LitServe worker per GPU would fight it).
        api = VLLMChatAPI(adapters, api_key, cancel_queue, liveness, whole, max_batch_size=1, enable_async=True, spec=spec,
                          max_num_seqs=cfg.max_num_seqs, tensor_parallel_size=cfg.tensor_parallel_size,
                          max_loras=cfg.max_adapters, max_lora_rank=cfg.max_lora_rank,
                          gpu_memory_utilization=cfg.gpu_memory_utilization)
        return api, "cuda", 1
    raise ConfigError(f"params.yaml: serve.backend {cfg.backend!r} is not one of {', '.join(SERVE_BACKENDS)}")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
