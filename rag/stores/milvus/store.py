"""The scale-out store: Milvus (a server or cluster), or Milvus Lite for development and tests.

Milvus has no multi-row transactions, so a build is made atomic the way the FAISS store does it:
every row carries the generation that wrote it, and readers filter on the generation the newest
manifest row names. A build writes its rows under generation N+1, then tombstone rows naming the
article versions it removes, and only then inserts the manifest row N+1: that single-row insert
is the switch. Readers of N+1 skip tombstoned articles (and everything below the manifest's
`floor`, which a full rebuild raises), so rows the clean-up has not yet deleted are invisible.
A build killed before the switch leaves rows above the newest manifest, which the next build
deletes first; one killed after it leaves removed rows, which the next build deletes too.

Here: the Store operations and the commit hooks, in that order. The connection and collections
are `client.py`, filters and result rows `query.py`, the rows a generation writes `writes.py`, the
collection schemas `schema.py`, filter expressions `expr.py`.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexCorrupt, IndexMissing, RagError
from rag.records import ArticleInfo, FileRecord, Filters, StoredChunk
from rag.stores.base import (
    Changes,
    GenerationalStore,
    Manifest,
    article_from_row,
    batched,
    crash_point,
    generation,
    parse_manifest,
)
from rag.stores.milvus import schema, writes
from rag.stores.milvus.client import Collections
from rag.stores.milvus.expr import in_list, literal
from rag.stores.milvus.query import filter_expr, to_chunks
from rag.text import lexical_terms

INDEX_TYPES = ("AUTOINDEX", "HNSW", "FLAT")

# A server may have readers in other processes: give a query that read the previous manifest
# time to finish before the rows only it could see are deleted.
_SERVER_GRACE_SECONDS = 1.0


class MilvusStore(GenerationalStore):
    """An index held in Milvus collections. `path` is a local folder for the query model."""

    def __init__(
        self,
        uri: str,
        local_dir: Path,
        collection: str = "rag",
        index_type: str = "AUTOINDEX",
        create: bool = False,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", collection):
            raise RagError(f"store.collection: '{collection}' is not a Milvus collection name")
        if index_type not in INDEX_TYPES:
            raise RagError(f"store.index_type: '{index_type}' (use one of {', '.join(INDEX_TYPES)})")
        self.uri = uri
        self.path = Path(local_dir)
        self.index_type = index_type
        self._tombs: tuple[int, list[str]] = (-1, [])
        self._lock_key: str | None = None
        self._db = Collections(uri, collection, create)
        if self._db.has(self._db.meta):
            self._db.open_existing()
            if self.manifest() is not None:
                for name in (self._db.chunks, self._db.articles):
                    if not self._db.has(name):
                        raise IndexCorrupt(
                            f"{self.where}: collection {name} is missing; run `rag index --rebuild`"
                        )
        elif not create:
            raise IndexMissing(f"{self.where}: no index here yet; run `rag index --store milvus` first")

    @property
    def where(self) -> str:
        """The store as messages name it (no credentials)."""
        return self._db.where

    # ----------------------------------------------------------------------------- manifest

    def manifest(self) -> Manifest | None:
        """The newest committed manifest row, or None."""
        db = self._db
        if not db.has(db.meta):
            return None
        rows = db.call(
            "reading the manifest",
            db.client.query,
            db.meta,
            filter='kind == "manifest"',
            output_fields=["gen", "body"],
        )
        if not rows:
            return None
        return parse_manifest(max(rows, key=lambda r: int(r["gen"]))["body"], self.where)

    def _visible(self) -> str:
        """The filter selecting rows of the current generation."""
        m = self.manifest()
        if m is None:
            raise IndexMissing(f"{self.where}: the index is empty; run `rag index --store milvus`")
        gen, floor = int(m["generation"]), int(m.get("floor", 0))
        expr = f"gen >= {floor} and gen <= {gen}"
        tombs = self._tombstones(gen) if int(m.get("tombstones", 0)) else []
        if tombs:
            expr += " and " + in_list("article_key", tombs, negate=True)
        return expr

    def _tombstones(self, gen: int) -> list[str]:
        if self._tombs[0] != gen:
            rows = self._db.query(self._db.meta, f'kind == "tombstone" and gen == {gen}', ["body"])
            self._tombs = (gen, sorted(r["body"] for r in rows))
        return self._tombs[1]

    # ----------------------------------------------------------------------------- reads

    def articles(self) -> list[ArticleInfo]:
        db = self._db
        rows = db.query(db.articles, f"part == 0 and {self._visible()}", db.fields(schema.ARTICLE_FIELDS))
        rows.sort(key=lambda r: (int(r["gen"]), r["url"]))
        return [article_from_row(r) for r in rows]

    def article_text(self, article_id: str) -> str | None:
        expr = f"article_id == {literal(article_id)} and {self._visible()}"
        rows = self._db.query(self._db.articles, expr, ["part", "text"])
        if not rows:
            return None
        return "".join(r["text"] for r in sorted(rows, key=lambda r: int(r["part"])))

    def chunk_count(self) -> int:
        db = self._db
        expr = self._visible()
        rows = db.call("count", db.client.query, db.chunks, filter=expr, output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def all_chunks(self) -> list[StoredChunk]:
        rows = self._db.query(self._db.chunks, self._visible(), self._db.fields(schema.CHUNK_FIELDS))
        rows.sort(key=lambda r: (r["url"], int(r["ord"])))
        return to_chunks(rows, self.article_text)

    def files(self) -> dict[str, FileRecord]:
        m = self.manifest()
        if m is None:
            return {}
        out: dict[str, FileRecord] = {}
        expr = f'kind == "files" and gen == {generation(m)}'
        for r in self._db.query(self._db.meta, expr, ["key", "body"]):
            for v in json.loads(r["body"]):
                rec = FileRecord.from_json(v)
                prev = out.get(rec.path)  # a record too big for one row is split by its articles
                out[rec.path] = rec if prev is None else replace(prev, articles=prev.articles + rec.articles)
        return out

    def _search(
        self, data: Any, field: str, k: int, filters: Filters | None, params: dict[str, Any]
    ) -> list[tuple[StoredChunk, float]]:
        db = self._db
        expr = filter_expr(db, filters, self._visible())
        if expr is None or k <= 0:
            return []
        res = db.call(
            "search",
            db.client.search,
            db.chunks,
            data=[data],
            anns_field=field,
            limit=k,
            filter=expr,
            output_fields=db.fields(schema.CHUNK_FIELDS),
            search_params=params,
        )
        hits = list(res[0]) if res else []
        chunks = to_chunks([dict(h["entity"]) for h in hits], self.article_text)
        return [(c, float(h["distance"])) for c, h in zip(chunks, hits, strict=True)]

    def search_dense(
        self, vector: np.ndarray, k: int, filters: Filters | None = None
    ) -> list[tuple[StoredChunk, float]]:
        vec = np.asarray(vector, dtype=np.float32).reshape(-1).tolist()
        params: dict[str, Any] = {"metric_type": "COSINE"}
        if self.index_type == "HNSW":
            params["params"] = {"ef": max(128, k)}
        return self._search(vec, "vector", k, filters, params)

    def search_lexical(
        self, query: str, k: int, filters: Filters | None = None
    ) -> list[tuple[StoredChunk, float]]:
        terms = lexical_terms(query)
        if not terms:
            return []
        found = self._search(terms, "sparse", k, filters, {"metric_type": "BM25"})
        # Milvus Lite reports a BM25 hit's distance as -score, a server as +score.
        return [(c, abs(s)) for c, s in found]

    def vectors(self, chunk_ids: list[str]) -> np.ndarray:
        if not chunk_ids:
            return np.zeros((0, 0), np.float32)
        vis = self._visible()
        got: dict[str, np.ndarray] = {}
        for part in batched(chunk_ids):
            expr = f"{in_list('chunk_id', part)} and {vis}"
            for r in self._db.query(self._db.chunks, expr, ["chunk_id", "vector"]):
                got[r["chunk_id"]] = np.asarray(r["vector"], dtype=np.float32)
        return np.stack([got[c] for c in chunk_ids])

    # ----------------------------------------------------------------------------- writes

    @contextlib.contextmanager
    def _writer_lock(self) -> Iterator[None]:
        """One writer at a time. A Lite file is locked to one process by Milvus Lite itself; on a
        server a lock row names the writer, and one left by a dead process is taken over."""
        if self._db.server:
            writes.check_lock(self._db)
            self._lock_key = writes.LOCK_KEY
            writes.insert_lock(self._db)
        try:
            yield
        finally:
            if self._lock_key:
                with contextlib.suppress(RagError):
                    self._db.delete(self._db.meta, f"key == {literal(self._lock_key)}")
                self._lock_key = None

    def _drop_uncommitted(self, gen: int) -> None:
        db = self._db
        if not db.has(db.meta):
            return
        for name in (db.chunks, db.articles):
            if db.has(name):
                db.delete(name, f"gen > {gen}")
        db.delete(db.meta, f'kind != "lock" and gen > {gen}')

    def _cleanup(self, manifest: Manifest) -> None:
        db = self._db
        gen, floor = generation(manifest), int(manifest.get("floor", 0))
        tombs = self._tombstones(gen) if int(manifest.get("tombstones", 0)) else []
        for name in (db.chunks, db.articles):
            if floor:
                db.delete(name, f"gen < {floor}")
            db.delete_keys(name, "article_key", tombs)
        db.delete(db.meta, f'kind != "lock" and gen < {gen}')

    def _write_generation(
        self, changes: Changes, gen: int, old: Manifest | None, manifest: Manifest
    ) -> dict[str, Any]:
        """Tombstones, then rows, then file records, all under `gen`; sealed and indexed."""
        db = self._db
        db.call("creating collections", db.create, int(manifest["embedder"]["dimension"]), self.index_type)
        if not db.authors:
            raise RagError(
                f"{self.where}: these collections were made by an older rag, without author fields; "
                "index into a new collection (store.collection in the config) or drop these"
            )
        floor, tombs = writes.write_tombstones(db, changes.removed, gen, old, self._visible)
        writes.write_rows(db, changes, gen)
        files = changes.files if changes.files is not None else (self.files() if old else {})
        writes.write_files(db, files, gen)
        # Seal what was written into segments: Milvus Lite searches rows still in its memtable
        # one by one in Python (minutes for SciFact's BM25), and a server persists them.
        for name in (db.chunks, db.articles, db.meta):
            db.call("flush", db.client.flush, name)
        writes.wait_indexed(db)
        crash_point("milvus-rows-written")
        return {"floor": floor, "tombstones": tombs, "store": "milvus"}

    def _publish(self, manifest: Manifest) -> None:
        body = json.dumps(manifest)
        if len(body.encode("utf-8")) > schema.TEXT_MAX:
            raise RagError(f"{self.where}: the manifest is over 64 KB; this is a bug in rag")
        # The switch: one row, inserted whole or not at all.
        gen = generation(manifest)
        self._db.insert(self._db.meta, [schema.meta_row(f"manifest@{gen}", "manifest", gen, body)])
        if self._db.server:
            time.sleep(_SERVER_GRACE_SECONDS)  # readers in other processes finish the old generation

    def close(self) -> None:
        self._db.close()
