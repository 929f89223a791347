"""The store interface: what retrieval, answers and evaluation may ask of an index.

An index is a sequence of generations. Each `rag index` run writes one new generation and makes
it visible in a single atomic step (the manifest switch); readers always see one complete
generation. FAISS + SQLite (`rag.faiss_store`) is the default backend; Milvus (`rag.milvus_store`)
implements the same protocol for scale-out, and nothing above this module knows which is in use.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.chunk import Chunk
from rag.config import StoreSettings
from rag.errors import RagError
from rag.ingest import Article

SCHEMA_VERSION = 2  # 2: vectors in segments (manifest "segments"); 1 (one "faiss_file") is still read


@dataclass(frozen=True)
class Filters:
    """Restrict search to some articles; every field is optional and they combine with AND."""

    url: str | None = None  # substring of the article URL (case-insensitive)
    publication: str | None = None  # substring of the publication name (case-insensitive)
    author: str | None = None  # substring of the author's name (case-insensitive)
    since: str | None = None  # ISO date; articles published on or after it
    until: str | None = None  # ISO date; articles published on or before it (whole day)

    def __bool__(self) -> bool:
        return any((self.url, self.publication, self.author, self.since, self.until))


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as the store returns it, with the provenance a citation needs."""

    chunk_id: str
    article_id: str
    url: str
    title: str
    publication: str
    published: str | None
    heading: str
    text: str
    start: int
    end: int
    ord: int
    member_only: bool
    author: str | None = None


@dataclass(frozen=True)
class ArticleInfo:
    article_id: str
    url: str
    title: str
    publication: str
    published: str | None
    fetched: str | None
    member_only: bool
    chunks: int
    content_hash: str
    aliases: tuple[str, ...] = ()
    author: str | None = None


@dataclass(frozen=True)
class FileRecord:
    """A scrape bundle file as the last build read it: a file whose size and modification time
    are unchanged is not read again; one whose content hash is unchanged is not parsed again."""

    path: str  # absolute
    size: int
    mtime_ns: int
    sha256: str
    # (article id, content hash, text hash) of every article parsed from the file, duplicates
    # included: enough to tell whether a new file can be added without re-reading the others.
    articles: tuple[tuple[str, str, str], ...] = ()


@dataclass
class Changes:
    """One generation's worth of writes: articles (re)added with their chunks and vectors, and
    ids of articles to remove (removed, or superseded by a re-scrape); `files`, when given,
    replaces the bundle file records (None keeps the previous generation's)."""

    added: list[tuple[Article, list[Chunk], np.ndarray]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    files: dict[str, FileRecord] | None = None


class Store(Protocol):
    path: Path  # a local folder for files kept beside the index (the ONNX query model)

    def manifest(self) -> dict[str, Any] | None:
        """The committed manifest, or None when nothing was ever committed."""
        ...

    def articles(self) -> list[ArticleInfo]: ...

    def article_text(self, article_id: str) -> str | None:
        """The clean text of a visible article (evaluation locates evidence in it)."""
        ...

    def all_chunks(self) -> list[StoredChunk]:
        """Every visible chunk, in article then position order."""
        ...

    def chunk_count(self) -> int: ...

    def files(self) -> dict[str, FileRecord]:
        """The bundle file records of the visible generation, by path ({} when none)."""
        ...

    def search_dense(
        self, vector: np.ndarray, k: int, filters: Filters | None = None
    ) -> list[tuple[StoredChunk, float]]:
        """Nearest chunks by inner product (cosine: vectors are normalised), best first."""
        ...

    def search_lexical(
        self, query: str, k: int, filters: Filters | None = None
    ) -> list[tuple[StoredChunk, float]]:
        """BM25 over chunk text, title and heading, best first (higher is better)."""
        ...

    def vectors(self, chunk_ids: list[str]) -> np.ndarray:
        """Stored vectors of visible chunks, in the order asked."""
        ...

    def writing(self) -> AbstractContextManager[None]:
        """Hold the single-writer lock (and finish what a killed writer left) while building."""
        ...

    def commit(self, changes: Changes, manifest: dict[str, Any]) -> None:
        """Write `changes` as a new generation and switch readers to it atomically."""
        ...

    def close(self) -> None: ...


STOPWORDS = frozenset(
    """a an and are as at be but by can could did do does for from had has have how i if in into
    is it its me my of on or our shall should so than that the their them then there these they
    this those to was we were what when where which while who whom why will with would you your
    about after all also any been before being both each few more most no nor not only other out
    over own same some such too under until up very just don does doing""".split()
)


def query_words(text: str) -> list[str]:
    """The words of a query that lexical search should weigh: lower-case, stop words dropped
    (all of them kept when nothing else is left), each once, in order."""
    words = re.findall(r"\w+", text.lower())
    kept = [w for w in words if w not in STOPWORDS] or words
    return list(dict.fromkeys(kept))


def record_to_json(r: FileRecord) -> list[Any]:
    return [r.path, r.size, r.mtime_ns, r.sha256, [list(a) for a in r.articles]]


def record_from_json(v: list[Any]) -> FileRecord:
    return FileRecord(str(v[0]), int(v[1]), int(v[2]), str(v[3]), tuple(tuple(a) for a in v[4]))


def crash_point(name: str) -> None:
    """Die here, as a SIGKILL would, when RAG_CRASH_AT names this point (crash-safety tests)."""
    import os
    import signal

    if os.environ.get("RAG_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def open_store(path: Path, create: bool = False, settings: StoreSettings | None = None) -> Store:
    """Open the index: FAISS + SQLite in folder `path` by default, or what `settings` names.

    With `create`, an empty index is made if none exists. A Milvus index keeps its local files
    (the query model) in `<path>-milvus`, and by default its Milvus Lite data there too.
    """
    if settings is None or settings.kind == "faiss":
        from rag.faiss_store import FaissStore

        return FaissStore(Path(settings.uri) if settings and settings.uri else path, create=create)
    if settings.kind == "milvus":
        from rag.milvus_store import MilvusStore

        local = Path(f"{path}-milvus")
        return MilvusStore(
            settings.uri or str(local / "milvus.db"),
            local,
            collection=settings.collection,
            index_type=settings.index_type,
            create=create,
        )
    raise RagError(f"unknown store '{settings.kind}' (use faiss or milvus)")
