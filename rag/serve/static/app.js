// The page of `rag serve`. Every text that comes from the index (titles, authors, passages,
// answers) is put on the page with textContent, never as HTML: an article containing <script>
// shows it as text. Links are made only for http(s) URLs.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function safeHref(url) {
  return /^https?:\/\//i.test(url || "") ? url : null;
}

function link(url, text) {
  const href = safeHref(url);
  return href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }, text) : el("span", {}, text);
}

function status(text) {
  $("status").textContent = text || "";
}

async function errorOf(resp) {
  try {
    const body = await resp.json();
    return (body && (body.error && body.error.message ? body.error.message : body.error)) || resp.statusText;
  } catch (e) {
    return resp.status + " " + resp.statusText;
  }
}

// ------------------------------------------------------------------------------- views

function show(view) {
  for (const tab of document.querySelectorAll(".tab")) {
    const on = tab.dataset.view === view;
    if (on) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  for (const v of ["ask", "sources", "search"]) $("view-" + v).hidden = v !== view;
  if (view === "sources") loadSources();
  const first = { ask: "question", sources: "author", search: "search-q" }[view];
  $(first).focus();
}

// ------------------------------------------------------------------------------- asking

const OUTCOME = {
  answered: "Answered",
  unsure: "Not sure: the closest passages, which may not answer it",
  abstained: "The indexed articles do not answer this",
};

let previous = null; // the last answered turn: {question, query, cited}

function setContext(turn) {
  previous = turn;
  $("context").hidden = !turn;
  $("context-question").textContent = turn ? turn.question : "";
}

// Server-sent events from a fetch body: calls onEvent(name, data) for each.
async function readEvents(resp, onEvent) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

async function ask(question) {
  const mode = $("mode").value || null;
  const body = { question, mode };
  if (previous) {
    body.after = previous.question;
    body.after_query = previous.query;
    body.cited = previous.cited;
  }
  const turn = el("article", { class: "turn", "aria-busy": "true" });
  const head = el("h2", { class: "question" }, question);
  const badge = el("p", { class: "outcome pending" }, "Looking through the articles…");
  const answer = el("div", { class: "answer", "aria-live": "polite" });
  turn.append(head, badge, answer);
  $("conversation").append(turn);
  turn.scrollIntoView({ block: "nearest" });
  $("ask-button").disabled = true;
  status("asking…");
  const started = performance.now();
  try {
    const resp = await fetch("/api/ask", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(body),
    });
    if (!resp.ok) throw new Error(await errorOf(resp));
    let streamed = null;
    await readEvents(resp, (name, data) => {
      if (name === "sentence") {
        if (!streamed) {
          badge.className = "outcome pending writing";
          badge.textContent = "Writing (each sentence checked against its source)…";
          streamed = el("p", { class: "streaming" });
          answer.append(streamed);
        }
        streamed.append(el("span", { class: "sentence" }, data.text + " "));
      } else if (name === "answer") {
        renderAnswer(turn, badge, answer, data);
        // as `rag chat` does: the next question may lean on this one (and through it, on the
        // topic this one borrowed); "who wrote it?" asks about what this answer cited
        const cited = data.citations.map((c) => c.url);
        setContext({
          question,
          query: data.query || question,
          cited: cited.length ? cited : (data.sources || []).slice(0, 1).map((s) => s.url),
        });
        status("answered in " + ((performance.now() - started) / 1000).toFixed(1) + " s");
      } else if (name === "error") {
        throw new Error(data.error);
      }
    });
  } catch (e) {
    badge.className = "outcome error";
    badge.textContent = "Error: " + e.message;
    status("");
  } finally {
    turn.removeAttribute("aria-busy");
    $("ask-button").disabled = false;
  }
}

function renderAnswer(turn, badge, answer, data) {
  turn.dataset.outcome = data.outcome;
  turn.dataset.mode = data.mode;
  if (data.follows) {
    turn.insertBefore(el("p", { class: "follows" }, "following up on: " + data.follows), badge);
  }
  badge.className = "outcome " + data.outcome;
  badge.textContent = OUTCOME[data.outcome] || data.outcome;
  if (data.abstain_reason) badge.append(el("span", { class: "reason" }, " — " + data.abstain_reason));
  answer.replaceChildren();
  const byN = new Map(data.citations.map((c) => [c.n, c]));
  const p = el("p", { class: "text" });
  if (data.sentences && data.sentences.length) {
    for (const s of data.sentences) {
      p.append(el("span", { class: "sentence" }, s.text));
      for (const n of s.cites) {
        const c = byN.get(n);
        if (c) p.append(" ", citeButton(c, s.text));
      }
      p.append(" ");
    }
  } else {
    p.textContent = data.answer;
  }
  answer.append(p);
  if (data.citations.length) {
    // one line an article, as `rag ask` prints them: [1][3] Title (date)
    const list = el("ul", { class: "cited" });
    const byUrl = new Map();
    const meta = new Map((data.sources || []).map((x) => [x.url, x]));
    for (const c of data.citations) {
      if (!byUrl.has(c.url)) byUrl.set(c.url, []);
      byUrl.get(c.url).push(c);
    }
    for (const cs of byUrl.values()) {
      const li = el("li", {});
      for (const c of cs) li.append(citeButton(c, sentenceOf(data, c.n)), " ");
      const about = meta.get(cs[0].url) || {};
      const by = [about.author ? "by " + about.author : "", (about.published || "").slice(0, 10)].filter(Boolean);
      li.append(link(cs[0].url, cs[0].title), by.length ? el("span", { class: "muted" }, " — " + by.join(", ")) : null);
      list.append(li);
    }
    answer.append(el("h3", {}, "Sources"), list);
  } else if (data.sources && data.sources.length) {
    const list = el("ul", { class: "cited" });
    for (const s of data.sources.slice(0, 3)) {
      list.append(el("li", {}, link(s.url, s.title), s.author ? el("span", { class: "muted" }, ", by " + s.author) : null));
    }
    answer.append(el("h3", {}, "Closest articles"), list);
  }
}

function sentenceOf(data, n) {
  const s = (data.sentences || []).find((x) => x.cites.includes(n));
  return s ? s.text : "";
}

function citeButton(citation, sentence) {
  const open = () => showPassage(citation, sentence, button);
  const button = el(
    "button",
    { type: "button", class: "cite", "aria-controls": "passage", "aria-expanded": "false",
      title: citation.title, onclick: open },
    "[" + citation.n + "]",
  );
  button.addEventListener("mouseenter", () => showPassage(citation, sentence, null));
  return button;
}

// ------------------------------------------------------------------------------- the passage

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// Where `quote` stands in `text`, whatever whitespace separates its words: [start, end] or null.
function locate(text, quote) {
  const words = (quote || "").trim().split(/\s+/).filter(Boolean);
  for (let n = words.length; n >= Math.min(4, words.length) && n > 0; n = Math.floor(n / 2)) {
    const re = new RegExp(words.slice(0, n).map(escapeRegExp).join("\\s+"));
    const m = re.exec(text);
    if (m) {
      // the whole quote when it is there; else the longest opening of it that is
      const whole = new RegExp(words.map(escapeRegExp).join("\\s+")).exec(text);
      return whole ? [whole.index, whole.index + whole[0].length] : [m.index, m.index + m[0].length];
    }
  }
  return null;
}

let opener = null;

function showPassage(citation, sentence, button) {
  const panel = $("passage");
  $("passage-title").textContent = "[" + citation.n + "] " + citation.title;
  const a = $("passage-link");
  a.textContent = citation.url;
  if (safeHref(citation.url)) a.setAttribute("href", citation.url);
  else a.removeAttribute("href");
  const box = $("passage-text");
  box.replaceChildren();
  const text = citation.text;
  const at = locate(text, sentence);
  if (at) {
    box.append(text.slice(0, at[0]), el("mark", {}, text.slice(at[0], at[1])), text.slice(at[1]));
  } else {
    box.append(text);
  }
  panel.hidden = false;
  for (const b of document.querySelectorAll(".cite[aria-expanded=true]")) b.setAttribute("aria-expanded", "false");
  if (button) {
    button.setAttribute("aria-expanded", "true");
    opener = button;
    panel.focus();
    const mark = box.querySelector("mark");
    if (mark) mark.scrollIntoView({ block: "nearest" });
  }
}

function closePassage() {
  $("passage").hidden = true;
  for (const b of document.querySelectorAll(".cite[aria-expanded=true]")) b.setAttribute("aria-expanded", "false");
  if (opener) opener.focus();
  opener = null;
}

// ------------------------------------------------------------------------------- sources, search

let sourcesTimer = null;
let sourcesAsked = 0;

async function loadSources() {
  const author = $("author").value.trim();
  const mine = ++sourcesAsked;
  const resp = await fetch("/api/sources" + (author ? "?author=" + encodeURIComponent(author) : ""));
  if (mine !== sourcesAsked) return; // a later filter's answer is coming
  const list = $("sources-list");
  list.replaceChildren();
  if (!resp.ok) {
    $("sources-count").textContent = "Error: " + (await errorOf(resp));
    return;
  }
  const arts = await resp.json();
  $("sources-count").textContent = arts.length + (arts.length === 1 ? " article" : " articles") +
    (author ? " by an author matching “" + author + "”" : "");
  for (const a of arts) {
    list.append(el("li", { class: "source" }, link(a.url, a.title), el("br"),
      el("span", { class: "muted" }, [a.author || "unknown author", (a.published || "").slice(0, 10), a.publication]
        .filter(Boolean).join(" · "))));
  }
}

async function search(q) {
  const list = $("search-results");
  list.replaceChildren();
  status("searching…");
  const resp = await fetch("/api/search?k=10&q=" + encodeURIComponent(q));
  if (!resp.ok) {
    status("");
    list.append(el("li", { class: "error" }, "Error: " + (await errorOf(resp))));
    return;
  }
  const data = await resp.json();
  status(data.results.length + " passages");
  for (const h of data.results) {
    const snippet = h.text.length > 400 ? h.text.slice(0, 400) + "…" : h.text;
    list.append(el("li", { class: "hit" }, link(h.url, h.title),
      h.author ? el("span", { class: "muted" }, ", by " + h.author) : null,
      h.heading ? el("div", { class: "heading" }, h.heading) : null,
      el("p", { class: "snippet" }, snippet)));
  }
}

// ------------------------------------------------------------------------------- wiring

document.addEventListener("DOMContentLoaded", () => {
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => show(tab.dataset.view));
  $("ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("question").value.trim();
    if (!q) return;
    $("question").value = "";
    ask(q).then(() => $("question").focus());
  });
  $("new-topic").addEventListener("click", () => {
    setContext(null);
    $("question").focus();
  });
  $("passage-close").addEventListener("click", closePassage);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("passage").hidden) closePassage();
  });
  $("author").addEventListener("input", () => {
    clearTimeout(sourcesTimer);
    sourcesTimer = setTimeout(loadSources, 200);
  });
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("search-q").value.trim();
    if (q) search(q);
  });
  $("question").focus();
});
