"""POST /v1/feedback and POST /v1/review/annotate on a real HTTP server (uvicorn, the app the LitServer runs with
the review routes installed, no model): the stored line, the 4xx naming the field, the Bearer key, the
atomic append, and citations marked against the fixture corpus."""
from __future__ import annotations

import http.client
import json
import threading
import unicodedata
from pathlib import Path

import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from fastapi import FastAPI
from tests.helpers.rag_corpus import write_corpus

from vietlegal.data.feedback import BadReview, parse_review
from vietlegal.params import RagConfig
from vietlegal.rag.corpus import load_corpus
from vietlegal.serve.protocol import errors as protocol
from vietlegal.serve.review import routes as review_routes
from vietlegal.serve.review.feedback import append, stamped
from vietlegal.serve.http.limits import BodyLimit
from vietlegal.serve.process import free_port

KEY = "test-key"
QUESTION = "Lao động nữ được nghỉ thai sản bao lâu?"


def review(**changes) -> dict:
    body = {"question": QUESTION, "messages": [{"role": "user", "content": QUESTION}],
            "answers": [{"model": "vietlegal-0123456789ab", "system_fingerprint": "fp_0123456789ab",
                         "answer": "Theo Điều 157 Bộ luật Lao động 2012, 06 tháng.",
                         "retrieved_provisions": ["blld-2019-d139"], "verdict": "wrong_citation",
                         "correction": "Theo khoản 1 Điều 139 Bộ luật Lao động 2019, 06 tháng."}],
            "preferred": None, "reviewer": "LS. Hà"}
    return {**body, **changes}


class FakeRetriever:
    """What the review routes read of serve --rag's retriever: its corpus and its in-force date."""

    def __init__(self, corpus_dir: Path):
        self.corpus = load_corpus(corpus_dir)
        self.cfg = RagConfig(in_force_on="2025-07-01", dense=False)


class FakeGrounding:
    def __init__(self, corpus_dir: Path):
        self.retriever = FakeRetriever(corpus_dir)


class Server:
    def __init__(self, app: FastAPI):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:  # uvicorn sets it once the socket listens
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            self.thread.join(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)

    def request(self, method: str, path: str, body: object = None, key: str | None = KEY,
                raw: bytes | None = None) -> tuple[int, dict | str, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = raw if raw is not None else (None if body is None else json.dumps(body, ensure_ascii=False).encode())
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        text = response.read().decode("utf-8")
        conn.close()
        try:
            return response.status, json.loads(text), dict(response.getheaders())
        except json.JSONDecodeError:
            return response.status, text, dict(response.getheaders())


def make_app(feedback_dir: Path, grounder=None, enabled: bool = True) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodyLimit, max_bytes=20_000)
    protocol.install(app)
    review_routes.install(app, api_key=KEY, feedback_dir=feedback_dir, grounder=grounder, enabled=enabled,
                          max_body_bytes=20_000)
    return app


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("feedback")
    grounding = FakeGrounding(write_corpus(tmp / "corpus"))
    with Server(make_app(tmp / "feedback", grounding)) as server:
        yield server, tmp / "feedback"


def stored_lines(directory: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob("*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_verdict_is_stored_as_one_nfc_line_with_its_time_and_id(served):
    server, directory = served
    before = len(stored_lines(directory)) if directory.exists() else 0
    nfd = unicodedata.normalize("NFD", "Theo khoản 1 Điều 139 Bộ luật Lao động 2019, lao động nữ nghỉ 06 tháng.")
    status, body, _ = server.request("POST", "/v1/feedback", review(answers=[{**review()["answers"][0],
                                                                             "correction": nfd}]))
    assert status == 201, body
    assert body["object"] == "feedback" and body["id"].startswith("fb-")
    lines = stored_lines(directory)
    assert len(lines) == before + 1
    line = lines[-1]
    assert line["id"] == body["id"] and line["time"] == body["time"] and line["time"].endswith("Z")
    assert (directory / f"{line['time'][:10]}.jsonl").exists()
    assert line["answers"][0]["correction"] == unicodedata.normalize("NFC", nfd)
    assert line["answers"][0]["retrieved_provisions"] == ["blld-2019-d139"]
    assert line["reviewer"] == "LS. Hà" and line["question"] == QUESTION
    assert parse_review(line, stored=True).answers[0].verdict == "wrong_citation"  # what prepare reads back


@pytest.mark.parametrize("changes, param", [
    ({"answers": [{**review()["answers"][0], "verdict": "bad"}]}, "answers[0].verdict"),
    ({"answers": []}, "answers"),
    ({"question": "  "}, "question"),
    ({"question": 3}, "question"),
    ({"messages": [{"role": "user", "content": "another question"}]}, "messages"),
    ({"messages": [{"role": "robot", "content": QUESTION}]}, "messages[0].role"),
    ({"preferred": 0}, "preferred"),
    ({"answers": [review()["answers"][0]] * 2, "preferred": 2}, "preferred"),
    ({"answers": [review()["answers"][0]] * 2, "preferred": 1.0}, "preferred"),
    ({"answers": [review()["answers"][0]] * 2, "preferred": True}, "preferred"),
    ({"answers": [{**review()["answers"][0], "model": None}]}, "answers[0].model"),
    ({"answers": [{**review()["answers"][0], "retrieved_provisions": "blld"}]}, "answers[0].retrieved_provisions"),
    ({"answers": [{**review()["answers"][0], "correction": ["x"]}]}, "answers[0].correction"),
    ({"verdict": "correct"}, "verdict"),  # a field a review does not have is refused, not dropped
    ({"reviewer": "x" * 201}, "reviewer"),
])
def test_a_bad_body_gets_a_400_naming_the_field_and_nothing_is_stored(served, changes, param):
    server, directory = served
    before = stored_lines(directory) if directory.exists() else []
    status, body, _ = server.request("POST", "/v1/feedback", review(**changes))
    assert status == 400, body
    assert body["error"]["param"] == param and body["error"]["type"] == "invalid_request_error"
    assert param.split("[")[0] in body["error"]["message"]
    assert (stored_lines(directory) if directory.exists() else []) == before


def test_malformed_json_a_non_object_and_a_wrong_method_are_4xx(served):
    server, _ = served
    status, body, _ = server.request("POST", "/v1/feedback", raw=b"{not json")
    assert status == 400 and body["error"]["code"] == "invalid_json"
    status, body, _ = server.request("POST", "/v1/feedback", [1, 2])
    assert status == 400 and body["error"]["param"] == "body"
    status, body, _ = server.request("GET", "/v1/feedback")
    assert status == 405 and "error" in body
    status, body, _ = server.request("POST", "/v1/feedback", raw=b"x" * 30_000)
    assert status == 413 and body["error"]["code"] == "request_too_large"


@pytest.mark.parametrize("path", ["/v1/feedback", "/v1/review/annotate"])
def test_the_posts_need_the_bearer_key(served, path):
    server, _ = served
    status, body, headers = server.request("POST", path, review(), key=None)
    assert status == 401 and body["error"]["code"] == "invalid_api_key" and headers.get("www-authenticate") == "Bearer"
    status, body, _ = server.request("POST", path, review(), key="wrong")
    assert status == 401


def test_side_by_side_is_one_line_holding_both_answers_and_the_preference(served):
    server, directory = served
    second = {**review()["answers"][0], "model": "vietlegal-ba9876543210", "verdict": "correct", "correction": None}
    status, body, _ = server.request("POST", "/v1/feedback", review(answers=[review()["answers"][0], second],
                                                                    preferred=1))
    assert status == 201, body
    line = next(row for row in stored_lines(directory) if row["id"] == body["id"])
    assert [a["model"] for a in line["answers"]] == ["vietlegal-0123456789ab", "vietlegal-ba9876543210"]
    assert line["preferred"] == 1


def test_appends_from_many_threads_never_interleave(tmp_path):
    reviews = [stamped(parse_review(review(reviewer=f"r{i}", question=QUESTION + " " + "x" * 3000 * (i % 3),
                                           messages=None))) for i in range(40)]
    threads = [threading.Thread(target=append, args=(tmp_path, r)) for r in reviews]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = stored_lines(tmp_path)
    assert sorted(row["reviewer"] for row in lines) == sorted(f"r{i}" for i in range(40))


def test_citations_are_marked_found_superseded_or_not_found_with_the_provision_text(served):
    server, _ = served
    answer = ("Theo khoản 1 Điều 139 Bộ luật Lao động 2019, lao động nữ nghỉ 06 tháng (trước đây Điều 157 "
              "Bộ luật Lao động 2012). Xem thêm Điều 999 Bộ luật Dân sự 2015 và Điều 10 Luật Đất đai 2003.")
    status, body, _ = server.request("POST", "/v1/review/annotate",
                                     {"answer": answer, "retrieved_provisions": ["blld-2019-d139", "blds-2015-d429"]})
    assert status == 200, body
    assert body["corpus"] is True and body["in_force_on"] == "2025-07-01"
    assert [p["id"] for p in body["provisions"]] == ["blld-2019-d139", "blds-2015-d429"]
    assert body["provisions"][0]["text"].startswith("Lao động nữ được nghỉ thai sản")
    statuses = [(c["citation"], c["status"]) for c in body["citations"]]
    assert statuses == [("khoản 1 Điều 139 bộ luật lao động 2019", "found"),
                        ("Điều 157 bộ luật lao động 2012", "superseded"),
                        ("Điều 999 bộ luật dân sự 2015", "not_found"),
                        ("Điều 10 luật đất đai 2003", "not_found")]
    found, superseded = body["citations"][0], body["citations"][1]
    assert [p["id"] for p in found["provisions"]] == ["blld-2019-d139"]
    assert superseded["provisions"][0]["effective_to"] == "2020-12-31" and not superseded["provisions"][0]["in_force"]


def test_an_answer_citing_a_later_replaced_code_is_superseded_even_without_that_version(tmp_path):
    from tests.helpers.rag_corpus import PROVISIONS

    corpus = write_corpus(tmp_path / "corpus", [p for p in PROVISIONS if p["id"] != "blld-2012-d157"])
    with Server(make_app(tmp_path / "feedback", FakeGrounding(corpus))) as server:
        _, body, _ = server.request("POST", "/v1/review/annotate", {"answer": "Điều 157 Bộ luật Lao động 2012"})
    assert [(c["status"], c["provisions"]) for c in body["citations"]] == [("superseded", [])]


@pytest.mark.parametrize("body, param", [
    ({"retrieved_provisions": ["no-such-id"]}, "retrieved_provisions[0]"),
    ({"retrieved_provisions": "blld-2019-d139"}, "retrieved_provisions"),
    ({"answer": 5}, "answer"),
    ({"text": "x"}, "text"),
])
def test_annotate_refuses_what_it_cannot_read_naming_the_field(served, body, param):
    server, _ = served
    status, got, _ = server.request("POST", "/v1/review/annotate", body)
    assert status == 400 and got["error"]["param"] == param


def test_without_retrieval_citations_are_listed_unchecked(tmp_path):
    with Server(make_app(tmp_path / "feedback")) as server:
        status, body, _ = server.request("POST", "/v1/review/annotate", {"answer": "Điều 139 Bộ luật Lao động 2019"})
        assert status == 200 and body["corpus"] is False
        assert [c["status"] for c in body["citations"]] == ["unchecked"]
        status, body, _ = server.request("POST", "/v1/review/annotate", {"retrieved_provisions": ["x"]})
        assert status == 400 and body["error"]["code"] == "no_corpus"


def test_the_page_is_served_without_a_key_with_a_strict_policy_and_only_its_own_assets(served):
    server, _ = served
    status, html, headers = server.request("GET", "/review", key=None)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in headers["content-security-policy"]
    assert '<html lang="vi">' in html and 'src="/review/review.js"' in html
    for name in ("review.js", "review.css"):
        status, _, _ = server.request("GET", f"/review/{name}", key=None)
        assert status == 200
    status, body, _ = server.request("GET", "/review/..%2Fserver.py", key=None)
    assert status == 404 and "error" in body


def test_review_page_off_leaves_the_feedback_endpoint(tmp_path):
    with Server(make_app(tmp_path / "feedback", enabled=False)) as server:
        status, _, _ = server.request("GET", "/review", key=None)
        assert status == 404
        status, _, _ = server.request("POST", "/v1/feedback", review())
        assert status == 201


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=12)
FIELDS = st.fixed_dictionaries({}, optional={k: JSON for k in ("question", "messages", "answers", "preferred",
                                                                 "reviewer", "verdict")})
ANSWERS = st.lists(st.fixed_dictionaries({}, optional={k: JSON for k in (
    "model", "system_fingerprint", "answer", "retrieved_provisions", "verdict", "correction")}), max_size=3)


@settings(max_examples=300, deadline=None)
@given(body=JSON | FIELDS | st.builds(lambda b, a: {**b, "answers": a}, FIELDS, ANSWERS))
def test_any_body_is_a_review_or_a_bad_review_naming_a_field_never_a_crash(body):
    try:
        parsed = parse_review(body)
    except BadReview as exc:
        assert exc.field and str(exc).startswith(exc.field)
        return
    assert 1 <= len(parsed.answers) <= 2 and parsed.preferred in (None, 0, 1)


def test_the_page_inserts_server_text_only_as_text():
    """Static guard next to the browser test: the script never assigns HTML."""
    script = (Path(review_routes.PAGE_DIR) / "review.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
