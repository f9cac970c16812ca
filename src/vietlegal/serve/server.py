"""Wire the pieces into one LitServer: spec (HTTP side), LitAPI (worker side), limits, errors."""
from __future__ import annotations

import contextlib
import multiprocessing as mp

import litserve as ls
from starlette.middleware.cors import CORSMiddleware

from vietlegal.errors import ConfigError, HardwareError
from vietlegal.params import SERVE_BACKENDS, ServeConfig
from vietlegal.serve import drain, protocol, review_routes
from vietlegal.serve.drain import DrainGate
from vietlegal.serve.hf_loop import HFLoop
from vietlegal.serve.hf_worker import HFChatAPI
from vietlegal.serve.limits import BodyLimit
from vietlegal.serve.model_info import ModelInfo
from vietlegal.serve.parsing import Validator
from vietlegal.serve.routes import ChatSpec
from vietlegal.serve.worker import ChatAPI

MODEL_ALIAS = "vietlegal"  # accepted besides the versioned id: "whatever version this server runs"


def build(info: ModelInfo, cfg: ServeConfig, api_key: str | None, system_prompt: str | None,
          grounder=None) -> ls.LitServer:
    """`grounder`: vietlegal.serve.grounding's retrieval step (None: answer closed-book)."""
    validator = Validator(info.tokenizer, info.context, cfg.max_new_tokens, (info.version.model_id, MODEL_ALIAS),
                          system_prompt, grounder, info.vocab_size)
    cancel_queue = mp.get_context("spawn").Queue()  # HTTP process -> worker: ids of requests whose client left
    spec = ChatSpec(validator, info.version, cfg.max_body_bytes, cancel_queue, info.base.model_id, cfg.max_queued)
    api, accelerator, devices = make_api(cfg, str(info.adapter_dir), api_key, cancel_queue, spec)
    server = ls.LitServer(
        api,
        accelerator=accelerator,
        devices=devices,
        workers_per_device=1,  # one copy of the model; concurrency comes from batching
        fast_queue=True,  # ZMQ for worker -> HTTP messages: no manager round trip per streamed piece
        timeout=cfg.queue_timeout,
        middlewares=middlewares(cfg),
        model_metadata={"model": info.version.model_id, "base": info.base.model_id,
                        "adapter_version": info.version.hash, "version_source": info.version.source},
    )
    protocol.install(server.app)
    review_routes.install(server.app, api_key=api_key, feedback_dir=cfg.feedback_dir, grounder=grounder,
                          enabled=cfg.review_page, max_body_bytes=cfg.max_body_bytes)
    drain_on_sigterm(server, cfg.drain_seconds)
    return server


def drain_on_sigterm(server: ls.LitServer, drain_seconds: float) -> None:
    """Each HTTP process installs the draining SIGTERM handler as it starts (LitServe's lifespan, wrapped)."""
    litserve_lifespan = server.app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app):
        drain.install_http_handler(drain_seconds)
        async with litserve_lifespan(app):
            yield

    server.app.router.lifespan_context = lifespan


def middlewares(cfg: ServeConfig) -> list[tuple[type, dict]]:
    """The body limit, and CORS for the origins in serve.cors_origins: a browser's preflight is answered here,
    before the routes, so it needs no key; the request that follows still does."""
    found: list[tuple[type, dict]] = [(BodyLimit, {"max_bytes": cfg.max_body_bytes}), (DrainGate, {})]
    if cfg.cors_origins:
        found.append((CORSMiddleware, {"allow_origins": list(cfg.cors_origins), "allow_methods": ["GET", "POST"],
                                       "allow_headers": ["Authorization", "Content-Type"], "max_age": 600}))
    return found


def make_api(cfg: ServeConfig, adapter_dir: str, api_key: str | None, cancel_queue,
             spec: ChatSpec) -> tuple[ChatAPI, str, int | str]:
    """(the LitAPI for serve.backend, LitServe's accelerator, its devices)."""
    if cfg.backend == "hf":
        # Continuous batching (hf_loop.py): no batch window; max_batch_size bounds the sequences in flight.
        api = HFChatAPI(adapter_dir, api_key, cancel_queue, max_batch_size=cfg.max_batch_size, spec=spec,
                        cpu_threads=cfg.cpu_threads, loop=HFLoop())
        return api, "auto", "auto"
    if cfg.backend == "vllm":
        if not cuda_available():
            raise HardwareError("serve.backend vllm needs a CUDA GPU (and `pip install vllm`); on this machine use "
                                "serve.backend: hf")
        from vietlegal.serve.vllm_worker import VLLMChatAPI

        # LitServe cannot batch async APIs; vLLM batches continuously itself. One LitServe worker: with
        # tensor parallelism vLLM starts a process per GPU itself (a LitServe worker per GPU would fight it).
        api = VLLMChatAPI(adapter_dir, api_key, cancel_queue, max_batch_size=1, enable_async=True, spec=spec,
                          max_num_seqs=cfg.max_batch_size, tensor_parallel_size=cfg.tensor_parallel_size)
        return api, "cuda", 1
    raise ConfigError(f"params.yaml: serve.backend {cfg.backend!r} is not one of {', '.join(SERVE_BACKENDS)}")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
