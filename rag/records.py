"""The records that cross module boundaries: what the cleaner gives the chunker (Article), what
the chunker gives the embedder and the stores (Chunk), and what a store gives back to retrieval,
answers and evaluation (StoredChunk, ArticleInfo), with the query filters and the bundle file
records the stores keep.

Plain frozen dataclasses with no behaviour beyond their identities, so every layer may import
them without loading the cleaner, the chunker or a store: this module imports only `rag.text`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from rag.text import byline

# ------------------------------------------------------------------------- ingest -> chunk


def article_id(url: str) -> str:
    """An article's id: a hash of its canonical URL, so a rebuild recognises the article."""
    return hashlib.sha1(url.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Article:
    """One cleaned article, identified by its canonical URL."""

    url: str
    title: str
    publication: str
    published: str | None  # ISO 8601 as scraped, or None when the page had no date
    fetched: str | None
    text: str  # clean markdown: ATX headings, paragraphs, lists, quotes, code, tables
    member_only: bool
    source_file: str
    source_line: int
    aliases: tuple[str, ...] = ()
    author: str | None = None  # from the page's byline or title; None when the page names nobody

    # Cached: an incremental build asks every article for both, and hashing is its main cost.
    @cached_property
    def id(self) -> str:
        return article_id(self.url)

    @cached_property
    def content_hash(self) -> str:
        """Hash of everything that shapes this article's chunks; a change means re-embedding."""
        h = hashlib.sha256()
        parts = (self.url, self.title, self.author or "", self.publication, self.published or "", self.text)
        for part in parts:
            h.update(part.encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()[:32]


# ------------------------------------------------------------------------- chunk -> embed, store


def prefix(title: str, heading: str, author: str | None = None) -> str:
    """The line the embedder reads before a chunk's body: "Title (by Author) > Heading"."""
    head = byline(title, author)
    return f"{head} > {heading}" if heading else head


@dataclass(frozen=True)
class Chunk:
    id: str
    article_id: str
    url: str
    title: str
    heading: str  # heading path, " > " separated; "" before the first heading
    start: int  # character offsets of the body in the article's clean text
    end: int
    text: str  # the body: article.text[start:end]
    ord: int  # position within the article
    author: str | None = None

    @property
    def embed_text(self) -> str:
        """What the embedder reads: the title, author and heading path, then the body."""
        return f"{prefix(self.title, self.heading, self.author)}\n{self.text}"


# ------------------------------------------------------------------------- store -> retrieve


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
    """An indexed article without its text (`Store.article_text` has that)."""

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

    def to_json(self) -> list[Any]:
        """The record as the stores keep it: a JSON list."""
        return [self.path, self.size, self.mtime_ns, self.sha256, [list(a) for a in self.articles]]

    @staticmethod
    def from_json(v: Sequence[Any]) -> FileRecord:
        return FileRecord(str(v[0]), int(v[1]), int(v[2]), str(v[3]), tuple(tuple(a) for a in v[4]))
