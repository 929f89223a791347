"""Rank chunks for a query: dense (the store's nearest-vector search, whatever the backend),
lexical (BM25) or both fused by reciprocal rank.

Only the store interface is used here, so the same retrieval runs on any backend. The query
embedder is the ONNX graph from the shared model cache: no torch on the query path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import RetrieveSettings
from rag.errors import IndexCorrupt, RagError
from rag.stores import Filters, Manifest, Store, StoredChunk

RETRIEVERS = ("dense", "bm25", "hybrid", "reader")


@dataclass(frozen=True)
class Hit:
    chunk: StoredChunk
    score: float
    rank: int  # 1-based
    retriever: str


def hit_dict(hit: Hit) -> dict[str, Any]:
    """A hit as `rag search --json` writes it: rank, score to six places, the chunk and its article."""
    c = hit.chunk
    return {
        "rank": hit.rank,
        "score": round(hit.score, 6),
        "chunk_id": c.chunk_id,
        "url": c.url,
        "title": c.title,
        "author": c.author,
        "heading": c.heading,
        "published": c.published,
        "text": c.text,
    }


def search_filters(
    url: str | None = None,
    publication: str | None = None,
    author: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Filters:
    """The filters of a search, refusing a `since` or `until` that is not an ISO date."""
    from datetime import date

    for flag, value in (("--since", since), ("--until", until)):
        if value:
            try:
                date.fromisoformat(value[:10])
            except ValueError:
                raise RagError(f"{flag}: '{value}' is not a date (use YYYY-MM-DD)") from None
    return Filters(url=url, publication=publication, author=author, since=since, until=until)


def load_query_embedder(index_dir: Path, manifest: Manifest | None) -> Any:
    """The ONNX embedder that made the index's vectors, from the shared per-user model cache.

    An index whose vectors came from another model (name, dimension or weights) is refused: its
    vectors and ours would not be comparable. Indexes built before the cache existed keep the
    ONNX file beside them, which is still read.
    """
    from rag.embed import DIMENSION, MODEL_NAME, model_dir, onnx_embedder

    built = (manifest or {}).get("embedder", {})
    if built and (built.get("name"), built.get("dimension")) != (MODEL_NAME, DIMENSION):
        raise IndexCorrupt(
            f"{index_dir}: built with embedder {built.get('name')} ({built.get('dimension')} dims), "
            f"this rag queries with {MODEL_NAME}; run `rag index --rebuild`"
        )
    if "weights" in built:
        from rag.onnx_model import QUANT_VERSION, weights_digest

        if built["weights"] != weights_digest(model_dir()):
            raise IndexCorrupt(
                f"{index_dir}: built with other {MODEL_NAME} weights ({built['weights']}) than the "
                "installed ones; run `rag index --rebuild`"
            )
        if built.get("precision") == "int8" and built.get("quantisation") != QUANT_VERSION:
            raise IndexCorrupt(
                f"{index_dir}: built with an older int8 quantisation of {MODEL_NAME}; "
                "run `rag index --rebuild`"
            )
        return onnx_embedder(str(built.get("precision", "fp32")))
    name = (manifest or {}).get("query_embedder")
    if name and (index_dir / name).exists():
        from rag.embed import OnnxEmbedder

        return OnnxEmbedder(index_dir / name, threads=0)
    return onnx_embedder("fp32")


def rrf_fuse(
    rankings: Sequence[Sequence[str]], weights: Sequence[float], k: float
) -> list[tuple[str, float]]:
    """Weighted reciprocal-rank fusion: score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1.

    Ties keep the order in which documents were first seen, so the result is deterministic.
    """
    scores: dict[str, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        if w == 0:
            continue
        for r, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + w / (k + r)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def cap_per_article(ranked: Sequence[tuple[StoredChunk, float]], cap: int) -> list[tuple[StoredChunk, float]]:
    """Keep at most `cap` chunks of any one article (0 = no cap), preserving order."""
    if cap <= 0:
        return list(ranked)
    seen: dict[str, int] = {}
    out = []
    for ch, s in ranked:
        if seen.get(ch.article_id, 0) < cap:
            out.append((ch, s))
            seen[ch.article_id] = seen.get(ch.article_id, 0) + 1
    return out


class Retriever:
    """Holds the store and the query embedder; answers many queries with models loaded once."""

    def __init__(self, store: Store, settings: RetrieveSettings, embedder: Any = None) -> None:
        self.store = store
        self.settings = settings
        self._embedder = embedder
        self._query_vectors: dict[str, np.ndarray] = {}
        self._authors: tuple[Any, list[str]] = (None, [])  # (generation, author names)
        self._reader: Any = None  # the reader model (see `reader`)

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            self._embedder = load_query_embedder(self.store.path, self.store.manifest())
        return self._embedder

    @property
    def reader(self) -> Any:
        """The reader model (rag.reader), one for everything that reads with this index: the
        "reader" retriever and the answer path. Its graph loads on the first read."""
        if self._reader is None:
            from rag.reader import Reader

            self._reader = Reader()
        return self._reader

    def embed_query(self, query: str) -> np.ndarray:
        """The query's vector; remembered, since evaluation asks several retrievers in turn."""
        vec = self._query_vectors.get(query)
        if vec is None:
            if len(self._query_vectors) > 1024:
                self._query_vectors.clear()
            vec = self._query_vectors[query] = self.embedder.embed([query])[0]
        return vec

    def forget_queries(self) -> None:
        """Drop the remembered query vectors (benchmarks time the query embedding this way)."""
        self._query_vectors.clear()

    def named_authors(self, query: str) -> list[str]:
        """Indexed authors whose full name the query contains (any case, whole words)."""
        gen = (self.store.manifest() or {}).get("generation")
        if self._authors[0] != gen or gen is None:
            names = sorted({a.author for a in self.store.articles() if a.author})
            self._authors = (gen, names)
        q = query.lower()
        return [n for n in self._authors[1] if re.search(rf"(?<!\w){re.escape(n.lower())}(?!\w)", q)]

    def search(
        self,
        query: str,
        k: int | None = None,
        retriever: str | None = None,
        filters: Filters | None = None,
        max_per_article: int | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        query = query.strip()
        if not query:
            raise RagError("empty query: give some words to search for")
        s = self.settings
        k = k or s.k
        retriever = retriever or s.retriever
        cap = s.max_per_article if max_per_article is None else max_per_article
        if retriever not in RETRIEVERS:
            raise RagError(f"unknown retriever '{retriever}' (use one of {', '.join(RETRIEVERS)})")
        # Over-fetch when a cap may drop hits, so that k still come back.
        n = max(k, s.candidates) if (retriever in ("hybrid", "reader") or cap) else k
        if retriever == "reader":
            n = max(n, s.reader_candidates)
        if retriever == "dense":
            vec = self.embed_query(query) if query_vector is None else query_vector
            ranked = self.store.search_dense(vec, n, filters)
        elif retriever == "bm25":
            ranked = self.store.search_lexical(query, n, filters)
        else:
            vec = self.embed_query(query) if query_vector is None else query_vector
            ranked = self._hybrid(query, vec, n, filters)
            if retriever == "reader":
                ranked = self._reread(query, ranked)
        ranked = cap_per_article(ranked, cap)[:k]
        return [Hit(c, sc, i, retriever) for i, (c, sc) in enumerate(ranked, start=1)]

    def _hybrid(
        self, query: str, vec: np.ndarray, n: int, filters: Filters | None
    ) -> list[tuple[StoredChunk, float]]:
        """Dense and BM25 rankings fused by reciprocal rank."""
        s = self.settings
        dense = self.store.search_dense(vec, n, filters)
        lexical = self.store.search_lexical(query, n, filters)
        # A query naming an author ("what does <author> say ...") adds a third ranking: that
        # author's chunks by dense similarity. The embedder knows little of names, so without
        # it a name-only question's dense noise outvotes the lexical match on the byline.
        by_author: list[tuple[StoredChunk, float]] = []
        if not (filters and filters.author):
            for name in self.named_authors(query):
                by_author += self.store.search_dense(vec, n, replace(filters or Filters(), author=name))
            by_author.sort(key=lambda cs: -cs[1])
        by_id = {c.chunk_id: c for c, _ in [*dense, *lexical, *by_author]}
        fused = rrf_fuse(
            [
                [c.chunk_id for c, _ in dense],
                [c.chunk_id for c, _ in lexical],
                [c.chunk_id for c, _ in by_author],
            ],
            [s.dense_weight, s.lexical_weight, s.lexical_weight],
            s.rrf_k,
        )
        return [(by_id[cid], score) for cid, score in fused]

    def _reread(self, query: str, ranked: list[tuple[StoredChunk, float]]) -> list[tuple[StoredChunk, float]]:
        """The first `reader_candidates` hits reordered by fusing their rank with the reader's
        (its probability that the chunk answers the query); the rest follow in their order."""
        s = self.settings
        head, tail = ranked[: s.reader_candidates], ranked[s.reader_candidates :]
        if len(head) < 2:
            return ranked
        scores = [r.score for r in self.reader.read(query, [c.text for c, _ in head])]
        by_reader = sorted(range(len(head)), key=lambda i: -scores[i])
        fused = rrf_fuse(
            [[str(i) for i in range(len(head))], [str(i) for i in by_reader]], [1.0, s.reader_weight], s.rrf_k
        )
        return [(head[int(i)][0], score) for i, score in fused] + tail
