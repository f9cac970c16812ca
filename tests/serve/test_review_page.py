"""The review page in a real browser: headless Chromium (Debian's package, driven by Playwright) against a real
`vietlegal serve --rag` on the tiny model, with a BM25 index over the fixture corpus and the Bearer key.

Ask and watch the answer stream in with its provisions; compare side by side; submit verdicts with a correction
and find them in the feedback file; an answer and a provision holding <script> and <img onerror> are shown as
text and nothing runs; the key lives in sessionStorage only; the page works by keyboard and at 360px. The only
stub is one chat answer carrying that markup (the tiny model cannot be made to write it); everything else is the
real server. A screenshot goes to the test's tmp dir, and to $VIETLEGAL_REVIEW_SCREENSHOT when set (docs/review.md).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from tests.helpers.rag_corpus import PROVISIONS, provision, write_corpus

from tests.conftest import SERVE_TEST_PARAMS
from vietlegal.params import RagConfig
from vietlegal.rag import retriever as rag_index
from vietlegal.rag.corpus import load_corpus
from vietlegal.text import nfc

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KEY = "test-key"
MATERNITY = "Lao động nữ được nghỉ thai sản bao lâu?"
SCRIPT = "<script>window.__xss = 'script'</script>"
IMG = "<img src=x onerror=\"window.__xss = 'img'\">"
XSS_PROVISION = provision("xss-2020-d1", "Luật Kiểm thử hiển thị", "01/2020/QH14", 2020, 1, IMG,
                          f"{SCRIPT}{IMG} Nội dung kiểm thử hiển thị an toàn.", "2020-01-01")
TIMEOUT_MS = 120_000  # a cold tiny-model answer on two shared CPU cores


REQUIRE_BROWSER = "VIETLEGAL_REQUIRE_BROWSER"  # CI (.ci/run) sets it to 1: there a missing browser is a failure


def chromium() -> str:
    """Debian's Chromium; without it the test skips saying how to get it (fails where CI requires the browser)."""
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if found:
        return found
    reason = ("no Chromium here: `make test` installs Debian's where it can run apt-get as root or with passwordless "
              "sudo; else apt-get install -y chromium")
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{reason} ({REQUIRE_BROWSER}=1: the browser tests must run here)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def review_server(tmp_path_factory, tiny_adapter):
    chromium()
    from vietlegal.serve.process import ServerProcess

    tmp = tmp_path_factory.mktemp("review")
    corpus = write_corpus(tmp / "corpus", PROVISIONS + [XSS_PROVISION])
    cfg = RagConfig(enabled=False, dense=False, in_force_on="2025-07-01", corpus_dir=str(corpus),
                    index_dir=str(tmp / "index"))
    rag_index.build(load_corpus(corpus), cfg, tmp / "index")
    params = yaml.safe_load(SERVE_TEST_PARAMS)
    params["serve"].update(review_page=True, feedback_dir=str(tmp / "feedback"))
    params["rag"] = {k: getattr(cfg, k) for k in ("enabled", "dense", "in_force_on", "corpus_dir", "index_dir")}
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    server = ServerProcess(tiny_adapter, tmp / "server.log", api_key=KEY, params=tmp / "params.yaml",
                           env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    server.cmd.append("--rag")
    server.start()
    try:
        yield server, tmp / "feedback"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    executable = chromium()  # before Playwright, which would look for a browser of its own
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # Playwright gives each launch a fresh, throw-away profile (its own --user-data-dir).
        launched = p.chromium.launch(executable_path=executable, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, review_server):
    # bypass_csp: the page's Content-Security-Policy would stop injected markup from running anyway; off here,
    # the markup test proves the page never parses server text as HTML in the first place.
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="vi-VN", bypass_csp=True)
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.on("dialog", lambda dialog: (errors.append("dialog: " + dialog.message), dialog.dismiss()))
    opened.errors = errors
    yield opened
    context.close()


def open_with_key(page, server) -> None:
    page.goto(server.base_url + "/review")
    page.fill("#api-key", KEY)
    page.fill("#reviewer", "LS. Hà")
    page.click("#save-key")
    page.wait_for_function("document.querySelectorAll('#model-1 option').length > 0")


def versions(server, names: list[str]) -> list[str]:
    """The adapter version each /v1/models entry answers with (its `root`)."""
    import requests

    listed = requests.get(server.base_url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    roots = {m["id"]: m.get("root", m["id"]) for m in listed.json()["data"]}
    return [roots[name] for name in names]


def lines(feedback_dir: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(feedback_dir.glob("*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines()]


def test_an_answer_streams_in_with_its_provisions_and_a_keyboard_verdict_is_stored(page, review_server):
    from playwright.sync_api import expect

    server, feedback_dir = review_server
    open_with_key(page, server)
    assert KEY not in page.url and page.evaluate("sessionStorage.getItem('vietlegal.apiKey')") == KEY
    assert page.input_value("#api-key") == ""  # kept in the session, not left in the form

    # Keyboard only: type the question, Tab to "Hỏi", Enter.
    page.focus("#question")
    page.keyboard.type(MATERNITY)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "ask"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"  # focus is visible
    page.keyboard.press("Enter")
    card = page.locator("#answer-A")
    expect(card).to_have_attribute("data-state", "done", timeout=TIMEOUT_MS)
    # Streamed: the role chunk, the text pieces and the finish chunk arrived as separate events.
    assert int(card.get_attribute("data-chunks")) >= 3
    answer = card.locator(".answer-text").text_content()
    assert answer.strip()
    provisions = card.locator(".provision-list li")
    assert provisions.first.get_attribute("data-provision") == "blld-2019-d139"
    assert "Lao động nữ được nghỉ thai sản" in card.locator(".provision-list").text_content()
    expect(card.locator(".citations")).to_be_visible()

    page.focus("#verdict-A-correct")
    page.keyboard.press("ArrowRight")  # radios move by arrow: to "wrong_citation"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "correction-A"
    page.keyboard.type("Theo khoản 1 Điều 139 Bộ luật Lao động 2019, lao động nữ được nghỉ 06 tháng.")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "send-verdict"
    page.keyboard.press("Enter")
    expect(page.locator("#verdict-status")).to_contain_text("Đã lưu")
    saved = page.locator("#verdict-form").get_attribute("data-saved")
    [line] = [row for row in lines(feedback_dir) if row["id"] == saved]
    [reviewed] = line["answers"]
    assert reviewed["verdict"] == "wrong_citation" and reviewed["answer"] == nfc(answer)  # NFC, trimmed
    assert reviewed["correction"].startswith("Theo khoản 1 Điều 139")
    assert reviewed["model"].startswith("vietlegal-") and reviewed["system_fingerprint"].startswith("fp_")
    assert reviewed["retrieved_provisions"][0] == "blld-2019-d139"
    assert line["question"] == MATERNITY and line["reviewer"] == "LS. Hà" and line["preferred"] is None
    assert page.errors == []
    assert KEY not in server.log_text()

    page.reload()  # the same tab keeps the key for its session
    page.wait_for_function("document.querySelectorAll('#model-1 option').length > 0")
    assert page.evaluate("sessionStorage.getItem('vietlegal.apiKey')") == KEY


def test_side_by_side_shows_two_neutral_answers_and_stores_both_with_the_preference(page, review_server, tmp_path):
    from playwright.sync_api import expect

    server, feedback_dir = review_server
    open_with_key(page, server)
    page.check("#mode-compare")
    expect(page.locator("#model-2")).to_be_visible()
    models = page.eval_on_selector_all("#model-1 option", "options => options.map(o => o.value)")
    page.select_option("#model-1", models[0])
    page.select_option("#model-2", models[-1])  # today one adapter is served: the same one twice is allowed
    page.fill("#question", MATERNITY)
    page.click("#ask")
    for letter in "AB":
        expect(page.locator(f"#answer-{letter}")).to_have_attribute("data-state", "done", timeout=TIMEOUT_MS)
        title = page.locator(f"#answer-{letter} .answer-title").text_content()
        assert title.startswith(f"Câu trả lời {letter}") and "vietlegal-" not in page.locator(f"#answer-{letter}").text_content()
    page.check("#verdict-A-incomplete")
    page.check("#verdict-B-correct")
    page.fill("#correction-A", "Theo khoản 1 Điều 139 Bộ luật Lao động 2019, 06 tháng; trước sinh tối đa 02 tháng.")
    page.check("#preferred-1")
    shot = page.screenshot(path=str(tmp_path / "review-page.png"), full_page=True)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("VIETLEGAL_REVIEW_SCREENSHOT"):  # `make`-free way to refresh docs/review-page.png
        Path(os.environ["VIETLEGAL_REVIEW_SCREENSHOT"]).write_bytes(shot)
    page.click("#send-verdict")
    expect(page.locator("#verdict-status")).to_contain_text("Đã lưu")
    saved = page.locator("#verdict-form").get_attribute("data-saved")
    [line] = [row for row in lines(feedback_dir) if row["id"] == saved]
    assert [a["verdict"] for a in line["answers"]] == ["incomplete", "correct"]
    assert line["preferred"] == 1 and line["answers"][0]["correction"].endswith("02 tháng.")
    # Stored: the version that answered (the response's `model`: an entry's `root`), whatever name was picked.
    assert sorted(a["model"] for a in line["answers"]) == sorted(versions(server, [models[0], models[-1]]))
    shown = [page.locator(f"#answer-{x} .answer-text").text_content() for x in "AB"]
    assert [a["answer"] for a in line["answers"]] == [nfc(t) for t in shown]  # each verdict is stored with the answer it judged
    assert page.errors == []


STUB_ANSWER = [SCRIPT, IMG, " Theo khoản 1 Điều 139 Bộ luật Lao động 2019 (trước đây Điều 157 Bộ luật Lao động "
               "2012), xem Điều 999 Bộ luật Dân sự 2015."]


def stub_stream(route) -> None:
    """One chat answer carrying markup, as SSE in the server's own chunk layout; the rest of the page is real."""
    head = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": "vietlegal-stub",
            "system_fingerprint": "fp_stub"}
    events = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
               "retrieved_provisions": ["xss-2020-d1", "blld-2019-d139"]}]
    events += [{**head, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
               for piece in STUB_ANSWER]
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    body = "".join(f"data: {json.dumps(e, ensure_ascii=False)}\n\n" for e in events) + "data: [DONE]\n\n"
    route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)


def test_markup_in_an_answer_or_a_provision_is_shown_as_text_and_nothing_runs(page, review_server):
    from playwright.sync_api import expect

    server, _ = review_server
    page.route("**/v1/chat/completions", stub_stream)
    open_with_key(page, server)
    page.fill("#question", "Nội dung kiểm thử hiển thị an toàn?")
    page.click("#ask")
    card = page.locator("#answer-A")
    expect(card).to_have_attribute("data-state", "done")
    assert card.locator(".answer-text").text_content() == "".join(STUB_ANSWER)
    provision_text = card.locator('[data-provision="xss-2020-d1"]').text_content()
    assert SCRIPT in provision_text and IMG in provision_text
    # Citations marked by the real server against the corpus.
    statuses = card.locator(".citation-list li").evaluate_all("items => items.map(i => i.dataset.status)")
    assert statuses == ["found", "superseded", "not_found"]
    card.locator('.citation[data-status="found"] summary').click()  # the provision's text on click
    expect(card.locator('.citation[data-status="found"] .provision-text')).to_contain_text("06 tháng")
    # Nothing was parsed as markup, nothing ran.
    assert card.locator("script, img").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.errors == []


def test_the_page_is_readable_at_phone_width(browser, review_server):
    server, _ = review_server
    context = browser.new_context(viewport={"width": 360, "height": 740}, bypass_csp=True)
    phone = context.new_page()
    try:
        phone.route("**/v1/chat/completions", stub_stream)
        phone.goto(server.base_url + "/review")
        phone.fill("#api-key", KEY)
        phone.click("#save-key")
        phone.wait_for_function("document.querySelectorAll('#model-1 option').length > 0")
        phone.check("#mode-compare")
        phone.fill("#question", MATERNITY)
        phone.click("#ask")
        phone.wait_for_function("[...document.querySelectorAll('.answer')].every(a => a.dataset.state === 'done')",
                                timeout=TIMEOUT_MS)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 360
        assert phone.evaluate("document.documentElement.lang") == "vi"
        assert phone.locator('[lang="en"]').count() > 10  # every label has its English alternative
    finally:
        context.close()


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory, tiny_base):
    """`vietlegal serve --adapter v1=… --adapter v2=…` (#12): two adapter versions over the tiny base."""
    from vietlegal.model import untrained
    from vietlegal.serve.process import ServerProcess

    root = tmp_path_factory.mktemp("review-versions")
    for name, seed in (("v1", 1), ("v2", 2)):
        untrained.adapter(root / "models" / name, seed=seed)
    params = yaml.safe_load(SERVE_TEST_PARAMS)
    params["serve"].update(review_page=True, feedback_dir=str(root / "feedback"))
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    with ServerProcess(["v1=models/v1", "v2=models/v2"], root / "server.log", api_key=KEY, cwd=root,
                       params=root / "params.yaml", env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}) as server:
        yield server, root / "feedback"


@pytest.mark.parametrize("draw, left", [(0.9, "v1"), (0.1, "v2")])
def test_two_versions_side_by_side_in_the_drawn_order_with_the_real_ids_only_in_the_feedback(
        browser, two_versions, draw, left):
    from playwright.sync_api import expect

    server, feedback_dir = two_versions
    context = browser.new_context(viewport={"width": 1100, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.add_init_script(f"Math.random = () => {draw};")  # the page's left/right draw, fixed for the test
    try:
        open_with_key(page, server)
        names = page.eval_on_selector_all("#model-1 option", "options => options.map(o => o.value)")
        assert {"v1", "v2"} <= set(names)  # and the base, for an adapter-vs-base comparison
        page.check("#mode-compare")
        page.select_option("#model-1", "v1")
        page.select_option("#model-2", "v2")
        page.fill("#question", MATERNITY)
        page.click("#ask")
        for letter in "AB":
            expect(page.locator(f"#answer-{letter}")).to_have_attribute("data-state", "done", timeout=TIMEOUT_MS)
        shown = page.locator("#answers").text_content()
        v1, v2 = versions(server, ["v1", "v2"])
        assert v1 != v2 and v1 not in shown and v2 not in shown and "v1" not in shown
        page.check("#verdict-A-correct")
        page.check("#verdict-B-wrong_law")
        page.check("#preferred-0")
        page.click("#send-verdict")
        expect(page.locator("#verdict-status")).to_contain_text("Đã lưu")
        saved = page.locator("#verdict-form").get_attribute("data-saved")
        [line] = [row for row in lines(feedback_dir) if row["id"] == saved]
        expected = [v1, v2] if left == "v1" else [v2, v1]
        assert [a["model"] for a in line["answers"]] == expected and line["preferred"] == 0
        assert [a["system_fingerprint"] for a in line["answers"]] == ["fp_" + m.removeprefix("vietlegal-")
                                                                      for m in expected]
    finally:
        context.close()
