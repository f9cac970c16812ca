"""OpenAI-compatible API on LitServe: the versioned adapter behind /v1/chat/completions.

    vietlegal serve [--adapter models/adapter] [--host 127.0.0.1] [--port 8000] [--api-key KEY] [--rag]

Everything it needs comes from the adapter directory (`dvc pull models/adapter` is enough) and
the `serve:` section of params.yaml (defaults when there is no params.yaml). The key can also
come from the VIETLEGAL_API_KEY environment variable (better: it stays out of `ps`).
See docs/serving.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys

from vietlegal import paths
from vietlegal.errors import ConfigError
from vietlegal.params import load_optional
from vietlegal.serve.log import configure_logging, logger

API_KEY_ENV = "VIETLEGAL_API_KEY"
HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # what LitServe can bind


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vietlegal serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--adapter", default=paths.ADAPTER, help="adapter directory (default: %(default)s)")
    p.add_argument("--params", default=None, help="params file (default: params.yaml if present)")
    p.add_argument("--host", default=None, help=f"bind address, one of {', '.join(HOSTS)} (default: serve.host)")
    p.add_argument("--port", type=int, default=None, help="port (default: serve.port)")
    p.add_argument("--api-key", default=None, help=f"require 'Authorization: Bearer KEY' (or set {API_KEY_ENV})")
    p.add_argument("--tensor-parallel-size", type=int, default=None,
                   help="vllm backend: GPUs one model is split over (default: serve.tensor_parallel_size)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--rag", action=argparse.BooleanOptionalAction, default=None,
                   help="put the top-k retrieved provisions into the system message and return their ids "
                        "(default: rag.enabled; see docs/rag.md)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    params = load_optional(args.params)
    cfg = params.serve
    if args.tensor_parallel_size is not None:
        cfg = dataclasses.replace(cfg, tensor_parallel_size=args.tensor_parallel_size)  # checked like params.yaml
    host, port = args.host or cfg.host, args.port or cfg.port
    if host not in HOSTS:
        raise ConfigError(f"--host / serve.host {host!r}: LitServe binds only {', '.join(HOSTS)}")
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    configure_logging(args.log_level)

    from vietlegal.serve import drain, grounding, model_info, server

    grounder, rag_state = grounding.grounder(params.rag, args.rag)  # before the model: a stale index fails fast
    info = model_info.load(args.adapter)
    if warning := grounding.context_mismatch(info.manifest, grounder is not None):
        logger.warning(warning)
    lit_server = server.build(info, cfg, api_key, params.prepare.system_prompt, grounder=grounder)
    logger.info("serving %s (adapter %s, version from %s, base %s) on http://%s:%d backend=%s auth=%s %s",
                info.version.model_id, args.adapter, info.version.source, info.base.model_id, host, port,
                cfg.backend, "bearer" if api_key else "off", rag_state)
    signal.signal(signal.SIGTERM, drain.main_process_handler(cfg.drain_seconds))  # docker/systemd stop
    lit_server.run(host=host, port=port, num_api_servers=1, generate_client_file=False, access_log=False,
                   log_level=args.log_level)
    return 0
