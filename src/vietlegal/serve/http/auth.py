"""`Authorization: Bearer <key>` (what the openai client sends); /health stays open for probes.

LitServe's built-in key check reads `X-API-Key`; `LitAPI.authorize` is its hook for anything
else and guards every route LitServe registers, so the open paths are listed here.
"""
from __future__ import annotations

import hmac

from vietlegal.serve.protocol.errors import ApiError

OPEN_PATHS = frozenset({"/health"})


def check_bearer(path: str, authorization: str | None, key: str | None) -> None:
    """Raise a 401 ApiError unless no key is configured, the path is open, or the header carries the key."""
    if not key or path in OPEN_PATHS:
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "missing API key: send the header 'Authorization: Bearer <key>'", None, "invalid_api_key")
    if not hmac.compare_digest(token.strip().encode(), key.encode()):
        raise ApiError(401, "incorrect API key", None, "invalid_api_key")
