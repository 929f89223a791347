"""`rag serve`'s HTTP API through FastAPI's test client, over the shipped corpus with the real
models: each endpoint, each error, the OpenAI format read back by the `openai` client, and a new
generation served without a restart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

fastapi = pytest.importorskip("fastapi", reason="rag serve needs the serve extra (pip install -e '.[serve]')")
from fastapi.testclient import TestClient  # noqa: E402

from rag.serve.app import create_app  # noqa: E402
from rag.serve.models import AnswerOut  # noqa: E402
from rag.serve.service import Service  # noqa: E402
from tests.conftest import SEED  # noqa: E402

QUESTION = "What is statistical significance?"


@pytest.fixture(scope="module")
def service(real_index, settings):
    s = Service(settings, real_index, workers=2)
    s.warm()
    yield s
    s.close()


@pytest.fixture(scope="module")
def client(service):
    with TestClient(create_app(service)) as c:
        yield c


def events(text: str) -> list[tuple[str, object]]:
    """Server-sent events as (name, parsed data), read strictly: every block is `event:` then one
    `data:` line of JSON."""
    out = []
    for block in text.split("\n\n"):
        if not block:
            continue
        lines = block.split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: ") and len(lines) == 2, block
        out.append((lines[0][7:], json.loads(lines[1][6:])))
    return out


def one_line_error(r, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and "\n" not in body["error"]
    assert "Traceback" not in r.text
    return body["error"]


# --------------------------------------------------------------------------- /api/ask


def test_ask_returns_the_object_rag_ask_json_gives(client, service):
    from rag.answer.types import answer_json

    r = client.post("/api/ask", json={"question": QUESTION, "mode": "extractive"})
    assert r.status_code == 200
    got = r.json()
    AnswerOut.model_validate(got)  # extra="forbid": no field the model does not describe
    direct = answer_json(service.stack.answerer.ask(QUESTION, mode="extractive"))
    for key in ("question", "answer", "outcome", "abstained", "abstain_reason", "mode", "citations"):
        assert got[key] == direct[key], key
    assert set(direct) - {"timings"} <= set(got)
    assert got["sentences"] and all(s["cites"] for s in got["sentences"])
    assert got["sources"][0]["url"].startswith("https://")


def test_ask_streams_events_ending_with_the_whole_answer(client):
    plain = client.post("/api/ask", json={"question": QUESTION}).json()
    r = client.post("/api/ask", json={"question": QUESTION}, headers={"Accept": "text/event-stream"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    evs = events(r.text)
    assert evs[0][0] == "meta" and evs[-1][0] == "answer"
    assert evs[-1][1]["answer"] == plain["answer"]


def test_an_llm_answer_streams_only_sentences_it_keeps(client, llm_works):
    r = client.post(
        "/api/ask",
        json={"question": "How does self-attention work?", "mode": "llm"},
        headers={"Accept": "text/event-stream"},
    )
    evs = events(r.text)
    final = evs[-1][1]
    assert evs[-1][0] == "answer", evs[-1]
    sentences = [d["text"] for name, d in evs if name == "sentence"]
    if final["mode"] == "llm":  # the model's verified sentences, each in the final answer
        assert sentences and " ".join(sentences) == final["answer"]
    else:  # nothing of the draft stood: quoted instead, and nothing was streamed
        assert not sentences


def test_streamed_sentences_come_as_they_are_verified_then_the_answer(client, service, monkeypatch):
    """The stream's plumbing with an answerer whose `ask` streams two sentences: each is an
    event of its own, in order, before the final answer, and the OpenAI stream carries them too."""
    real = service.stack.answerer.ask

    def streaming_ask(question, stream=None, **kwargs):
        for s in ("First kept sentence. [1]", "Second kept sentence. [1]"):
            stream(s)
        return real(question, **{**kwargs, "mode": "extractive"})

    monkeypatch.setattr(service.stack.answerer, "ask", streaming_ask)
    r = client.post("/api/ask", json={"question": QUESTION}, headers={"Accept": "text/event-stream"})
    assert [name for name, _ in events(r.text)] == ["meta", "sentence", "sentence", "answer"]
    assert [d["text"] for name, d in events(r.text) if name == "sentence"] == [
        "First kept sentence. [1]",
        "Second kept sentence. [1]",
    ]
    r = client.post(
        "/v1/chat/completions",
        json={"model": "rag", "stream": True, "messages": [{"role": "user", "content": QUESTION}]},
    )
    data = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    deltas = [json.loads(d)["choices"][0]["delta"].get("content") for d in data[:-1]]
    assert deltas[:3] == ["", "First kept sentence. [1]", " Second kept sentence. [1]"]


def test_a_follow_up_is_read_with_the_earlier_topic(client):
    r = client.post("/api/ask", json={"question": "why is it a scam?", "after": QUESTION})
    body = r.json()
    assert body["follows"] == QUESTION and body["question"] == "why is it a scam?"
    assert "statistical significance" in body["query"]
    alone = client.post("/api/ask", json={"question": "why is it a scam?"}).json()
    assert alone["follows"] is None


def test_ask_with_filters_cites_only_that_author(client, service):
    author = next(a.author for a in service.store.articles() if a.author)
    body = client.post("/api/ask", json={"question": QUESTION, "filters": {"author": author}}).json()
    urls = {a.url for a in service.store.articles() if a.author == author}
    assert {c["url"] for c in body["citations"]} <= urls


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"question": ""}, "question"),
        ({"question": "x" * 2001}, "question"),
        ({"question": "ok", "mode": "poetry"}, "mode"),
        ({"question": "ok", "k": 0}, "k"),
        ({"question": "ok", "path": "/etc/passwd"}, "path"),
        ({"question": "ok", "filters": {"file": "x"}}, "filters.file"),
        ({}, "question"),
    ],
)
def test_a_bad_ask_is_a_422_naming_the_field(client, body, where):
    assert one_line_error(client.post("/api/ask", json=body), 422).startswith(where)


def test_a_body_that_is_not_json_is_a_422(client):
    r = client.post("/api/ask", content=b"{not json", headers={"Content-Type": "application/json"})
    assert one_line_error(r, 422) == "the body is not valid JSON"


def test_a_body_over_the_limit_is_a_413(client):
    r = client.post("/api/ask", content=b"x" * 70_000, headers={"Content-Type": "application/json"})
    assert "too large" in one_line_error(r, 413)


def test_a_bad_date_filter_is_a_400_that_says_how(client):
    r = client.post("/api/ask", json={"question": QUESTION, "filters": {"since": "last week"}})
    assert "YYYY-MM-DD" in one_line_error(r, 400)


def test_a_question_of_control_characters_only_is_a_400(client):
    assert "empty question" in one_line_error(client.post("/api/ask", json={"question": "\x00\x1b"}), 400)


def test_a_busy_server_says_503_with_retry_after(client, service, monkeypatch):
    from rag.serve import service as svc

    monkeypatch.setattr(svc, "MAX_PENDING", 0)
    r = client.post("/api/ask", json={"question": QUESTION}, headers={"Accept": "text/event-stream"})
    assert "busy" in one_line_error(r, 503) and r.headers["retry-after"]


def test_the_llm_queue_when_full_is_a_503(client, service, monkeypatch):
    monkeypatch.setattr(service, "_llm_pending", service.llm_queue + 1)
    r = client.post("/api/ask", json={"question": QUESTION, "mode": "llm"})
    assert "LLM is busy" in one_line_error(r, 503)


def test_a_bug_is_a_500_without_its_traceback(service, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("secret detail /home/someone")

    monkeypatch.setattr(service, "search", broken)
    with TestClient(create_app(service), raise_server_exceptions=False) as c:
        r = c.get("/api/search", params={"q": "attention"})
    assert "internal error" in one_line_error(r, 500) and "secret" not in r.text


# --------------------------------------------------------------------------- the other routes


def test_search_returns_rag_search_json(client):
    r = client.get("/api/search", params={"q": "how does self-attention work", "k": 3, "retriever": "bm25"})
    body = r.json()
    assert body["retriever"] == "bm25" and len(body["results"]) == 3
    assert [h["rank"] for h in body["results"]] == [1, 2, 3]
    assert {"chunk_id", "url", "title", "author", "heading", "published", "text", "score"} <= set(
        body["results"][0]
    )


@pytest.mark.parametrize(
    "params",
    [{}, {"q": ""}, {"q": "x", "k": 0}, {"q": "x", "retriever": "grep"}, {"q": "x", "author": "a" * 301}],
)
def test_a_bad_search_is_a_422(client, params):
    one_line_error(client.get("/api/search", params=params), 422)


def test_sources_lists_the_articles_and_filters_by_author(client, service):
    every = client.get("/api/sources").json()
    assert len(every) == len(service.store.articles())
    author = next(a["author"] for a in every if a["author"])
    some = client.get("/api/sources", params={"author": author.split()[0].lower()}).json()
    assert 0 < len(some) <= len(every)
    assert all(author.split()[0].lower() in a["author"].lower() for a in some)


def test_health_names_the_generation_counts_models_and_versions(client, service):
    h = client.get("/api/health").json()
    m = service.store.manifest()
    assert h["generation"] == m["generation"] and h["chunks"] == m["counts"]["chunks"]
    assert h["articles"] == len(service.store.articles())
    assert h["models"]["embedder"]["name"] == "all-MiniLM-L6-v2" and h["models"]["llm"].endswith(".gguf")
    assert h["versions"]["fastapi"] and h["versions"]["rag"]


def test_openapi_describes_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/ask", "/api/search", "/api/sources", "/api/health", "/v1/chat/completions"} <= set(paths)


def test_the_page_and_its_files_are_served_and_nothing_else(client):
    page = client.get("/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert 'src="/static/app.js"' in page.text and "http" not in page.text.replace("http-equiv", "")
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    for path in ("/static/../service.py", "/static/index.html%2F..%2F..%2Fapp.py", "/static/nope.js"):
        assert client.get(path).status_code == 404
    one_line_error(client.get("/no/such/route"), 404)
    one_line_error(client.delete("/api/ask"), 405)


# --------------------------------------------------------------------------- the guard


def test_with_a_token_every_request_needs_it(service):
    with TestClient(create_app(service, token="s3cret")) as c:
        for path in ("/", "/api/health", "/openapi.json", "/static/app.js"):
            assert "token" in one_line_error(c.get(path), 401)
        assert c.get("/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        r = c.post("/api/ask", json={"question": QUESTION})
        assert r.status_code == 401
        # a browser: /?token= once, then a cookie
        r = c.get("/?token=s3cret", follow_redirects=False)
        assert r.status_code == 303 and "HttpOnly" in r.headers["set-cookie"]
        assert "s3cret" not in r.headers["set-cookie"]  # a digest of it
        assert c.get("/api/health").status_code == 200  # the client kept the cookie


def test_a_loopback_server_answers_only_loopback_host_names(service):
    with TestClient(create_app(service, hosts={"127.0.0.1", "localhost"})) as c:
        assert c.get("/api/health", headers={"Host": "127.0.0.1:8000"}).status_code == 200
        assert "Host" in one_line_error(c.get("/api/health", headers={"Host": "evil.example"}), 400)


# --------------------------------------------------------------------------- OpenAI


def test_chat_completions_read_back_by_the_openai_client(client):
    openai = pytest.importorskip("openai")
    oc = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)
    got = oc.chat.completions.create(model="rag-extractive", messages=[{"role": "user", "content": QUESTION}])
    text = got.choices[0].message.content
    assert got.choices[0].finish_reason == "stop" and "[1]" in text and "\n\nSources:\n[1] " in text
    structured = got.model_extra["rag"]
    assert structured["outcome"] == "answered" and structured["answer"] in text


def test_chat_completions_stream_read_back_by_the_openai_client(client):
    openai = pytest.importorskip("openai")
    oc = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)
    messages = [
        {"role": "system", "content": "ignored"},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "..."},
        {"role": "user", "content": [{"type": "text", "text": "why is it a scam?"}]},
    ]
    chunks = list(oc.chat.completions.create(model="rag", messages=messages, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    structured = chunks[-1].model_extra["rag"]
    assert structured["follows"] == QUESTION and structured["answer"] in text


def test_chat_completion_errors_are_openai_shaped(client):
    r = client.post(
        "/v1/chat/completions", json={"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert r.status_code == 400 and "unknown model" in r.json()["error"]["message"]
    r = client.post(
        "/v1/chat/completions", json={"model": "rag", "messages": [{"role": "system", "content": "x"}]}
    )
    assert r.status_code == 400 and "user message" in r.json()["error"]["message"]
    r = client.post("/v1/chat/completions", json={"model": "rag", "messages": []})
    assert r.status_code == 422
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["rag", "rag-extractive", "rag-llm"]


# --------------------------------------------------------------------------- a new generation


def test_a_new_generation_is_served_without_a_restart(real_index, settings, onnx_embedder, tmp_path: Path):
    from rag.index import build_index

    index = tmp_path / "idx"
    shutil.copytree(real_index, index)
    service = Service(settings, index, workers=2)
    try:
        with TestClient(create_app(service)) as c:
            before = c.get("/api/health").json()
            assert not c.get("/api/sources", params={"author": "zz"}).json()
            scrapes = tmp_path / "scrapes"
            scrapes.mkdir()
            shutil.copy(SEED, scrapes / SEED.name)
            shutil.copy(Path(__file__).parents[1] / "data" / "one_article.md", scrapes / "one.md")
            build_index(settings, scrapes, index, embedder=onnx_embedder)
            after = c.get("/api/health").json()
            assert after["generation"] == before["generation"] + 1
            assert after["articles"] == before["articles"] + 1
            titles = [a["title"] for a in c.get("/api/sources").json()]
            assert "Why Vector Indexes Need Care" in titles
            hits = c.get("/api/search", params={"q": "approximate vector index recall HNSW", "k": 3}).json()
            assert hits["results"][0]["title"] == "Why Vector Indexes Need Care"
    finally:
        service.close()
