"""What `rag serve` holds while it runs: the index, the retriever, the answerer and its models,
loaded once, and the threads that answer with them.

Every answer is `Answerer.ask`, the call `rag ask` makes; this module only decides where it runs:
- questions, searches and listings run in a pool of worker threads, so that several run at once
  (onnxruntime, FAISS, SQLite and numpy release the GIL while they compute);
- each worker reads the index through its own store (its own SQLite connection and FAISS
  segments), since one connection would serialise every query; the embedder, the reader and the
  LLM are loaded once and shared;
- the LLM is not reentrant: its questions wait for one lock, a bounded number of them and for a
  bounded time, else `Busy` (HTTP 503).

A new generation committed by `rag index` needs nothing here: a store re-reads the manifest
(one `stat`) on every query and answers from the generation it names, so the next request reads
the new index, and one under way finishes on the generation it started with.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.errors import RagError

MAX_PENDING = 64  # questions waiting for a worker before new ones get 503
LLM_QUEUE = 4  # LLM questions waiting for the model before new ones get 503
LLM_WAIT = 60.0  # seconds an LLM question waits for the model before it gets 503


class Busy(RagError):
    """The server has more work queued than it accepts; the client should retry later (503)."""


def clean_question(text: str) -> str:
    """A question as typed into a form or an API, cleaned as `rag ask` cleans its own
    (`rag.textio.clean_question`: control, format and private-use characters and terminal escape
    sequences removed, whitespace runs made one space); "" when nothing is left."""
    from rag.textio import clean_question as clean

    try:
        return clean(text)
    except RagError:
        return ""


class PerThreadStore:
    """One store per thread that reads through it, opened by `open_store` on first use; every
    attribute is the calling thread's store's. The store a thread opened first stays its own."""

    def __init__(self, open_store: Callable[[], Any]) -> None:
        self._open = open_store
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._mine()  # the opening thread's, and a missing index fails here, at start

    def _mine(self) -> Any:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = self._open()
            with self._lock:
                self._all.append(store)
        return store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._mine(), name)

    def close(self) -> None:
        with self._lock:
            stores, self._all = self._all, []
        for s in stores:
            with contextlib.suppress(Exception):
                s.close()


@dataclass
class Stack:
    """The retriever and answerer over one index, as `rag ask` opens them."""

    retriever: Any
    answerer: Any
    embedder: dict[str, Any]  # the manifest's embedder the retriever's model was checked against


class Service:
    """The loaded index and models, and the threads that answer with them."""

    def __init__(
        self,
        settings: Settings,
        index_dir: Path | None = None,
        workers: int | None = None,
        llm_queue: int = LLM_QUEUE,
        llm_wait: float = LLM_WAIT,
        threads: int = 1,
    ) -> None:
        from rag.assembly import open_index

        self.settings = settings
        self.threads = threads  # onnxruntime threads a question (0: its default, one a core)
        self.index_dir = Path(index_dir or settings.paths.index)
        self.store = PerThreadStore(lambda: open_index(settings, self.index_dir))
        self.stack = self._open_stack()
        self.workers = workers or min(8, 2 * (os.cpu_count() or 1))
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="rag-ask")
        # LLM questions have their own threads (one answering, `llm_queue` waiting), so that those
        # waiting for the model never hold the workers the extractive questions need.
        self.llm_pool = ThreadPoolExecutor(llm_queue + 1, thread_name_prefix="rag-llm")
        self.llm_queue, self.llm_wait = llm_queue, llm_wait
        self._llm = threading.Lock()
        self._llm_pending = 0
        self._pending = 0
        self._count = threading.Lock()
        self._swap = threading.Lock()
        self.llm_loaded = False
        self.started = time.time()

    # --------------------------------------------------------------------------- the stack

    def _open_stack(self) -> Stack:
        from rag.assembly import open_answerer, open_retriever

        retriever = open_retriever(self.settings, store=self.store)  # type: ignore[arg-type]
        if self.threads:
            retriever = self._with_threads(retriever)
        answerer = open_answerer(self.settings, retriever=retriever)
        embedder = dict((self.store.manifest() or {}).get("embedder", {}))
        return Stack(retriever, answerer, embedder)

    def _with_threads(self, retriever: Any) -> Any:
        """The retriever with its embedder and reader on `threads` onnxruntime threads a question.
        Questions run side by side here, so one thread each keeps the cores busy without the
        threads of one question waiting on another's (measured in bench/SERVE.md)."""
        from rag.assembly import open_retriever
        from rag.embed import OnnxEmbedder
        from rag.reader import Reader

        checked = retriever.embedder  # the index's own model, checked against its manifest
        if not isinstance(checked, OnnxEmbedder):
            return retriever
        embedder = OnnxEmbedder(checked.path, checked.batch_size, self.threads, checked.token_budget)
        retriever = open_retriever(self.settings, store=self.store, embedder=embedder)  # type: ignore[arg-type]
        retriever._reader = Reader(threads=self.threads)  # the one the retriever would make, fewer threads
        return retriever

    def current(self) -> Stack:
        """The stack for this request. A rebuild with another embedder (weights, precision)
        makes vectors the loaded query embedder cannot be compared with: then the stack is
        opened again (the LLM kept), once, by the first request that sees it."""
        stack = self.stack
        built = (self.store.manifest() or {}).get("embedder", {})
        if built and built != stack.embedder:
            with self._swap:
                if self.stack is stack:
                    fresh = self._open_stack()
                    fresh.answerer.model = stack.answerer.model  # the loaded LLM stays
                    self.stack = fresh
                stack = self.stack
        return stack

    def warm(self) -> None:
        """Load the embedder's and the reader's graphs now, and run each once, so that the first
        question does not wait for them (each worker reads its own store on its first question:
        a SQLite connection and the FAISS segments, a few milliseconds)."""
        stack = self.current()
        stack.retriever.embedder.embed(["what is this index about?"])
        if self.settings.answer.reader:
            with contextlib.suppress(RagError):  # a missing reader is said by the first question
                stack.retriever.reader.read("what is this index about?", ["An index of articles."])

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.llm_pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()

    # --------------------------------------------------------------------------- admission

    def uses_llm(self, mode: str | None) -> bool:
        return (mode or self.settings.answer.mode) == "llm"

    def submit(self, mode: str | None, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """`fn(*args, **kwargs)` on a worker thread (on an LLM thread when `mode` is the LLM's), or
        `Busy` at once when too many are already waiting (so that the client gets a 503, not a
        stream that fails)."""
        llm = self.uses_llm(mode)
        with self._count:
            if llm and self._llm_pending > self.llm_queue:
                raise Busy(f"the LLM is busy ({self.llm_queue} questions waiting); retry shortly")
            if self._pending >= MAX_PENDING:
                raise Busy(f"server busy ({MAX_PENDING} requests waiting); retry shortly")
            self._pending += 1
            self._llm_pending += llm

        def run() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                with self._count:
                    self._pending -= 1
                    self._llm_pending -= llm

        try:
            return (self.llm_pool if llm else self.pool).submit(run)
        except RuntimeError:  # shut down
            with self._count:
                self._pending -= 1
                self._llm_pending -= llm
            raise Busy("the server is stopping") from None

    @contextlib.contextmanager
    def llm_turn(self) -> Iterator[None]:
        """The model, for one question at a time: a question waits at most `llm_wait` seconds
        for it, else `Busy`. Runs in the calling (LLM) thread."""
        if not self._llm.acquire(timeout=self.llm_wait):
            raise Busy(f"the LLM stayed busy for {self.llm_wait:.0f} s; retry shortly")
        try:
            yield
        finally:
            self._llm.release()

    # --------------------------------------------------------------------------- the calls

    def ask(
        self,
        question: str,
        after: str | None = None,
        after_query: str | None = None,
        mode: str | None = None,
        filters: Any = None,
        k: int | None = None,
        cited: Sequence[str] = (),
        stream: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """The answer as `rag ask --json` gives it (with `--after`: a follow-up is read with the
        earlier question's topic, as `rag chat` does), plus `sentences` and `sources`. Runs in a
        worker thread; an LLM question waits for the model first."""
        from rag.answer.types import answer_json
        from rag.followup import Turn, resolve

        q = clean_question(question)
        if not q:
            raise RagError("empty question: ask something")
        previous = None
        if after and clean_question(after):
            prev = clean_question(after)
            previous = Turn(prev, clean_question(after_query or "") or prev)
        turn = resolve(q, previous)
        stack = self.current()
        lock = self.llm_turn() if self.uses_llm(mode) else contextlib.nullcontext()
        with lock:
            ans = stack.answerer.ask(
                turn.query, k=k, mode=mode, filters=filters, stream=stream, typed=turn.question, cited=cited
            )
            if ans.mode == "llm":
                self.llm_loaded = True
        out = answer_json(ans, turn)
        out["sentences"] = [{"text": text, "cites": list(cites)} for text, cites, _ in ans.sentences]
        out["sources"] = _closest_articles(ans.closest)
        return out

    def search(
        self,
        query: str,
        k: int | None = None,
        retriever: str | None = None,
        filters: Any = None,
        max_per_article: int | None = None,
    ) -> dict[str, Any]:
        """The hits as `rag search --json` gives them."""
        from rag.retrieve import hit_dict

        q = clean_question(query)
        if not q:
            raise RagError("empty query: give some words to search for")
        stack = self.current()
        name = retriever or self.settings.retrieve.retriever
        hits = stack.retriever.search(
            q, k=k, retriever=name, filters=filters, max_per_article=max_per_article
        )
        return {"query": q, "retriever": name, "results": [hit_dict(h) for h in hits]}

    def sources(self, author: str | None = None) -> list[dict[str, Any]]:
        """The indexed articles as `rag sources --json` gives them, optionally by author."""
        arts = self.store.articles()
        if author:
            arts = [a for a in arts if author.lower() in (a.author or "").lower()]
        return [a.__dict__ | {"aliases": list(a.aliases)} for a in arts]

    def health(self) -> dict[str, Any]:
        """What is served: the index's generation and counts, the model files, the versions."""
        import rag

        m = self.store.manifest() or {}
        counts = m.get("counts", {})
        emb = m.get("embedder", {})
        models: dict[str, Any] = {
            "embedder": {k: emb.get(k) for k in ("name", "dimension", "precision") if k in emb},
            "reader": str(self.stack.retriever.reader.path) if self.settings.answer.reader else None,
        }
        try:
            models["llm"] = str(self.stack.answerer.model_path())
        except RagError as e:
            models["llm"] = None
            models["llm_error"] = str(e)
        models["llm_loaded"] = self.llm_loaded
        return {
            "status": "ok",
            "index": str(self.index_dir),
            "generation": int(m.get("generation", 0)),
            "built_at": m.get("built_at"),
            "articles": counts.get("articles"),
            "chunks": counts.get("chunks"),
            "answer_mode": self.settings.answer.mode,
            "models": models,
            "versions": _versions(rag.__version__),
            "workers": self.workers,
            "uptime_s": round(time.time() - self.started, 1),
        }


def _closest_articles(hits: Sequence[Any]) -> list[dict[str, Any]]:
    """The articles of the retrieved chunks, closest first, one entry an article."""
    seen: dict[str, dict[str, Any]] = {}
    for h in hits:
        c = h.chunk
        if c.url not in seen:
            seen[c.url] = {
                "rank": h.rank,
                "url": c.url,
                "title": c.title,
                "author": c.author,
                "published": c.published,
                "chunk_id": c.chunk_id,
            }
    return list(seen.values())


@functools.cache
def _versions(rag_version: str) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"rag": rag_version, "python": sys.version.split()[0]}
    for pkg in ("fastapi", "uvicorn", "onnxruntime", "faiss-cpu", "llama-cpp-python", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out
