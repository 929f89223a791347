"""The HTTP face of `rag serve`: the page, the JSON API, the OpenAI-style chat endpoint.

Every route is a thin wrapper over `Service` (rag/serve/service.py), whose calls run on its worker
threads; this module only parses requests, streams, and turns failures into one-line JSON:
a `RagError` is the client's (400; 503 when the server is busy or the index missing), a bad
request body 422, anything else 500 with its traceback in the server's log, never in the reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from http.cookies import SimpleCookie
from importlib.resources import files
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

import rag
from rag.errors import IndexMissing, RagError
from rag.serve import chat
from rag.serve.models import (
    MAX_FIELD,
    MAX_QUESTION,
    AnswerOut,
    ArticleOut,
    AskIn,
    ChatIn,
    ErrorOut,
    FiltersIn,
    SearchOut,
)
from rag.serve.service import Busy, Service

log = logging.getLogger("rag.serve")

MAX_BODY = 64 * 1024  # bytes of a request body
COOKIE = "rag_token"
COOKIE_FLAGS = "HttpOnly; SameSite=Strict; Path=/"
# The page runs only its own script and style; nothing it shows can load or run anything else.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
STATIC = {  # the page's files, the only files served: a request never names a path to read
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 401, 413, 422, 503)}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:500]


# ------------------------------------------------------------------------------- the guard


class Guard:
    """ASGI middleware in front of every route: the Host a browser sent (no DNS rebinding onto a
    loopback server), the token when one is set, and the body's size."""

    def __init__(self, app: Any, token: str | None, hosts: set[str] | None, max_body: int = MAX_BODY) -> None:
        self.app, self.token, self.hosts, self.max_body = app, token, hosts, max_body
        # The page's cookie holds a digest of the token, never the token itself (which may also
        # hold characters a cookie cannot).
        self.cookie = hashlib.sha256(f"rag serve page:{token}".encode()).hexdigest() if token else ""

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.hosts is not None and _hostname(headers.get("host", "")) not in self.hosts:
            await _reject(send, 400, "unexpected Host header: use the address the server printed")
            return
        if self.token and not self._authorised(headers):
            if scope["path"] == "/" and self._token_in_query(scope):
                # The page opened as /?token=T: remember it in a cookie and drop it from the URL.
                await _send(
                    send,
                    303,
                    b"",
                    [
                        (b"location", b"/"),
                        (b"set-cookie", f"{COOKIE}={self.cookie}; {COOKIE_FLAGS}".encode()),
                    ],
                )
                return
            await _reject(
                send,
                401,
                "missing or wrong token: send 'Authorization: Bearer TOKEN'",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _reject(send, 413, f"request body too large (at most {self.max_body} bytes)")
            return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            body = b""
            while True:  # read it whole, bounded, whatever Content-Length said (or if none)
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                if len(body) > self.max_body:
                    await _reject(send, 413, f"request body too large (at most {self.max_body} bytes)")
                    return
                if not message.get("more_body"):
                    break
            replayed = False

            async def replay() -> dict[str, Any]:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()  # type: ignore[no-any-return]

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)

    def _authorised(self, headers: dict[str, str]) -> bool:
        assert self.token is not None
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and hmac.compare_digest(
            auth[7:].strip().encode(), self.token.encode()
        ):
            return True
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no token
            return False
        got = cookie.get(COOKIE)
        return got is not None and hmac.compare_digest(got.value.encode(), self.cookie.encode())

    def _token_in_query(self, scope: dict[str, Any]) -> bool:
        assert self.token is not None
        given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        return hmac.compare_digest(given.encode(), self.token.encode())


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _send(
    send: Callable[..., Any], status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _reject(
    send: Callable[..., Any], status: int, reason: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": reason}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await _send(send, status, body, headers + (extra or []))


# ------------------------------------------------------------------------------- errors


def _error(request: Request, status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    reason = _one_line(reason)
    if request.url.path.startswith("/v1/"):  # OpenAI clients read {"error": {"message": ...}}
        kind = "invalid_request_error" if status < 500 else "server_error"
        body: dict[str, Any] = {"error": {"message": reason, "type": kind, "code": status}}
    else:
        body = {"error": reason}
    return JSONResponse(body, status_code=status, headers=headers)


def _status(e: RagError) -> tuple[int, dict[str, str] | None]:
    if isinstance(e, Busy):
        return 503, {"Retry-After": "2"}
    if isinstance(e, IndexMissing):
        return 503, None
    return 400, None


def _validation_reason(e: RequestValidationError) -> str:
    first = e.errors()[0] if e.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
    msg = first.get("msg", "invalid request")
    if first.get("type") == "json_invalid":
        return "the body is not valid JSON"
    return f"{where}: {msg}" if where else str(msg)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        return _error(request, 422, _validation_reason(e))

    @app.exception_handler(RagError)
    async def expected(request: Request, e: RagError) -> JSONResponse:
        status, headers = _status(e)
        return _error(request, status, str(e), headers)

    @app.exception_handler(HTTPException)
    async def http(request: Request, e: HTTPException) -> JSONResponse:
        return _error(request, e.status_code, str(e.detail), getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def bug(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(request, 500, "internal error (the server's log has the details)")


# ------------------------------------------------------------------------------- streaming


def sse(event: str | None, data: Any) -> bytes:
    """One server-sent event; JSON never spans lines, so one `data:` line carries it."""
    head = f"event: {event}\n" if event else ""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"{head}data: {text}\n\n".encode()


STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_DONE = object()


def _streamed_ask(
    service: Service, mode: str | None, kwargs: dict[str, Any]
) -> tuple[asyncio.Queue[Any], asyncio.Future[Any]]:
    """Start `service.ask` on a worker; each verified sentence arrives on the queue as it is
    written, then `_DONE`. `Busy` is raised here, before any byte is sent."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def on_sentence(sentence: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, sentence)

    fut = asyncio.wrap_future(service.submit(mode, service.ask, stream=on_sentence, **kwargs))
    # Scheduled like the sentences (call_soon_threadsafe), so it comes after the last of them.
    fut.add_done_callback(lambda _: queue.put_nowait(_DONE))
    return queue, fut


def _failure(e: BaseException) -> str:
    if isinstance(e, RagError):
        return _one_line(str(e))
    log.error("unexpected error while streaming", exc_info=e)
    return "internal error (the server's log has the details)"


# ------------------------------------------------------------------------------- the app


def _filters(f: FiltersIn | None) -> Any:
    from rag.retrieve import search_filters

    if f is None:
        return None
    filters = search_filters(f.url, f.publication, f.author, f.since, f.until)
    return filters if filters else None


def create_app(service: Service, token: str | None = None, hosts: set[str] | None = None) -> FastAPI:
    """The app over `service`. With `token`, every request must carry it ('Authorization: Bearer
    T', or the cookie the page gets from /?token=T); with `hosts`, only those Host names are
    answered."""
    app = FastAPI(
        title="rag",
        version=rag.__version__,
        description="Answers from your scraped articles, every sentence checked against its source: "
        "the same answers as `rag ask`, over HTTP.",
        docs_url=None,  # the interactive docs load scripts from a CDN; /openapi.json describes it all
        redoc_url=None,
    )
    _install_errors(app)
    app.add_middleware(Guard, token=token, hosts=hosts)
    app.state.service = service

    async def run(mode: str | None, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.wrap_future(service.submit(mode, fn, *args, **kwargs))

    # ----------------------------------------------------------------------- the page

    page = (files("rag.serve") / "static" / "index.html").read_bytes()
    statics = {name: (files("rag.serve") / "static" / name).read_bytes() for name in STATIC}
    page_headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=page_headers)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in statics:
            raise HTTPException(404, "no such file")
        return Response(statics[name], media_type=STATIC[name], headers=page_headers)

    # ----------------------------------------------------------------------- the API

    @app.post(
        "/api/ask",
        response_model=AnswerOut,
        responses={
            **ERRORS,
            200: {
                "content": {
                    "text/event-stream": {
                        "schema": {
                            "type": "string",
                            "description": "With 'Accept: text/event-stream': `meta` (the question as "
                            "read), then `sentence` events ({text}: each verified sentence of an LLM "
                            "answer as it is written), then `answer` (the whole object) or `error`.",
                        }
                    }
                }
            },
        },
    )
    async def ask(body: AskIn, request: Request) -> Any:
        """Answer a question as `rag ask --json` does (outcome, answer, citations, reason,
        timings), plus its sentences and closest sources; streamed with Accept: text/event-stream."""
        kwargs = {
            "question": body.question,
            "after": body.after,
            "after_query": body.after_query,
            "mode": body.mode,
            "filters": _filters(body.filters),
            "k": body.k,
            "cited": body.cited,
        }
        if "text/event-stream" not in request.headers.get("accept", ""):
            return await run(body.mode, service.ask, **kwargs)
        queue, fut = _streamed_ask(service, body.mode, kwargs)

        async def events() -> AsyncIterator[bytes]:
            yield sse("meta", {"question": body.question, "mode": body.mode or service.settings.answer.mode})
            while (item := await queue.get()) is not _DONE:
                yield sse("sentence", {"text": item})
            try:
                yield sse("answer", fut.result())
            except Exception as e:
                yield sse("error", {"error": _failure(e)})

        return StreamingResponse(events(), media_type="text/event-stream", headers=STREAM_HEADERS)

    @app.get("/api/search", response_model=SearchOut, responses=ERRORS)
    async def search(
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUESTION, description="What to search for.")],
        k: Annotated[int | None, Query(ge=1, le=100, description="Hits to return.")] = None,
        retriever: Annotated[Literal["dense", "bm25", "hybrid", "reader"] | None, Query()] = None,
        url: Annotated[str | None, Query(max_length=MAX_FIELD)] = None,
        publication: Annotated[str | None, Query(max_length=MAX_FIELD)] = None,
        author: Annotated[str | None, Query(max_length=MAX_FIELD)] = None,
        since: Annotated[str | None, Query(max_length=32)] = None,
        until: Annotated[str | None, Query(max_length=32)] = None,
        max_per_article: Annotated[int | None, Query(ge=0, le=100)] = None,
    ) -> Any:
        """Rank the indexed chunks for a query, as `rag search --json` does."""
        filters = _filters(
            FiltersIn(url=url, publication=publication, author=author, since=since, until=until)
        )
        return await run("extractive", service.search, q, k, retriever, filters, max_per_article)

    @app.get("/api/sources", response_model=list[ArticleOut], responses=ERRORS)
    async def sources(
        author: Annotated[
            str | None, Query(max_length=MAX_FIELD, description="Author's name contains this.")
        ] = None,
    ) -> Any:
        """The indexed articles, as `rag sources --json` lists them."""
        return await run("extractive", service.sources, author)

    @app.get("/api/health", responses=ERRORS)
    async def health() -> Any:
        """The index's generation, article and chunk counts, the model files and the versions."""
        # Answered at once, never queued behind questions: it reads only the manifest (one stat).
        return service.health()

    # ----------------------------------------------------------------------- OpenAI

    @app.get("/v1/models")
    async def models() -> Any:
        """The model names /v1/chat/completions takes: rag (the configured mode), rag-extractive,
        rag-llm."""
        return {
            "object": "list",
            "data": [{"id": m, "object": "model", "owned_by": "rag"} for m in chat.MODELS],
        }

    @app.post("/v1/chat/completions", responses=ERRORS)
    async def completions(body: ChatIn) -> Any:
        """The OpenAI chat-completions format: the answer's text with [n] citations and its Sources,
        and the structured answer (as /api/ask returns it) under `rag`; `stream: true` streams
        chunks, the last carrying `rag`."""
        mode = chat.mode_of(body.model)
        question, after = chat.questions(body)
        kwargs = {"question": question, "after": after, "mode": mode}
        cid = chat.completion_id()
        if not body.stream:
            answer = await run(mode, service.ask, **kwargs)
            return chat.completion(answer, body.model, cid)
        queue, fut = _streamed_ask(service, mode, kwargs)

        async def chunks() -> AsyncIterator[bytes]:
            yield sse(None, chat.chunk(cid, body.model, {"role": "assistant", "content": ""}))
            streamed = False
            while (item := await queue.get()) is not _DONE:
                yield sse(
                    None, chat.chunk(cid, body.model, {"content": ("" if not streamed else " ") + item})
                )
                streamed = True
            try:
                answer = fut.result()
            except Exception as e:
                yield sse(None, {"error": {"message": _failure(e), "type": "server_error"}})
                yield sse(None, "[DONE]")
                return
            rest = chat.sources_text(answer)
            if not streamed:
                rest = chat.head(answer) + answer["answer"] + rest
            if rest:
                yield sse(None, chat.chunk(cid, body.model, {"content": rest}))
            yield sse(None, chat.chunk(cid, body.model, {}, "stop", answer))
            yield sse(None, "[DONE]")

        return StreamingResponse(chunks(), media_type="text/event-stream", headers=STREAM_HEADERS)

    return app
