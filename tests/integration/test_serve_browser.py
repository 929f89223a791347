"""The page of `rag serve` in a real browser: Debian's chromium, driven by Playwright, against
`rag serve` started as a user starts it, on a free loopback port, over the shipped corpus plus an
article whose title and text hold <script> and an onerror handler.

Keyboard only: ask (Enter), see the answer stream in and its outcome, open a citation's passage
with the quote highlighted (Enter on the [n]), close it (Escape), follow up, filter the sources
by author, search; the article's markup shows as text and never runs; the page fits 375 px.
`RAG_SERVE_SCREENSHOT=docs/serve.png` writes the README's screenshot there (else a temp file).
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import SEED

pytest.importorskip("fastapi", reason="rag serve needs the serve extra (pip install -e '.[serve]')")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium; make test does)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
QUESTION = "What is statistical significance?"
SCRIPT_ARTICLE = Path(__file__).parents[1] / "data" / "one_article.md"


@pytest.fixture(scope="module")
def index_with_markup(tmp_path_factory, settings, onnx_embedder) -> Path:
    """The shipped corpus and one article with <script> and <img onerror> in its title and text."""
    from rag.index import build_index

    root = tmp_path_factory.mktemp("serve-browser")
    scrapes = root / "scrapes"
    scrapes.mkdir()
    shutil.copy(SEED, scrapes / SEED.name)
    text = SCRIPT_ARTICLE.read_text(encoding="utf-8")
    text = text.replace("Why Vector Indexes Need Care", "Escaping <script> Tags in Templates")
    text = text.replace("one-article-1", "escaping-script-tags")
    text = text.replace(
        "A vector index answers the question",
        "A template that prints <script>window.pwned = 1</script> or "
        '<img src=x onerror="window.pwned = 2"> verbatim runs it in the reader\'s browser. '
        "A vector index answers the question",
    )
    (scrapes / "markup.md").write_text(text, encoding="utf-8")
    build_index(settings, scrapes, root / "idx", embedder=onnx_embedder)
    return root / "idx"


@pytest.fixture(scope="module")
def server(index_with_markup) -> str:
    """`rag serve` on a free loopback port (port 0: the address it prints says which)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", "serve", "--index", str(index_with_markup), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        while True:
            line = lines.get(timeout=120)
            if line.startswith("rag serve: http://127.0.0.1:"):
                break
        yield line.split(": ", 1)[1].strip()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture()
def page(tmp_path):
    if CHROMIUM is None:
        pytest.fail("chromium is missing: CI installs it (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh profile each run
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1100, "height": 900},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def test_the_page_asks_streams_cites_follows_up_filters_and_keeps_markup_inert(
    server, page, tmp_path, llm_works
):
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
    )
    page.add_init_script(
        # what the answer looked like before its final event: sentences streaming in, or the
        # 'looking' badge of an answer that arrives whole (extractive)
        """window.__seen = [];
        new MutationObserver(() => {
          const b = document.querySelector('.turn:last-of-type .outcome');
          if (b && window.__seen[window.__seen.length - 1] !== b.className) window.__seen.push(b.className);
        }).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});"""
    )
    page.goto(server)

    # 1. ask, keyboard only: the question box has focus; Enter submits
    assert page.evaluate("document.activeElement.id") == "question"
    page.keyboard.type(QUESTION)
    page.keyboard.press("Enter")
    first = page.locator(".turn").nth(0)
    first.locator(".outcome.answered, .outcome.unsure, .outcome.abstained").wait_for(timeout=60_000)
    assert "outcome pending" in page.evaluate("window.__seen")  # shown while it was on its way
    assert first.get_attribute("data-outcome") == "answered"
    assert first.locator(".outcome").inner_text().startswith("Answered")
    answer_text = first.locator(".answer .text").inner_text()
    assert len(answer_text) > 40 and "[1]" in answer_text

    # 2. a citation's passage: Tab to the first [n], Enter; the quote is marked in its chunk
    cite = first.locator(".answer .text .cite").first
    cite.focus()
    page.keyboard.press("Enter")
    passage = page.locator("#passage")
    passage.wait_for(state="visible")
    mark = passage.locator("mark")
    assert mark.count() == 1
    quoted = " ".join(mark.inner_text().split())
    sentences = [" ".join(t.split()) for t in first.locator(".answer .text .sentence").all_inner_texts()]
    assert any(quoted in s or s in quoted for s in sentences), (quoted, sentences)
    assert page.locator("#passage-link").get_attribute("href").startswith("https://")
    assert cite.get_attribute("aria-expanded") == "true"
    shot = Path(os.environ.get("RAG_SERVE_SCREENSHOT") or tmp_path / "serve.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    page.keyboard.press("Escape")
    assert passage.is_hidden() and page.evaluate("document.activeElement.classList.contains('cite')")

    # 3. a follow-up keeps the topic, as rag chat does
    page.locator("#question").focus()
    page.keyboard.type("why is it a scam?")
    page.keyboard.press("Enter")
    second = page.locator(".turn").nth(1)
    second.locator(".outcome.answered, .outcome.unsure, .outcome.abstained").wait_for(timeout=60_000)
    assert second.locator(".follows").inner_text() == f"following up on: {QUESTION}"

    # 4. the sources view, filtered by author
    page.locator("#tab-sources").focus()
    page.keyboard.press("Enter")
    rows = page.locator("#sources-list li")
    rows.first.wait_for()
    every = rows.count()
    assert every == 12  # the shipped corpus's 11 and the markup article
    author = page.evaluate(
        "fetch('/api/sources').then(r => r.json()).then(a => a.find(x => x.author).author)"
    )
    page.keyboard.type(author.split()[-1])
    page.wait_for_function("n => document.querySelectorAll('#sources-list li').length < n", arg=every)
    assert all(author.split()[-1] in t for t in rows.all_inner_texts())

    # 5. markup from an article is text: shown, never run
    page.locator("#author").fill("")
    page.wait_for_function("n => document.querySelectorAll('#sources-list li').length === n", arg=every)
    assert page.get_by_text("Escaping <script> Tags in Templates").count() == 1
    page.locator("#tab-search").click()
    page.locator("#search-q").fill("template prints script verbatim reader's browser")
    page.keyboard.press("Enter")
    hit = page.locator("#search-results li").first
    hit.wait_for()
    assert "<script>window.pwned = 1</script>" in hit.inner_text()
    assert '<img src=x onerror="window.pwned = 2">' in hit.inner_text()
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("document.querySelectorAll('script').length") == 1  # app.js alone
    assert page.evaluate("document.querySelectorAll('main img').length") == 0

    # 6. 375 px wide: nothing wider than the screen
    page.set_viewport_size({"width": 375, "height": 800})
    page.locator("#tab-ask").click()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375

    assert not problems, problems


class StreamingService:
    """A stand-in for rag.serve.service.Service whose answer streams two sentences a moment
    apart, as an LLM answer does: the page must show them before the whole answer arrives."""

    settings = SimpleNamespace(answer=SimpleNamespace(mode="llm"))

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(2)

    def submit(self, mode, fn, /, *args, **kwargs):
        return self.pool.submit(fn, *args, **kwargs)

    def ask(self, question, stream=None, **_):
        for text in ("Attention weighs every token against every other. [1]", "The weights sum to one. [1]"):
            time.sleep(0.4)
            stream(text)
        time.sleep(0.4)
        chunk = "Self-attention: attention weighs every token against every other. The weights sum to one."
        return {
            "question": question,
            "answer": "Attention weighs every token against every other. [1] The weights sum to one. [1]",
            "outcome": "answered",
            "abstained": False,
            "confidence": 0.9,
            "abstain_reason": "",
            "mode": "llm",
            "citations": [
                {"n": 1, "url": "https://example.org/a", "title": "A", "chunk_id": "c1", "text": chunk}
            ],
            "timings": {},
            "sentences": [
                {"text": "Attention weighs every token against every other.", "cites": [1]},
                {"text": "The weights sum to one.", "cites": [1]},
            ],
            "sources": [],
        }


@pytest.fixture()
def streaming_server():
    import uvicorn

    from rag.serve.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(create_app(StreamingService()), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (server.started and server.servers) and time.monotonic() < deadline:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


def test_the_page_shows_streamed_sentences_before_the_whole_answer(streaming_server, page):
    page.goto(streaming_server)
    page.keyboard.type("How does self-attention work?")
    page.keyboard.press("Enter")
    turn = page.locator(".turn").first
    turn.locator(".streaming .sentence").first.wait_for(timeout=10_000)
    assert turn.locator(".outcome").inner_text().startswith("Writing")
    assert "Attention weighs every token" in turn.locator("p.streaming").inner_text()
    turn.locator(".outcome.answered").wait_for(timeout=10_000)
    assert turn.locator("p.streaming").count() == 0  # replaced by the whole, cited answer
    assert turn.locator(".answer .text .cite").count() == 2
    turn.locator(".answer .text .cite").nth(1).click()
    assert page.locator("#passage mark").inner_text() == "The weights sum to one."
