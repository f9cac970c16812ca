// The review page (docs/review.md): ask, stream the answer(s), show the provisions behind them, send a verdict.
// Plain script, no build step, nothing fetched but this server's own API. Every piece of text that comes from
// the model, the corpus or the server is inserted with textContent / text nodes, never as HTML.
"use strict";

const KEY = "vietlegal.apiKey";        // sessionStorage: gone when the tab closes; never in the URL
const REVIEWER = "vietlegal.reviewer";
const LETTERS = ["A", "B"];
const STATUS_LABELS = {
  found: ["Có trong cơ sở dữ liệu", "found in the corpus"],
  superseded: ["Đã hết hiệu lực / bị thay thế", "superseded"],
  not_found: ["Không tìm thấy", "not found"],
  unchecked: ["Chưa kiểm tra (máy chủ không có --rag)", "not checked: server without --rag"],
};

const $ = (id) => document.getElementById(id);
let current = null;  // the question being reviewed: {question, messages, answers: [...]}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

function bilingual(tag, vi, en, attrs) {
  const node = el(tag, vi + " ", attrs);
  node.append(el("span", "(" + en + ")", {lang: "en"}));
  return node;
}

function say(id, vi, en, isError) {
  const node = $(id);
  node.replaceChildren(document.createTextNode(vi + " "), el("span", en ? "(" + en + ")" : "", {lang: "en"}));
  node.classList.toggle("error", Boolean(isError));
}

function headers() {
  const key = sessionStorage.getItem(KEY);
  const found = {"Content-Type": "application/json"};
  if (key) found["Authorization"] = "Bearer " + key;
  return found;
}

async function apiError(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) { /* not JSON */ }
  return "HTTP " + response.status;
}

async function postJSON(path, body) {
  const response = await fetch(path, {method: "POST", headers: headers(), body: JSON.stringify(body)});
  if (!response.ok) throw new Error(await apiError(response));
  return response.json();
}

// --- access -------------------------------------------------------------------------------------------------
async function loadModels() {
  const response = await fetch("/v1/models", {headers: headers()});
  if (!response.ok) {
    say("key-status", "Chưa vào được máy chủ: " + (await apiError(response)) + ".", "Enter the API key", true);
    return;
  }
  const models = (await response.json()).data || [];
  for (const select of [$("model-1"), $("model-2")]) {
    const keep = select.value;
    select.replaceChildren(...models.map((m) => el("option", m.id, {value: m.id})));
    if (models.some((m) => m.id === keep)) select.value = keep;
  }
  if (models.length > 1 && $("model-2").value === $("model-1").value) $("model-2").selectedIndex = 1;
  const kept = sessionStorage.getItem(KEY) ? "Khóa được giữ trong phiên này." : "Máy chủ không cần khóa.";
  say("key-status", kept + " " + models.length + " mô hình.",
      (sessionStorage.getItem(KEY) ? "key kept for this session; " : "no key needed; ") + models.length + " model(s)");
}

function saveKey(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem(KEY, key);
  sessionStorage.setItem(REVIEWER, $("reviewer").value.trim());
  $("api-key").value = "";  // kept in the session only, not in the form
  $("api-key").placeholder = sessionStorage.getItem(KEY) ? "••••••••" : "";
  loadModels();
}

function forgetKey() {
  sessionStorage.removeItem(KEY);
  $("api-key").placeholder = "";
  say("key-status", "Đã xóa khóa khỏi phiên.", "key forgotten");
}

function comparing() {
  return $("mode-compare").checked;
}

function showMode() {
  $("model-2-row").hidden = !comparing();
}

// --- answers ------------------------------------------------------------------------------------------------
function answerCard(index, count) {
  const card = $("answer-template").content.firstElementChild.cloneNode(true);
  const letter = LETTERS[index];
  card.id = "answer-" + letter;
  card.querySelector(".answer-title").replaceChildren(
    ...bilingual("span", count > 1 ? "Câu trả lời " + letter : "Câu trả lời",
                 count > 1 ? "Answer " + letter : "Answer").childNodes);
  const legend = card.querySelector(".verdict legend");
  legend.replaceChildren(...bilingual("span", "Đánh giá câu trả lời " + (count > 1 ? letter : ""),
                                      "Verdict" + (count > 1 ? " on answer " + letter : "")).childNodes);
  card.querySelectorAll(".verdict .choice").forEach((choice) => {
    const input = choice.querySelector("input");
    input.name = "verdict-" + letter;
    input.id = "verdict-" + letter + "-" + input.value;
    choice.querySelector("label").htmlFor = input.id;
  });
  const correction = card.querySelector(".correction");
  correction.id = "correction-" + letter;
  card.querySelector(".correction-label").htmlFor = correction.id;
  return card;
}

function provisionItem(p) {
  const item = el("li", null, {"data-provision": p.id});
  const details = el("details");
  const summary = el("summary", p.citation + (p.title ? " – " + p.title : ""));
  details.append(summary, el("p", p.text, {class: "provision-text"}));
  const dates = [p.effective_from ? "từ " + p.effective_from : "", p.effective_to ? "đến " + p.effective_to : ""];
  if (dates.some(Boolean)) details.append(el("p", "Hiệu lực " + dates.filter(Boolean).join(" ") + " · " + p.id,
                                             {class: "provision-dates"}));
  item.append(details);
  return item;
}

async function showProvisions(card, ids) {
  const section = card.querySelector(".provisions");
  section.hidden = false;
  const list = card.querySelector(".provision-list");
  if (!ids.length) {
    list.replaceChildren(bilingual("li", "Không truy xuất được điều luật nào: câu trả lời không có căn cứ.",
                                   "nothing retrieved: the answer is ungrounded"));
    return;
  }
  const found = await postJSON("/v1/review/annotate", {retrieved_provisions: ids});
  list.replaceChildren(...found.provisions.map(provisionItem));
}

async function showCitations(card, text) {
  const found = await postJSON("/v1/review/annotate", {answer: text});
  const section = card.querySelector(".citations");
  const list = card.querySelector(".citation-list");
  section.hidden = false;
  if (!found.citations.length) {
    list.replaceChildren(bilingual("li", "Câu trả lời không dẫn chiếu điều luật nào.", "the answer cites nothing"));
    return;
  }
  list.replaceChildren(...found.citations.map((c) => {
    const [vi, en] = STATUS_LABELS[c.status] || [c.status, c.status];
    const item = el("li", null, {"data-status": c.status, class: "citation " + c.status});
    const badge = bilingual("span", vi, en, {class: "badge"});
    if (!c.provisions.length) {
      item.append(el("span", c.citation, {class: "cited"}), document.createTextNode(" "), badge);
      return item;
    }
    const details = el("details");
    const summary = el("summary");
    summary.append(el("span", c.citation, {class: "cited"}), document.createTextNode(" "), badge);
    details.append(summary, ...c.provisions.map((p) => {
      const block = el("div", null, {class: "cited-provision", "data-provision": p.id});
      block.append(el("p", p.citation + (p.title ? " – " + p.title : ""), {class: "provision-heading"}),
                   el("p", p.text, {class: "provision-text"}));
      if (p.effective_to) block.append(el("p", "Hiệu lực đến " + p.effective_to, {class: "provision-dates"}));
      return block;
    }));
    item.append(details);
    return item;
  }));
}

function readEvents(buffer, onEvent) {
  // SSE: events end with a blank line; each `data:` line of one event is joined with "\n".
  let cut;
  while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
    const block = buffer.slice(0, cut);
    buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
    const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:"))
      .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
    if (data) onEvent(data);
  }
  return buffer;
}

async function streamAnswer(card, answer, messages) {
  card.dataset.state = "streaming";
  card.setAttribute("aria-busy", "true");  // screen readers read the answer once it is complete
  const textNode = document.createTextNode("");
  card.querySelector(".answer-text").replaceChildren(textNode);
  const response = await fetch("/v1/chat/completions", {
    method: "POST", headers: headers(),
    body: JSON.stringify({model: answer.model, messages, stream: true}),
  });
  if (!response.ok) throw new Error(await apiError(response));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", chunks = 0, finished = false, provisions = null;
  const onEvent = (data) => {
    if (data === "[DONE]") { finished = true; return; }
    const event = JSON.parse(data);
    if (event.error) throw new Error(event.error.message);
    if (chunks === 0) {
      answer.system_fingerprint = event.system_fingerprint || null;
      answer.served_model = event.model;
      if (Array.isArray(event.retrieved_provisions)) {
        answer.retrieved_provisions = event.retrieved_provisions;
        provisions = showProvisions(card, event.retrieved_provisions);
      }
    }
    chunks += 1;
    card.dataset.chunks = String(chunks);
    for (const choice of event.choices || []) {
      const piece = choice.delta && choice.delta.content;
      if (piece) textNode.appendData(piece);
    }
  };
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer = readEvents(buffer + decoder.decode(value, {stream: true}), onEvent);
  }
  readEvents(buffer + decoder.decode() + "\n\n", onEvent);
  if (!finished) throw new Error("the stream ended early");
  answer.answer = textNode.data;
  if (provisions) await provisions;
  await showCitations(card, answer.answer);
  card.setAttribute("aria-busy", "false");
  card.dataset.state = "done";
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  const models = comparing() ? [$("model-1").value, $("model-2").value] : [$("model-1").value];
  if (models.some((m) => !m)) {
    say("ask-status", "Chưa có mô hình: nhập khóa API trước.", "no model listed yet: enter the API key first", true);
    return;
  }
  // Side by side: random left/right order and neutral labels, so the reviewer cannot tell which is which.
  if (models.length === 2 && Math.random() < 0.5) models.reverse();
  const messages = [{role: "user", content: question}];
  current = {question, messages, answers: models.map((model) => ({model, answer: "", system_fingerprint: null,
                                                                   retrieved_provisions: null}))};
  const cards = current.answers.map((_, i) => answerCard(i, models.length));
  if (models.length === 1) {
    cards[0].querySelector(".answer-meta").textContent = models[0];
  }
  $("answers").replaceChildren(...cards);
  $("answers").classList.toggle("pair", models.length === 2);
  $("preference").hidden = models.length !== 2;
  $("preference").querySelectorAll("input").forEach((i) => { i.checked = false; i.required = models.length === 2; });
  $("verdict-form").hidden = false;
  $("send-verdict").disabled = true;
  say("verdict-status", "", "");
  $("ask").disabled = true;
  say("ask-status", "Đang trả lời…", "answering");
  try {
    await Promise.all(current.answers.map((a, i) => streamAnswer(cards[i], a, messages)));
    say("ask-status", "Đã trả lời. Hãy đánh giá bên dưới.", "done: give your verdict below");
    $("send-verdict").disabled = false;
  } catch (error) {
    cards.forEach((c) => { if (c.dataset.state !== "done") c.dataset.state = "failed"; });
    say("ask-status", "Lỗi: " + error.message, "error", true);
  } finally {
    $("ask").disabled = false;
  }
}

async function sendVerdict(event) {
  event.preventDefault();
  if (!current) return;
  const form = $("verdict-form");
  const answers = current.answers.map((a, i) => {
    const letter = LETTERS[i];
    const chosen = form.querySelector('input[name="verdict-' + letter + '"]:checked');
    const correction = $("correction-" + letter).value.trim();
    // The id the server answered as (the response's `model`), which is the one picked from /v1/models.
    return {model: a.served_model || a.model, system_fingerprint: a.system_fingerprint, answer: a.answer,
            retrieved_provisions: a.retrieved_provisions, verdict: chosen ? chosen.value : null,
            correction: correction || null};
  });
  const preferred = form.querySelector('input[name="preferred"]:checked');
  const body = {question: current.question, messages: current.messages, answers,
                preferred: answers.length === 2 && preferred && preferred.value !== "" ? Number(preferred.value) : null,
                reviewer: sessionStorage.getItem(REVIEWER) || null};
  $("send-verdict").disabled = true;
  try {
    const stored = await postJSON("/v1/feedback", body);
    say("verdict-status", "Đã lưu đánh giá " + stored.id + ".", "verdict saved");
    form.dataset.saved = stored.id;
  } catch (error) {
    say("verdict-status", "Chưa lưu được: " + error.message, "not saved", true);
    $("send-verdict").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("reviewer").value = sessionStorage.getItem(REVIEWER) || "";
  if (sessionStorage.getItem(KEY)) $("api-key").placeholder = "••••••••";
  $("key-form").addEventListener("submit", saveKey);
  $("forget-key").addEventListener("click", forgetKey);
  $("mode-single").addEventListener("change", showMode);
  $("mode-compare").addEventListener("change", showMode);
  $("ask-form").addEventListener("submit", ask);
  $("verdict-form").addEventListener("submit", sendVerdict);
  showMode();
  loadModels();
});
