"""Request body size limit, answered with OpenAI's error object (413) before the body is read.

Bodies that announce their size are refused from the header; chunked bodies are counted while
the chat endpoint reads them (`read_body`).
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from vietlegal.serve.protocol.errors import ApiError


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body is larger than the server's limit of {limit} bytes "
                         "(serve.max_body_bytes)", None, "request_too_large")


class BodyLimit:
    """Pure ASGI middleware: refuse a declared Content-Length over the limit with a 413."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
                await too_large(self.max_bytes).response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def read_body(request: Request, max_bytes: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)
