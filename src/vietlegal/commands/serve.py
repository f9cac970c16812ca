"""OpenAI-compatible API on LitServe: versioned adapters over one base behind /v1/chat/completions.

    vietlegal serve [--adapter models/adapter | --adapter NAME=DIR ...] [--watch] [--host 127.0.0.1]
                    [--port 8000] [--api-key KEY] [--rag]
    vietlegal serve --model models/export/merged      a merged model directory, alone
    vietlegal serve --model BASE [--adapter ...]      the base alone, or adapters over that explicit base

Everything it needs comes from the adapter directories (`dvc pull models/adapter` is enough) and
the `serve:` section of params.yaml (defaults when there is no params.yaml; serve.adapters names
several, serve.routes splits a name between them). The key can also come from the VIETLEGAL_API_KEY
environment variable (better: it stays out of `ps`). See docs/serving.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from pathlib import Path

from vietlegal import paths
from vietlegal.errors import ConfigError
from vietlegal.params import load_optional
from vietlegal.serve.log import configure_logging, logger

API_KEY_ENV = "VIETLEGAL_API_KEY"
HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # what LitServe can bind


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vietlegal serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--adapter", action="append", default=None, metavar="[NAME=]DIR",
                   help="adapter directory, named NAME (a lone DIR is named 'vietlegal'); repeat for several versions "
                        f"over one base (default: serve.adapters, else {paths.ADAPTER})")
    p.add_argument("--model", default=None, metavar="DIR|BASE",
                   help="a merged model directory (vietlegal export's models/export/merged) served alone as the "
                        "version of the adapter folded into it; or a base (hub id, local model directory): alone, "
                        "or the base --adapter's adapters must have been trained on")
    p.add_argument("--watch", action="store_true",
                   help="load a new version written into an adapter's directory and move its name to it "
                        "(checked every serve.watch_seconds)")
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

    from vietlegal.serve import grounding, server
    from vietlegal.serve.http import drain
    from vietlegal.serve.versions import model_info, whole_model

    adapters = named_adapters(args.adapter, cfg.adapters, default=args.model is None)
    # The model first (a missing adapter is what a new droplet lacks), then the index before the weights load.
    if args.model is None:
        info, whole = model_info.load(next(iter(adapters.values()))), None
    else:
        named_by = "--adapter" if args.adapter else "serve.adapters (the params file)"
        info, whole = whole_model.open_model(args.model, adapters, named_by, args.watch)
    grounder, rag_state = grounding.grounder(params.rag, args.rag)  # a stale index fails fast
    if info.manifest and (warning := grounding.context_mismatch(info.manifest, grounder is not None)):
        logger.warning(warning)
    lit_server = server.build(info, adapters, cfg, api_key, params.prepare.system_prompt, grounder=grounder,
                              watch=args.watch, whole=whole)
    logger.info("serving %s (base %s) on http://%s:%d backend=%s auth=%s watch=%s %s", served(adapters, whole),
                info.base.model_id, host, port, cfg.backend, "bearer" if api_key else "off",
                "on" if args.watch else "off", rag_state)
    drain.install_main_handler(cfg.drain_seconds)  # docker/systemd stop, Ctrl-C: drain first
    lit_server.run(host=host, port=port, num_api_servers=1, generate_client_file=False, access_log=False,
                   log_level=args.log_level)
    return 0


def served(adapters: dict[str, Path], whole) -> str:
    """What the start-up line says is served."""
    if whole is None:
        return ", ".join(f"{name}={path}" for name, path in adapters.items())
    if whole.served is None:
        return f"the base {whole.model.model_id} alone"
    return f"merged model {whole.model.model_id} as {whole.served.name}={whole.served.version.model_id}"


def named_adapters(given: list[str] | None, configured: dict[str, str], default: bool = True) -> dict[str, Path]:
    """--adapter [NAME=]DIR ... (else serve.adapters, else models/adapter unless `default` is off: --model names
    what to serve) as name -> directory; a lone DIR is named like the alias clients have always sent
    (model="vietlegal")."""
    from vietlegal.serve.versions.catalog import MODEL_ALIAS

    if not given:
        fallback = {MODEL_ALIAS: Path(paths.ADAPTER)} if default else {}
        return {name: Path(path) for name, path in configured.items()} or fallback
    found: dict[str, Path] = {}
    for value in given:
        name, sep, path = value.partition("=")
        if not sep:
            name, path = MODEL_ALIAS, value
        if not name or not path:
            raise ConfigError(f"--adapter {value!r}: expected DIR or NAME=DIR")
        if name in found:
            raise ConfigError(f"--adapter {value!r}: the name {name!r} is given twice (name each directory: NAME=DIR)")
        found[name] = Path(path)
    return found
