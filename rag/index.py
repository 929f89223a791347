"""Build and incrementally update an index: ingest -> chunk -> embed -> store.

Only new or changed articles (by content hash) are chunked and embedded; articles gone from the
scrapes, or superseded by a re-scrape, are deleted; everything else keeps its vectors. When the
embedder, chunker or cleaner differ from what built the index, vectors are never mixed: the
whole index is rebuilt, and the report says why.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import rag
from rag.chunk import CHUNKER_VERSION, Chunk, chunk_article
from rag.config import Settings
from rag.embed import DIMENSION, MODEL_NAME, count_tokens
from rag.errors import IndexCorrupt, RagError
from rag.ingest import CLEANER_VERSION, Article, ingest
from rag.store import Changes, crash_point, open_store

QUERY_MODEL_FILE = "query-embedder.onnx"
IDENTITY_KEYS = ("embedder", "chunker", "cleaner")  # what `identity` returns: vectors depend on these

ProgressFn = Callable[[str, int, int], None]


@dataclass
class IndexReport:
    articles: int = 0
    chunks: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    embedded_chunks: int = 0
    seconds: float = 0.0
    rebuilt: bool = False
    rebuild_reason: str = ""
    index_kind: str = "flat"
    generation: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def identity(settings: Settings) -> dict[str, Any]:
    """Exactly the settings that shape the vectors; an index built with others is not reused."""
    c = settings.chunk
    return {
        "embedder": {"name": MODEL_NAME, "dimension": DIMENSION, "normalized": True},
        "chunker": {
            "version": CHUNKER_VERSION,
            "max_tokens": c.max_tokens,
            "target_tokens": c.target_tokens,
            "overlap_tokens": c.overlap_tokens,
        },
        "cleaner": {"version": CLEANER_VERSION},
    }


def corpus_hash(content_hashes: Any) -> str:
    """One hash of every article's content: equal corpora give equal hashes, in any order."""
    return hashlib.sha256("".join(sorted(content_hashes)).encode()).hexdigest()[:16]


def choose_kind(settings: Settings, n_chunks: int) -> str:
    kind = settings.index.kind
    if kind != "auto":
        return kind
    return "hnsw" if n_chunks > settings.index.approximate_above else "flat"


def chunk_articles(articles: list[Article], settings: Settings) -> list[list[Chunk]]:
    c = settings.chunk
    return [chunk_article(a, count_tokens, c.max_tokens, c.target_tokens, c.overlap_tokens) for a in articles]


def build_index(
    settings: Settings,
    scrapes: Path | None = None,
    index_dir: Path | None = None,
    rebuild: bool = False,
    progress: ProgressFn | None = None,
    embedder: Any = None,
    export_query_model: bool = True,
) -> IndexReport:
    """Bring the index at `index_dir` up to date with the scrapes; returns what changed."""
    t0 = time.perf_counter()
    scrapes = scrapes or settings.paths.scrapes
    index_dir = index_dir or settings.paths.index
    if not scrapes.exists():
        raise RagError(f"{scrapes}: scrapes path not found")
    result = ingest(scrapes)
    crash_point("ingested")
    report = index_articles(
        result.articles, settings, index_dir, rebuild, progress, embedder, t0, export_query_model
    )
    report.warnings = [str(w) for w in result.warnings]
    return report


def index_articles(
    articles: list[Article],
    settings: Settings,
    index_dir: Path,
    rebuild: bool = False,
    progress: ProgressFn | None = None,
    embedder: Any = None,
    t0: float | None = None,
    export_query_model: bool = True,
) -> IndexReport:
    """Make the index at `index_dir` hold exactly `articles`, embedding only what changed."""
    t0 = time.perf_counter() if t0 is None else t0
    report = IndexReport()
    store = open_store(index_dir, create=True, settings=settings.store)
    try:
        with store.writing():
            old = store.manifest()
            want = identity(settings)
            if old is not None and not rebuild:
                for key in IDENTITY_KEYS:
                    if old.get(key) != want[key]:
                        rebuild = True
                        report.rebuild_reason = (
                            f"the index was built with another {key} ({old.get(key)}); rebuilt fully"
                        )
                        break
            if rebuild and old is not None and not report.rebuild_reason:
                report.rebuild_reason = "--rebuild"
            report.rebuilt = rebuild or old is None
            stored = {a.article_id: a for a in store.articles()} if old is not None else {}
            known = {} if rebuild else stored

            current = {a.id: a for a in articles}
            todo: list[Article] = []
            kept_chunks = 0  # chunks of unchanged articles, which stay as they are
            for a in articles:
                prev = known.get(a.id)
                if prev is None:
                    report.added += 1
                    todo.append(a)
                elif prev.content_hash != a.content_hash:
                    report.updated += 1
                    todo.append(a)
                else:
                    report.unchanged += 1
                    kept_chunks += prev.chunks
            gone = [aid for aid in known if aid not in current]
            report.removed = len(gone)

            chunk_lists = chunk_articles(todo, settings)
            texts = [c.embed_text for chunks in chunk_lists for c in chunks]
            if texts:
                if embedder is None:
                    embedder = _torch_embedder(settings)
                vecs = embedder.embed(
                    texts, progress=(lambda d, t: progress("embedding", d, t)) if progress else None
                )
            else:
                vecs = np.zeros((0, DIMENSION), dtype=np.float32)
            report.embedded_chunks = len(texts)
            crash_point("embedded")

            changes = Changes(removed=[*gone, *(a.id for a in todo if a.id in known)])
            if rebuild:
                changes.removed = list(stored)
            pos = 0
            for a, chunks in zip(todo, chunk_lists, strict=True):
                changes.added.append((a, chunks, vecs[pos : pos + len(chunks)]))
                pos += len(chunks)

            report.articles = len(articles)
            report.chunks = len(texts) + kept_chunks
            report.index_kind = choose_kind(settings, report.chunks)
            changed = bool(changes.added or changes.removed) or old is None
            if changed or report.index_kind != (old or {}).get("index_kind"):
                manifest = {
                    **want,
                    "rag_version": rag.__version__,
                    "index_kind": report.index_kind,
                    "corpus_hash": corpus_hash(a.content_hash for a in articles),
                    "counts": {"articles": report.articles, "chunks": report.chunks},
                    "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "build_seconds": round(time.perf_counter() - t0, 3),
                    "query_embedder": QUERY_MODEL_FILE,
                }
                store.commit(changes, manifest)
            if export_query_model:
                ensure_query_model(store.path, embedder, settings)
            report.generation = int((store.manifest() or {}).get("generation", 0))
    except (OSError, sqlite3.Error) as e:
        # A full disk or a read-only folder: the previous generation is untouched.
        reason = getattr(e, "strerror", None) or str(e)
        raise RagError(
            f"{index_dir}: cannot write the index ({reason}); the previous index is intact"
        ) from None
    finally:
        store.close()
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _torch_embedder(settings: Settings) -> Any:
    from rag.embed import TorchEmbedder

    return TorchEmbedder(batch_size=settings.embed.batch_size)


def ensure_query_model(index_dir: Path, embedder: Any, settings: Settings) -> None:
    """Keep an ONNX copy of the embedder beside the index, for torch-free queries."""
    path = index_dir / QUERY_MODEL_FILE
    index_dir.mkdir(parents=True, exist_ok=True)
    if path.exists() or (embedder is not None and not hasattr(embedder, "export_onnx")):
        return  # an embedder without an ONNX form (a test fake): queries use it directly
    from rag.embed import TorchEmbedder

    if embedder is None:
        embedder = TorchEmbedder(batch_size=settings.embed.batch_size)
    embedder.export_onnx(path)


def copy_index(source: Any, target: Any) -> IndexReport:
    """Copy every article, chunk and vector of `source` into `target` as one new generation,
    without re-embedding; the target's manifest records the same settings as the source's."""
    from rag.chunk import Chunk

    t0 = time.perf_counter()
    m = source.manifest()
    if m is None:
        raise RagError(f"{source.path}: the index to copy from is empty; run `rag index` first")
    chunks_by_article: dict[str, list[Chunk]] = {}
    for c in source.all_chunks():
        chunks_by_article.setdefault(c.article_id, []).append(
            Chunk(
                id=c.chunk_id,
                article_id=c.article_id,
                url=c.url,
                title=c.title,
                heading=c.heading,
                start=c.start,
                end=c.end,
                text=c.text,
                ord=c.ord,
                author=c.author,
            )
        )
    infos = source.articles()
    report = IndexReport(rebuilt=True, rebuild_reason=f"copied from {source.path}")
    with target.writing():
        old = target.manifest()
        changes = Changes(removed=[a.article_id for a in target.articles()] if old else [])
        for info in infos:
            article = Article(
                url=info.url,
                title=info.title,
                publication=info.publication,
                published=info.published,
                fetched=info.fetched,
                text=source.article_text(info.article_id) or "",
                member_only=info.member_only,
                source_file="",
                source_line=0,
                aliases=info.aliases,
                author=info.author,
            )
            if article.content_hash != info.content_hash:
                raise IndexCorrupt(f"{source.path}: article {info.url} does not match its stored hash")
            chunks = sorted(chunks_by_article.get(info.article_id, []), key=lambda c: c.ord)
            vecs = source.vectors([c.id for c in chunks]) if chunks else np.zeros((0, DIMENSION), np.float32)
            changes.added.append((article, chunks, vecs))
        report.articles = len(infos)
        report.added = len(infos)
        report.removed = len(changes.removed)
        report.chunks = sum(len(c) for _, c, _ in changes.added)
        report.index_kind = str(m.get("index_kind", "flat"))
        # What describes the index, not how the source store keeps it (files, generations).
        keep = {k: m[k] for k in (*IDENTITY_KEYS, "index_kind", "query_embedder", "rag_version") if k in m}
        corpus = corpus_hash(a.content_hash for a in infos)
        counts = {"articles": report.articles, "chunks": report.chunks}
        target.commit(
            changes, {**keep, "counts": counts, "corpus_hash": corpus, "copied_from": str(source.path)}
        )
        report.generation = int((target.manifest() or {}).get("generation", 0))
    src_model = source.path / QUERY_MODEL_FILE
    if src_model.exists() and not (target.path / QUERY_MODEL_FILE).exists():
        import shutil

        target.path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src_model, target.path / QUERY_MODEL_FILE)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report
