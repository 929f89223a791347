"""Build and incrementally update an index: ingest -> chunk -> embed -> store.

Only new or changed articles (by content hash) are chunked and embedded; articles gone from the
scrapes, or superseded by a re-scrape, are deleted; everything else keeps its vectors. When the
embedder, chunker or cleaner differ from what built the index, vectors are never mixed: the
whole index is rebuilt, and the report says why. Which scrape files need reading at all is
`rag.scan`'s part.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np

import rag
from rag.chunk import CHUNKER_VERSION, Chunk, chunk_article
from rag.config import Settings
from rag.embed import DIMENSION, MODEL_NAME, count_tokens, model_dir
from rag.errors import IndexCorrupt, RagError
from rag.ingest import CLEANER_VERSION, Article
from rag.scan import Scan, scan_scrapes
from rag.stores import ArticleInfo, Changes, Manifest, Store, crash_point, open_store
from rag.stores.base import generation

QUERY_MODEL_FILE = "query-embedder.onnx"  # what indexes built before the shared model cache hold
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
    files_read: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def identity(settings: Settings) -> dict[str, Any]:
    """Exactly the settings that shape the vectors; an index built with others is not reused."""
    c = settings.chunk
    return {
        "embedder": embedder_identity(settings.embed.precision),
        "chunker": {
            "version": CHUNKER_VERSION,
            "max_tokens": c.max_tokens,
            "target_tokens": c.target_tokens,
            "overlap_tokens": c.overlap_tokens,
        },
        "cleaner": {"version": CLEANER_VERSION},
    }


def embedder_identity(precision: str) -> dict[str, Any]:
    """The model (by a hash of its weights and config) and the precision the vectors come from."""
    from rag.onnx_model import QUANT_VERSION, weights_digest

    ident: dict[str, Any] = {
        "name": MODEL_NAME,
        "dimension": DIMENSION,
        "normalized": True,
        "precision": precision,
        "weights": weights_digest(model_dir()),
    }
    if precision == "int8":
        ident["quantisation"] = QUANT_VERSION  # the recipe: another one gives other vectors
    return ident


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
    """Bring the index at `index_dir` up to date with the scrapes; returns what changed.

    Work follows the change: unchanged bundle files are not read (see `scan_scrapes`), and
    the embedder is loaded only when some article needs embedding.
    """
    t0 = time.perf_counter()
    scrapes = scrapes or settings.paths.scrapes
    index_dir = index_dir or settings.paths.index
    if not scrapes.exists():
        raise RagError(f"{scrapes}: scrapes path not found")
    store = open_store(index_dir, create=True, settings=settings.store)
    try:
        with store.writing():
            old = store.manifest()
            want = identity(settings)
            same = old is not None and not rebuild and all(old.get(k) == want[k] for k in IDENTITY_KEYS)
            scan = scan_scrapes(scrapes, store.files() if same else {}, old is not None)
            if scan.articles is None and not scan.files:
                raise RagError(f"no articles found in {scrapes}; the index is unchanged")
            if scan.articles is not None and not scan.articles and not scan.partial:
                # Never an empty index over a full one: an empty folder is far likelier a wrong path.
                raise RagError(f"no articles found in {scrapes}; the index is unchanged")
            crash_point("ingested")
            report = _update(store, scan, settings, rebuild, progress, embedder, t0, export_query_model)
    finally:
        store.close()
    report.warnings = [str(w) for w in scan.warnings]
    report.files_read = scan.read
    report.seconds = round(time.perf_counter() - t0, 3)
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
    store = open_store(index_dir, create=True, settings=settings.store)
    try:
        with store.writing():
            scan = Scan(files=store.files(), articles=articles)
            report = _update(store, scan, settings, rebuild, progress, embedder, t0, export_query_model)
    finally:
        store.close()
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _update(
    store: Store,
    scan: Scan,
    settings: Settings,
    rebuild: bool,
    progress: ProgressFn | None,
    embedder: Any,
    t0: float,
    export_query_model: bool,
) -> IndexReport:
    """Write one generation holding `scan`'s articles (or, when partial, adding them)."""
    report = IndexReport()
    old = store.manifest()
    want = identity(settings)
    rebuild = _must_rebuild(old, want, rebuild, report)
    if scan.articles is None:
        # No article can have changed: at most the file records did.
        assert old is not None and not rebuild
        if _only_file_records(store, old, scan, settings, report):
            return report
        scan = Scan(files=scan.files, articles=[], partial=True)  # only the index kind changes
    stored = {a.article_id: a for a in store.articles()} if old is not None else {}
    plan = _plan(scan, {} if rebuild else stored, report)
    vecs = _embed(plan, settings, progress, embedder, report)
    changes = Changes(removed=list(stored) if rebuild else plan.removed, files=scan.files)
    pos = 0
    for a, chunks in zip(plan.todo, plan.chunks, strict=True):
        changes.added.append((a, chunks, vecs[pos : pos + len(chunks)]))
        pos += len(chunks)
    report.chunks = report.embedded_chunks + plan.kept_chunks
    report.index_kind = choose_kind(settings, report.chunks)
    changed = bool(changes.added or changes.removed) or old is None
    if changed or report.index_kind != (old or {}).get("index_kind") or scan.files != store.files():
        store.commit(changes, _manifest(want, settings, report, plan.hashes, t0))
        # The per-index ONNX copy older versions kept; queries now load the shared cached graph.
        (Path(store.path) / QUERY_MODEL_FILE).unlink(missing_ok=True)
    if export_query_model and (embedder is None or hasattr(embedder, "session")):
        # The graph queries will load (a no-op when it is cached already).
        from rag.onnx_model import ensure_model

        ensure_model(model_dir(), MODEL_NAME, settings.embed.precision)
    report.generation = generation(store.manifest())
    return report


def _must_rebuild(old: Manifest | None, want: dict[str, Any], rebuild: bool, report: IndexReport) -> bool:
    """Whether every article must be re-embedded: asked for, or the index was built with
    other settings that shape the vectors (the report says which)."""
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
    return rebuild


def _only_file_records(
    store: Store, old: Manifest, scan: Scan, settings: Settings, report: IndexReport
) -> bool:
    """When no article changed: commit the new file records (if any changed) and say True, or
    say False when the index kind must change all the same."""
    counts = old.get("counts", {})
    report.articles = report.unchanged = int(counts.get("articles", 0))
    report.chunks = int(counts.get("chunks", 0))
    report.index_kind = str(old.get("index_kind", "flat"))
    if report.index_kind != choose_kind(settings, report.chunks):
        return False
    if scan.files != store.files():
        store.commit(Changes(files=scan.files), {**old, "built_at": _now()})
    report.generation = generation(store.manifest())
    return True


@dataclass
class _Plan:
    todo: list[Article]  # articles to chunk and embed
    chunks: list[list[Chunk]]  # their chunks
    removed: list[str]  # ids of stored articles to remove (gone, or superseded)
    kept_chunks: int  # chunks of unchanged articles, which stay as they are
    hashes: list[str]  # content hashes of every article the new generation holds


def _plan(scan: Scan, known: dict[str, ArticleInfo], report: IndexReport) -> _Plan:
    """Compare the scanned articles with the stored ones (`known`) by content hash."""
    articles = scan.articles or []
    current = {a.id for a in articles}
    todo: list[Article] = []
    kept_chunks = 0
    hashes = [a.content_hash for a in articles]
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
    gone: list[str] = []
    report.articles = len(articles)
    if scan.partial:
        # Everything stored stays; `articles` only adds to it.
        rest = [a for aid, a in known.items() if aid not in current]
        report.unchanged += len(rest)
        kept_chunks += sum(a.chunks for a in rest)
        hashes += [a.content_hash for a in rest]
        report.articles += len(rest)
    else:
        gone = [aid for aid in known if aid not in current]
    report.removed = len(gone)
    removed = [*gone, *(a.id for a in todo if a.id in known)]
    return _Plan(todo, [], removed, kept_chunks, hashes)


def _embed(
    plan: _Plan, settings: Settings, progress: ProgressFn | None, embedder: Any, report: IndexReport
) -> np.ndarray:
    """Chunk and embed the plan's articles; the embedder is loaded only when there is text."""
    plan.chunks = chunk_articles(plan.todo, settings)
    texts = [c.embed_text for chunks in plan.chunks for c in chunks]
    report.embedded_chunks = len(texts)
    vecs = np.zeros((0, DIMENSION), dtype=np.float32)
    if texts:
        if embedder is None:
            embedder = _onnx_embedder(settings)
        vecs = embedder.embed(
            texts, progress=(lambda d, t: progress("embedding", d, t)) if progress else None
        )
    crash_point("embedded")
    return vecs


def _manifest(
    want: dict[str, Any], settings: Settings, report: IndexReport, hashes: list[str], t0: float
) -> Manifest:
    """What the new generation's manifest says about the index (the store adds its own keys);
    `want` is `identity(settings)`."""
    from rag.onnx_model import model_file_name

    return {
        **want,  # type: ignore[typeddict-item]  # embedder, chunker, cleaner
        "rag_version": rag.__version__,
        "index_kind": report.index_kind,
        "corpus_hash": corpus_hash(hashes),
        "counts": {"articles": report.articles, "chunks": report.chunks},
        "built_at": _now(),
        "build_seconds": round(time.perf_counter() - t0, 3),
        "query_embedder": model_file_name(MODEL_NAME, settings.embed.precision, want["embedder"]["weights"]),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _onnx_embedder(settings: Settings) -> Any:
    from rag.embed import onnx_embedder

    e = settings.embed
    return onnx_embedder(e.precision, batch_size=e.batch_size, threads=e.threads)


def copy_index(source: Store, target: Store) -> IndexReport:
    """Copy every article, chunk and vector of `source` into `target` as one new generation,
    without re-embedding; the target's manifest records the same settings as the source's."""
    t0 = time.perf_counter()
    m = source.manifest()
    if m is None:
        raise RagError(f"{source.path}: the index to copy from is empty; run `rag index` first")
    chunks_by_article = _stored_chunks(source)
    infos = source.articles()
    report = IndexReport(rebuilt=True, rebuild_reason=f"copied from {source.path}")
    with target.writing():
        old = target.manifest()
        changes = Changes(removed=[a.article_id for a in target.articles()] if old else [])
        for info in infos:
            article = _stored_article(info, source.article_text(info.article_id) or "")
            if article.content_hash != info.content_hash:
                raise IndexCorrupt(f"{source.path}: article {info.url} does not match its stored hash")
            chunks = sorted(chunks_by_article.get(info.article_id, []), key=lambda c: c.ord)
            vecs = source.vectors([c.id for c in chunks]) if chunks else np.zeros((0, DIMENSION), np.float32)
            changes.added.append((article, chunks, vecs))
        report.articles = report.added = len(infos)
        report.removed = len(changes.removed)
        report.chunks = sum(len(c) for _, c, _ in changes.added)
        report.index_kind = str(m.get("index_kind", "flat"))
        # What describes the index, not how the source store keeps it (files, generations).
        described = (*IDENTITY_KEYS, "index_kind", "query_embedder", "rag_version")
        keep = {k: v for k, v in m.items() if k in described}
        corpus = corpus_hash(a.content_hash for a in infos)
        counts = {"articles": report.articles, "chunks": report.chunks}
        manifest = cast(
            Manifest, {**keep, "counts": counts, "corpus_hash": corpus, "copied_from": str(source.path)}
        )
        target.commit(changes, manifest)
        report.generation = generation(target.manifest())
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _stored_chunks(source: Store) -> dict[str, list[Chunk]]:
    """Every chunk of a store as the chunker made it, by article id."""
    out: dict[str, list[Chunk]] = {}
    for c in source.all_chunks():
        out.setdefault(c.article_id, []).append(
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
    return out


def _stored_article(info: ArticleInfo, text: str) -> Article:
    return Article(
        url=info.url,
        title=info.title,
        publication=info.publication,
        published=info.published,
        fetched=info.fetched,
        text=text,
        member_only=info.member_only,
        source_file="",
        source_line=0,
        aliases=info.aliases,
        author=info.author,
    )
