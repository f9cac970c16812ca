"""OpenAI's error object: `{"error": {"message", "type", "param", "code"}}` for every failure.

 FastAPI and LitServe answer
`{"detail": ...}`; the openai client and vLLM-style tooling expect the nested object, so every error path
(validation, auth, unknown route, body size, crashes) goes through `ApiError` or the handlers `install` adds.
"""
from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vietlegal.serve.log import logger

TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 405: "invalid_request_error",
         413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error", 503: "service_unavailable_error",
         504: "timeout_error"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type_: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}
        self.type = type_ or TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def sse(self) -> str:
        return f"data: {json.dumps(self.body(), ensure_ascii=False)}\n\n"

    def response(self) -> JSONResponse:
        headers = {**({"WWW-Authenticate": "Bearer"} if self.status == 401 else {}), **self.headers}
        return JSONResponse(self.body(), status_code=self.status, headers=headers or None)


def from_http(status: int, detail: object) -> ApiError:
    return ApiError(status, detail if isinstance(detail, str) else json.dumps(detail, default=str))


def install(app: FastAPI) -> None:
    """Route every error the app can raise to the OpenAI shape."""

    async def api_error(_: Request, exc: ApiError):
        return exc.response()

    async def http_error(_: Request, exc: StarletteHTTPException):
        return from_http(exc.status_code, exc.detail).response()

    async def validation_error(_: Request, exc: RequestValidationError):
        first = (exc.errors() or [{}])[0]
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return ApiError(400, first.get("msg", "invalid request"), param, "invalid_value").response()

    async def crash(_: Request, exc: Exception):
        logger.error("internal error: %s", type(exc).__name__)
        return ApiError(500, "internal server error", code="internal_error").response()

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, crash)
