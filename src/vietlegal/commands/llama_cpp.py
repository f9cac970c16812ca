"""Build llama.cpp's quantiser and server from the registry's source (cached) and print where they are.

    vietlegal llama-cpp [--jobs N]

The export stage builds them on first use; this builds them ahead (a test machine, an in-house machine that
serves the GGUF files with llama-server). Needs cmake, make and a C++ compiler; minutes on a few cores.
"""
from __future__ import annotations

import argparse
import json


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vietlegal llama-cpp", description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=None, help="parallel compile jobs (default: every core)")
    args = ap.parse_args(argv)
    from vietlegal.export.llama_cpp import ensure_built

    llama = ensure_built(args.jobs)
    print(f"llama-server   {llama.server}\nllama-quantize {llama.quantize}\nconverter      {llama.converter}")
    print(json.dumps(llama.info()))
    return 0
