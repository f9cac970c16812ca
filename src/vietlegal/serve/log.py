"""The server's logger: one line per request on stderr, in the HTTP process and in the inference worker alike."""
from __future__ import annotations

import logging
import sys

logger = logging.getLogger("vietlegal.serve")


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
