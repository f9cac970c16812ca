"""serve/http without a server: the Bearer check, and a stream that fails after it started."""
from __future__ import annotations

import json

import pytest

from vietlegal.serve.http import auth
from vietlegal.serve.protocol.errors import ApiError


def test_bearer_check():
    auth.check_bearer("/v1/models", "Bearer k1", "k1")
    auth.check_bearer("/v1/models", "bearer k1", "k1")
    auth.check_bearer("/health", None, "k1")  # probes stay open
    auth.check_bearer("/v1/models", None, None)  # no key configured: open
    for header in (None, "k1", "Bearer", "Bearer k2", "Basic k1"):
        with pytest.raises(ApiError) as caught:
            auth.check_bearer("/v1/chat/completions", header, "k1")
        assert caught.value.status == 401 and caught.value.code == "invalid_api_key"


def test_a_stream_that_fails_after_it_started_ends_with_an_error_event_and_done():
    import asyncio

    from vietlegal.model.sampling import SamplingRequest
    from vietlegal.serve.http.routes import ChatAnswer
    from vietlegal.serve.protocol.convert import ChatJob
    from vietlegal.serve.http.prometheus import RequestRecord
    from vietlegal.serve.protocol.piece import Piece
    from vietlegal.serve.http.routes import ChatSpec
    from vietlegal.serve.versions.version import AdapterVersion

    from vietlegal.serve.versions.catalog import Target

    spec = ChatSpec(None, None, 1000, None)
    job = ChatJob("chatcmpl-x", SamplingRequest([1, 2]), stream=True,
                  target=Target(None, AdapterVersion("abc123abc123", "content")))

    async def pieces():
        yield 0, Piece(text="Điều")
        raise ApiError(500, "generation failed: boom", None, "internal_error")

    async def collect():
        answer = ChatAnswer(job, None)
        return [event async for event in spec._sse(job, answer, pieces(), RequestRecord(job.id, stream=True))]

    events = asyncio.run(collect())
    assert '"content": "Điều"' in events[1]
    assert json.loads(events[-2][len("data: "):])["error"]["code"] == "internal_error"
    assert events[-1] == "data: [DONE]\n\n"
