"""What every store is: the Store protocol, the manifest, the commit sequence both backends
share, and how stored rows become the records of `rag.records`.

An index is a sequence of generations. Each `rag index` run writes one new generation and makes
it visible in a single atomic step (the manifest switch); readers always see one complete
generation. `GenerationalStore.commit` runs that sequence; a backend supplies the hooks that
write rows, publish a manifest and clean up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, TypedDict, TypeVar, cast

import numpy as np

from rag.errors import IndexCorrupt, RagError

# The records live in rag.records, which every layer may import; they stay importable from here
# and from rag.stores, where retrieval, answers and evaluation find them.
from rag.records import Article, ArticleInfo, Chunk, FileRecord, Filters, StoredChunk

SCHEMA_VERSION = 2  # 2: vectors in segments (manifest "segments"); 1 (one "faiss_file") is still read
BATCH = 500  # ids per `IN (...)` list or insert; SQLite allows 999 bound values, Milvus lists stay small

# ------------------------------------------------------------------------------ writes, rows


@dataclass
class Changes:
    """One generation's worth of writes: articles (re)added with their chunks and vectors, and
    ids of articles to remove (removed, or superseded by a re-scrape); `files`, when given,
    replaces the bundle file records (None keeps the previous generation's)."""

    added: list[tuple[Article, list[Chunk], np.ndarray]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    files: dict[str, FileRecord] | None = None


def _blank_is_none(value: Any) -> Any:
    return value or None


# How a stored value becomes a record field: the stores keep booleans as integers, an absent
# date or author as "" (Milvus) or NULL (SQLite), and aliases as a JSON list.
_FROM_STORED: dict[str, Any] = {
    "published": _blank_is_none,
    "fetched": _blank_is_none,
    "author": _blank_is_none,
    "member_only": bool,
    "start": int,
    "end": int,
    "ord": int,
    "chunks": int,
    "aliases": lambda v: tuple(json.loads(v)),
}


def _record(cls: Any, r: Mapping[str, Any]) -> Any:
    """`cls` from a row; a field without a default must be in the row (older collections may
    lack the author)."""
    keep = lambda v: v  # noqa: E731
    values = {f.name: r[f.name] if f.default is MISSING else r.get(f.name, f.default) for f in fields(cls)}
    return cls(**{name: _FROM_STORED.get(name, keep)(v) for name, v in values.items()})


def chunk_from_row(r: Mapping[str, Any]) -> StoredChunk:
    """A StoredChunk from a row holding its fields by name."""
    return _record(StoredChunk, r)  # type: ignore[no-any-return]


def article_from_row(r: Mapping[str, Any]) -> ArticleInfo:
    """An ArticleInfo from a row holding its fields by name."""
    return _record(ArticleInfo, r)  # type: ignore[no-any-return]


T = TypeVar("T")


def batched(items: Sequence[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    """`items` in slices of at most `size`, for id lists and inserts."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ----------------------------------------------------------------------------------- manifest


class Counts(TypedDict, total=False):
    articles: int
    chunks: int


class Manifest(TypedDict, total=False):
    """The commit point of an index, stored as JSON. `index.py` writes the description of the
    index; the store stamps `schema_version` and `generation` and adds its own keys."""

    schema_version: int
    generation: int
    embedder: dict[str, Any]  # name, dimension, normalized, precision, weights (a hash)
    chunker: dict[str, Any]  # version and token sizes
    cleaner: dict[str, Any]  # version
    index_kind: str  # flat, hnsw or ivf
    corpus_hash: str  # one hash of every article's content
    counts: Counts
    query_embedder: str  # file name of the ONNX graph in the shared model cache
    rag_version: str
    built_at: str
    build_seconds: float
    copied_from: str
    # FAISS: vector segments, oldest first (see rag.stores.faiss.segments)
    segments: list[dict[str, Any]]
    faiss_file: str  # schema 1: one FAISS file for every vector (still read)
    # Milvus: rows below `floor` are dead; `tombstones` rows name removed article versions
    floor: int
    tombstones: int
    store: str


def validate_manifest(raw: Any, where: str) -> Manifest:
    """`raw` (parsed JSON) as a manifest this rag can read, or IndexCorrupt naming `where`."""
    if not isinstance(raw, dict) or "generation" not in raw:
        raise IndexCorrupt(f"{where}: unreadable manifest (not an index manifest); run `rag index --rebuild`")
    if int(raw.get("schema_version", 0)) > SCHEMA_VERSION:
        raise IndexCorrupt(
            f"{where}: written by a newer rag (schema {raw.get('schema_version')}, this one "
            f"reads {SCHEMA_VERSION}); upgrade rag or run `rag index --rebuild`"
        )
    return raw  # type: ignore[return-value]  # a checked dict is the TypedDict


def parse_manifest(text: str | bytes, where: str) -> Manifest:
    """A manifest from its JSON text, or IndexCorrupt naming `where`."""
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise IndexCorrupt(f"{where}: unreadable manifest ({e}); run `rag index --rebuild`") from None
    return validate_manifest(raw, where)


def generation(m: Manifest | None) -> int:
    """The generation a manifest names; 0 for an index never committed."""
    return int(m["generation"]) if m else 0


# ---------------------------------------------------------------------------------- protocol


class Store(Protocol):
    """What retrieval, answers and evaluation may ask of an index."""

    path: Path  # a local folder for files kept beside the index

    def manifest(self) -> Manifest | None:
        """The committed manifest, or None when nothing was ever committed."""
        ...

    def articles(self) -> list[ArticleInfo]:
        """Every visible article, in the order they were added."""
        ...

    def article_text(self, article_id: str) -> str | None:
        """The clean text of a visible article (evaluation locates evidence in it)."""
        ...

    def all_chunks(self) -> list[StoredChunk]:
        """Every visible chunk, in article then position order."""
        ...

    def chunk_count(self) -> int:
        """How many chunks the visible generation holds."""
        ...

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

    def commit(self, changes: Changes, manifest: Manifest) -> None:
        """Write `changes` as a new generation and switch readers to it atomically."""
        ...

    def close(self) -> None:
        """Release the connection and any lock this process holds."""
        ...


# ------------------------------------------------------------------------- commit sequence


class GenerationalStore:
    """The write protocol both backends follow; subclasses implement the hooks below.

    A commit writes every row of generation N+1 where readers of generation N cannot see it
    (`_write_generation`), then publishes the manifest of N+1 in one atomic step (`_publish`),
    then deletes what no reader of N+1 can see (`_cleanup`). A writer killed anywhere leaves
    either rows above the published generation, which `_drop_uncommitted` removes, or rows
    below it, which `_cleanup` removes: `writing()` runs both before a new build starts.
    """

    # Errors that mean the disk or database refused a write (full, read-only): the build stops
    # with one line, and the previous generation stays the visible one.
    write_errors: tuple[type[Exception], ...] = (OSError,)

    @property
    def where(self) -> str:  # pragma: no cover - every backend overrides it
        """The store as messages name it."""
        raise NotImplementedError

    def manifest(self) -> Manifest | None:  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """The single-writer lock, then recovery from a killed writer; release on exit."""
        try:
            with self._writer_lock():
                m = self.manifest()
                self._drop_uncommitted(generation(m))
                if m is not None:
                    self._cleanup(m)
                yield
        except self.write_errors as e:
            why = getattr(e, "strerror", None) or str(e)
            raise RagError(
                f"{self.where}: cannot write the index ({why}); the previous index is intact"
            ) from None

    def commit(self, changes: Changes, manifest: Manifest) -> None:
        """Write `changes` as generation N+1 and switch readers to it. Call inside `writing()`.

        `manifest` describes the index (embedder, chunker, counts, ...); the store adds the
        schema version, the generation and its own keys.
        """
        old = self.manifest()
        gen = generation(old) + 1
        own = self._write_generation(changes, gen, old, manifest)
        merged = {**manifest, **own, "schema_version": SCHEMA_VERSION, "generation": gen}
        # A backend drops a key of an older layout by returning it as None.
        published = cast(Manifest, {k: v for k, v in merged.items() if v is not None})
        self._publish(published)
        crash_point("manifest-written")
        self._cleanup(published)
        crash_point("cleaned-up")

    # The hooks.

    def _writer_lock(self) -> AbstractContextManager[None]:  # pragma: no cover
        """Hold the one-writer lock, or raise RagError saying who holds it."""
        raise NotImplementedError

    def _drop_uncommitted(self, gen: int) -> None:  # pragma: no cover
        """Delete rows and files of generations above `gen` (a killed build's)."""
        raise NotImplementedError

    def _write_generation(
        self, changes: Changes, gen: int, old: Manifest | None, manifest: Manifest
    ) -> dict[str, Any]:  # pragma: no cover
        """Write `changes` as generation `gen`, invisible to readers of `old`; return the
        backend's own manifest keys for `gen` (None removes a key)."""
        raise NotImplementedError

    def _publish(self, manifest: Manifest) -> None:  # pragma: no cover
        """Make `manifest` the committed one, atomically."""
        raise NotImplementedError

    def _cleanup(self, manifest: Manifest) -> None:  # pragma: no cover
        """Delete what no reader of `manifest`'s generation can see, once readers moved on."""
        raise NotImplementedError


def crash_point(name: str) -> None:
    """Die here, as a SIGKILL would, when RAG_CRASH_AT names this point (crash-safety tests)."""
    if os.environ.get("RAG_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
