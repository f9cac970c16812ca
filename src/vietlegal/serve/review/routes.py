"""The reviewers' routes on the LitServer's FastAPI app (docs/review.md):

  GET  /review                  the review page (serve.review_page), and its two assets under /review/
  POST /v1/feedback             a verdict: appended as one JSON line to serve.feedback_dir (serve/feedback.py)
  POST /v1/review/annotate      the retrieved provisions' text, and each citation of an answer marked found /
                                superseded / not found in the RAG corpus (serve/citation_status.py)

The page is static and holds nothing secret, so it loads without a key; both POSTs need the same Bearer key
as the chat endpoint. Same origin as the API: the page needs no CORS. Every error is OpenAI's error object,
a client mistake a 4xx whose `param` names the field.
"""
from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from vietlegal.metrics.citation import extract
from vietlegal.rag.retriever import query_date
from vietlegal.serve.review import feedback
from vietlegal.serve.http.auth import check_bearer
from vietlegal.serve.review.citation_status import CitationIndex, provision_json
from vietlegal.serve.http.limits import read_body
from vietlegal.serve.log import logger
from vietlegal.serve.protocol.errors import ApiError

PAGE_DIR = Path(__file__).parent  # the page and its assets live beside this module
ASSETS = {"review.js": "text/javascript; charset=utf-8", "review.css": "text/css; charset=utf-8"}
MAX_IDS = 50
# The page runs only its own script and talks only to this origin: even a missed escape could not run code.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache",
}


def install(app: FastAPI, *, api_key: str | None, feedback_dir: str | Path, grounder=None, enabled: bool = True,
            max_body_bytes: int = 1_000_000) -> None:
    """Add the routes; `grounder`: serve --rag's (vietlegal.serve.grounding.Grounding), None without retrieval."""
    retriever = getattr(grounder, "retriever", None)
    built: list[CitationIndex] = []
    building = threading.Lock()

    def citation_index() -> CitationIndex:
        """Built on first use, in the HTTP process (a large corpus would slow the server's start)."""
        with building:
            if not built:
                built.append(CitationIndex(retriever.corpus))
        return built[0]

    async def body_of(request: Request) -> dict:
        check_bearer(request.url.path, request.headers.get("authorization"), api_key)
        raw = await read_body(request, max_body_bytes)
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}", None, "invalid_json") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object", None, "invalid_value")
        return body

    async def post_feedback(request: Request) -> JSONResponse:
        check_bearer(request.url.path, request.headers.get("authorization"), api_key)
        review = feedback.stamped(feedback.review_from_body(await read_body(request, max_body_bytes)))
        try:  # off the event loop: an fsync must not stall the streams in flight
            path = await asyncio.to_thread(feedback.append, feedback_dir, review)
        except OSError as exc:
            logger.error("feedback not stored: %s", exc)
            raise ApiError(503, "the verdict could not be stored (serve.feedback_dir); retry", None,
                           "feedback_not_stored") from None
        logger.info("feedback %s stored in %s (%d answer(s))", review.id, path.name, len(review.answers))
        return JSONResponse({"id": review.id, "object": "feedback", "time": review.time}, status_code=201)

    async def annotate(request: Request) -> JSONResponse:
        body = await body_of(request)
        unknown = sorted(set(body) - {"answer", "retrieved_provisions"})
        if unknown:
            raise ApiError(400, f"{unknown[0]}: unknown field; send answer and/or retrieved_provisions", unknown[0],
                           "invalid_value")
        answer, ids = body.get("answer"), body.get("retrieved_provisions")
        if answer is not None and not isinstance(answer, str):
            raise ApiError(400, "answer: expected a string", "answer", "invalid_value")
        if ids is not None and (not isinstance(ids, list) or len(ids) > MAX_IDS):
            raise ApiError(400, f"retrieved_provisions: expected a list of at most {MAX_IDS} provision ids",
                           "retrieved_provisions", "invalid_value")
        on = query_date(retriever.cfg) if retriever is not None else None
        index = await asyncio.to_thread(citation_index) if retriever is not None else None
        provisions = []
        for i, pid in enumerate(ids or []):
            if index is None:
                raise ApiError(400, "retrieved_provisions: this server answers without retrieval (start it with "
                                    "--rag)", "retrieved_provisions", "no_corpus")
            if not isinstance(pid, str) or pid not in index.by_id:
                raise ApiError(400, f"retrieved_provisions[{i}]: {pid!r} is not a provision of the corpus",
                               f"retrieved_provisions[{i}]", "unknown_provision")
            provisions.append(provision_json(index.by_id[pid], on))
        if index is None:  # no corpus to look in: the citations are listed, unchecked
            citations = [{"citation": str(c), "status": "unchecked", "provisions": []} for c in extract(answer or "")]
        else:
            citations = await asyncio.to_thread(index.check, answer or "", on)
        return JSONResponse({"object": "review.annotation", "corpus": index is not None,
                             "in_force_on": on.isoformat() if on else None,
                             "provisions": provisions, "citations": citations})

    app.add_api_route("/v1/feedback", post_feedback, methods=["POST"])
    app.add_api_route("/v1/review/annotate", annotate, methods=["POST"])
    if not enabled:
        return

    async def page() -> Response:
        return Response((PAGE_DIR / "index.html").read_bytes(), media_type="text/html; charset=utf-8",
                        headers=HEADERS)

    async def asset(name: str) -> Response:
        if name not in ASSETS:
            raise ApiError(404, f"/review/{name}: no such file of the review page", None, "not_found")
        return Response((PAGE_DIR / name).read_bytes(), media_type=ASSETS[name], headers=HEADERS)

    app.add_api_route("/review", page, methods=["GET"])
    app.add_api_route("/review/{name}", asset, methods=["GET"])
