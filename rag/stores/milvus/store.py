"""The scale-out store: Milvus (a server or cluster), or Milvus Lite for development and tests.

Milvus has no multi-row transactions, so a build is made atomic the way the FAISS store does it:
every row carries the generation that wrote it, and readers filter on the generation the newest
manifest row names. A build writes its rows under generation N+1, then tombstone rows naming the
article versions it removes, and only then inserts the manifest row N+1: that single-row insert
is the switch. Readers of N+1 skip tombstoned articles (and everything below the manifest's
`floor`, which a full rebuild raises), so rows the clean-up has not yet deleted are invisible.
A build killed before the switch leaves rows above the newest manifest, which the next build
deletes first; one killed after it leaves removed rows, which the next build deletes too.

Filter expressions are built only through `expr.py`. A token comes only from the environment
variable RAG_MILVUS_TOKEN and is never written anywhere.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexCorrupt, IndexMissing, RagError
from rag.stores.base import (
    BATCH,
    ArticleInfo,
    Changes,
    FileRecord,
    Filters,
    GenerationalStore,
    Manifest,
    StoredChunk,
    article_from_row,
    batched,
    chunk_from_row,
    crash_point,
    generation,
    parse_manifest,
)
from rag.stores.milvus import schema
from rag.stores.milvus.expr import day_number, in_list, is_server, like_pattern, literal, reason, redact
from rag.text import lexical_terms

TOKEN_ENV = "RAG_MILVUS_TOKEN"
INDEX_TYPES = ("AUTOINDEX", "HNSW", "FLAT")

_QUERY_PAGE = 4096
# A server may have readers in other processes: give a query that read the previous manifest
# time to finish before the rows only it could see are deleted.
_SERVER_GRACE_SECONDS = 1.0
_STALE_LOCK_SECONDS = 3600
_LITE_USERS: dict[str, int] = {}  # open stores per Milvus Lite file in this process


def _quiet_milvus_logs() -> None:
    # pymilvus logs every failed call at ERROR before raising it; we turn the raise into one line.
    # Milvus Lite's in-process gRPC server logs calls it does not implement (the iterator's
    # timestamp probe, which pymilvus then does without).
    for name in ("pymilvus", "milvus_lite", "grpc._server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


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
        self._chunks = f"{collection}_chunks"
        self._articles = f"{collection}_articles"
        self._meta = f"{collection}_meta"
        self._tombs: tuple[int, list[str]] = (-1, [])
        self._lock_key: str | None = None
        self._client = self._connect(create)
        self._authors = True  # whether the collections have the author fields (older ones do not)
        if self._has(self._meta):
            self._open_existing()
        elif not create:
            raise IndexMissing(f"{self.where}: no index here yet; run `rag index --store milvus` first")

    @property
    def where(self) -> str:
        """The store as messages name it (no credentials)."""
        return f"milvus {redact(self.uri)} ({self._meta.removesuffix('_meta')})"

    def _connect(self, create: bool) -> Any:
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise RagError("the Milvus store needs the milvus extra: pip install -e '.[milvus]'") from None
        _quiet_milvus_logs()  # after the import: pymilvus sets its loggers up as it loads
        token = os.environ.get(TOKEN_ENV, "")
        if not is_server(self.uri):
            self._check_lite_file(create)
        try:
            client = MilvusClient(uri=self.uri, token=token) if token else MilvusClient(uri=self.uri)
        except Exception as e:  # pymilvus raises many kinds; every one is "cannot connect" here
            if not is_server(self.uri):
                raise RagError(
                    f"{self.uri}: cannot open Milvus Lite (another process may be using it: "
                    "a Lite file serves one process; run `milvus-lite server` for several)"
                ) from None
            raise RagError(f"{redact(self.uri)}: cannot connect to Milvus ({reason(e)})") from None
        if not is_server(self.uri):
            key = os.path.abspath(self.uri)
            _LITE_USERS[key] = _LITE_USERS.get(key, 0) + 1
        return client

    def _check_lite_file(self, create: bool) -> None:
        if not self.uri.endswith(".db"):
            raise RagError(
                f"--uri: '{self.uri}' must be a Milvus Lite file ending in .db or http(s)://host:port"
            )
        if not create and not Path(self.uri).exists():
            raise IndexMissing(f"{self.uri}: no index here yet; run `rag index --store milvus` first")
        try:
            Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RagError(f"{self.uri}: cannot create the folder: {e.strerror}") from None

    def _open_existing(self) -> None:
        # A reopened collection serves searches only once loaded.
        for name in (self._meta, self._chunks, self._articles):
            if self._has(name):
                self._load(name)
        if self._has(self._chunks):
            desc = self._call("describing", self._client.describe_collection, self._chunks)
            self._authors = "author" in {f.get("name") for f in desc.get("fields", [])}
        if self.manifest() is not None:
            for name in (self._chunks, self._articles):
                if not self._has(name):
                    raise IndexCorrupt(
                        f"{self.where}: collection {name} is missing; run `rag index --rebuild`"
                    )

    def _create_collections(self, dim: int) -> None:
        schema.create_meta(self._client, self._meta)
        schema.create_chunks(self._client, self._chunks, dim, self.index_type)
        schema.create_articles(self._client, self._articles)
        for name in (self._meta, self._chunks, self._articles):
            self._load(name)

    # ----------------------------------------------------------------------------- client calls

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one client call; a failure is one line naming the store, never a traceback."""
        try:
            return fn(*args, **kwargs)
        except RagError:
            raise
        except Exception as e:
            raise RagError(f"{self.where}: {what} failed ({reason(e)})") from None

    def _fields(self, fields: list[str]) -> list[str]:
        return fields if self._authors else [f for f in fields if f != "author"]

    def _has(self, name: str) -> bool:
        return bool(self._call("listing collections", self._client.has_collection, name))

    def _load(self, name: str) -> None:
        """Load a collection unless it is loaded: an operator may have loaded it with replicas."""
        state = self._call("loading", self._client.get_load_state, name).get("state")
        if getattr(state, "name", str(state)) != "Loaded":
            self._call("loading", self._client.load_collection, name)

    def _query(self, collection: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row matching `expr`, however many (Milvus caps one query at 16,384)."""
        c = self._client
        it = self._call(
            "query", c.query_iterator, collection, batch_size=_QUERY_PAGE, filter=expr, output_fields=fields
        )
        rows: list[dict[str, Any]] = []
        try:
            while True:
                page = self._call("query", it.next)
                if not page:
                    break
                rows.extend(dict(r) for r in page)
        finally:
            it.close()
        return rows

    def _insert(self, collection: str, rows: list[dict[str, Any]]) -> None:
        for part in batched(rows):
            self._call("insert", self._client.insert, collection, list(part))

    def _delete(self, collection: str, expr: str) -> None:
        self._call("delete", self._client.delete, collection, filter=expr)

    def _delete_keys(self, collection: str, field: str, values: list[str]) -> None:
        for part in batched(values):
            self._delete(collection, in_list(field, part))

    # ----------------------------------------------------------------------------- manifest

    def manifest(self) -> Manifest | None:
        """The newest committed manifest row, or None."""
        if not self._has(self._meta):
            return None
        rows = self._call(
            "reading the manifest",
            self._client.query,
            self._meta,
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
            rows = self._query(self._meta, f'kind == "tombstone" and gen == {gen}', ["body"])
            self._tombs = (gen, sorted(r["body"] for r in rows))
        return self._tombs[1]

    # ----------------------------------------------------------------------------- reads

    def articles(self) -> list[ArticleInfo]:
        rows = self._query(
            self._articles, f"part == 0 and {self._visible()}", self._fields(schema.ARTICLE_FIELDS)
        )
        rows.sort(key=lambda r: (int(r["gen"]), r["url"]))
        return [article_from_row(r) for r in rows]

    def article_text(self, article_id: str) -> str | None:
        expr = f"article_id == {literal(article_id)} and {self._visible()}"
        rows = self._query(self._articles, expr, ["part", "text"])
        if not rows:
            return None
        return "".join(r["text"] for r in sorted(rows, key=lambda r: int(r["part"])))

    def chunk_count(self) -> int:
        rows = self._call(
            "count", self._client.query, self._chunks, filter=self._visible(), output_fields=["count(*)"]
        )
        return int(rows[0]["count(*)"])

    def all_chunks(self) -> list[StoredChunk]:
        rows = self._query(self._chunks, self._visible(), self._fields(schema.CHUNK_FIELDS))
        rows.sort(key=lambda r: (r["url"], int(r["ord"])))
        return self._to_chunks(rows)

    def files(self) -> dict[str, FileRecord]:
        m = self.manifest()
        if m is None:
            return {}
        out: dict[str, FileRecord] = {}
        for r in self._query(self._meta, f'kind == "files" and gen == {generation(m)}', ["key", "body"]):
            for v in json.loads(r["body"]):
                rec = FileRecord.from_json(v)
                prev = out.get(rec.path)  # a record too big for one row is split by its articles
                out[rec.path] = rec if prev is None else replace(prev, articles=prev.articles + rec.articles)
        return out

    def _to_chunks(self, rows: list[dict[str, Any]]) -> list[StoredChunk]:
        texts: dict[str, str] = {}
        for r in rows:
            if r["text_cut"]:  # a chunk over 64 KB: its text is a span of the article's
                aid = r["article_id"]
                if aid not in texts:
                    texts[aid] = self.article_text(aid) or ""
                r["text"] = texts[aid][int(r["start"]) : int(r["end"])]
        return [chunk_from_row(r) for r in rows]

    def _filter_expr(self, filters: Filters | None, vis: str) -> str | None:
        """`vis` narrowed by the filters; None when no article can match."""
        if not filters:
            return vis
        expr = vis
        if filters.since:
            expr += f" and published_day >= {day_number(filters.since)}"
        if filters.until:
            expr += f" and published_day >= 0 and published_day <= {day_number(filters.until)}"
        if filters.url or filters.publication or filters.author:
            keys = self._articles_matching(filters, vis)
            if not keys:
                return None
            expr += " and " + in_list("article_key", keys)
        return expr

    def _articles_matching(self, filters: Filters, vis: str) -> list[str]:
        """Keys of visible articles whose URL, publication and author contain the filter substrings."""
        expr = f"part == 0 and {vis}"
        url = (filters.url or "").lower()
        pub = (filters.publication or "").lower()
        author = (filters.author or "").lower()
        fields = ["article_key", "url_lc", "publication_lc"]
        if url:
            expr += f" and url_lc like {like_pattern(url)}"
        if pub:
            expr += f" and publication_lc like {like_pattern(pub)}"
        if author:
            if not self._authors:
                return []  # an index from before authors were kept names none
            expr += f" and author_lc like {like_pattern(author)}"
            fields.append("author_lc")
        rows = self._query(self._articles, expr, fields)
        # LIKE may over-match (a backslash became a wildcard): keep exact substring matches only.
        return [
            r["article_key"]
            for r in rows
            if url in r["url_lc"] and pub in r["publication_lc"] and author in r.get("author_lc", "")
        ]

    def _search(
        self, data: Any, field: str, k: int, filters: Filters | None, params: dict[str, Any]
    ) -> list[tuple[StoredChunk, float]]:
        expr = self._filter_expr(filters, self._visible())
        if expr is None or k <= 0:
            return []
        res = self._call(
            "search",
            self._client.search,
            self._chunks,
            data=[data],
            anns_field=field,
            limit=k,
            filter=expr,
            output_fields=self._fields(schema.CHUNK_FIELDS),
            search_params=params,
        )
        hits = list(res[0]) if res else []
        chunks = self._to_chunks([dict(h["entity"]) for h in hits])
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
            for r in self._query(
                self._chunks, f"{in_list('chunk_id', part)} and {vis}", ["chunk_id", "vector"]
            ):
                got[r["chunk_id"]] = np.asarray(r["vector"], dtype=np.float32)
        return np.stack([got[c] for c in chunk_ids])

    # ----------------------------------------------------------------------------- writes

    @contextlib.contextmanager
    def _writer_lock(self) -> Iterator[None]:
        """One writer at a time. A Lite file is locked to one process by Milvus Lite itself; on a
        server a lock row names the writer, and one left by a dead process is taken over."""
        if is_server(self.uri):
            self._take_lock()
        try:
            yield
        finally:
            if self._lock_key:
                with contextlib.suppress(RagError):
                    self._delete(self._meta, f"key == {literal(self._lock_key)}")
                self._lock_key = None

    def _take_lock(self) -> None:
        host, pid = socket.gethostname(), os.getpid()
        if self._has(self._meta):
            for r in self._query(self._meta, 'kind == "lock"', ["body"]):
                held = json.loads(r["body"])
                dead = held.get("host") == host and not _pid_alive(int(held.get("pid", 0)))
                stale = time.time() - float(held.get("since", 0)) > _STALE_LOCK_SECONDS
                if not (dead or stale):
                    raise RagError(
                        f"{self.where}: another `rag index` (pid {held.get('pid')} on "
                        f"{held.get('host')}) is writing this index; wait for it to finish and run again"
                    )
        else:
            self._call("creating collections", schema.create_meta, self._client, self._meta)
            self._load(self._meta)
        self._lock_key = "lock"
        body = json.dumps({"host": host, "pid": pid, "since": time.time()})
        self._insert(self._meta, [schema.meta_row("lock", "lock", -1, body)])

    def _drop_uncommitted(self, gen: int) -> None:
        if not self._has(self._meta):
            return
        for name in (self._chunks, self._articles):
            if self._has(name):
                self._delete(name, f"gen > {gen}")
        self._delete(self._meta, f'kind != "lock" and gen > {gen}')

    def _cleanup(self, manifest: Manifest) -> None:
        gen, floor = generation(manifest), int(manifest.get("floor", 0))
        tombs = self._tombstones(gen) if int(manifest.get("tombstones", 0)) else []
        for name in (self._chunks, self._articles):
            if floor:
                self._delete(name, f"gen < {floor}")
            self._delete_keys(name, "article_key", tombs)
        self._delete(self._meta, f'kind != "lock" and gen < {gen}')

    def _write_generation(
        self, changes: Changes, gen: int, old: Manifest | None, manifest: Manifest
    ) -> dict[str, Any]:
        """Tombstones, then rows, then file records, all under `gen`; sealed and indexed."""
        self._call("creating collections", self._create_collections, int(manifest["embedder"]["dimension"]))
        if not self._authors:
            raise RagError(
                f"{self.where}: these collections were made by an older rag, without author fields; "
                "index into a new collection (store.collection in the config) or drop these"
            )
        floor, tombs = self._write_tombstones(changes.removed, gen, old)
        self._write_rows(changes, gen)
        files = changes.files if changes.files is not None else (self.files() if old else {})
        bodies = schema.file_bodies(files)
        self._insert(
            self._meta, [schema.meta_row(f"files@{gen}@{i}", "files", gen, b) for i, b in enumerate(bodies)]
        )
        # Seal what was written into segments: Milvus Lite searches rows still in its memtable
        # one by one in Python (minutes for SciFact's BM25), and a server persists them.
        for name in (self._chunks, self._articles, self._meta):
            self._call("flush", self._client.flush, name)
        self._wait_indexed()
        crash_point("milvus-rows-written")
        return {"floor": floor, "tombstones": tombs, "store": "milvus"}

    def _write_tombstones(self, removed: list[str], gen: int, old: Manifest | None) -> tuple[int, int]:
        """Name the stored article versions generation `gen` drops; returns (floor, tombstones).
        Dropping everything (a rebuild) raises the floor instead of listing every article."""
        keys: list[str] = []
        if old is not None and removed:
            vis = self._visible()
            for part in batched(sorted(set(removed))):
                expr = f"part == 0 and {vis} and {in_list('article_id', part)}"
                keys += [r["article_key"] for r in self._query(self._articles, expr, ["article_key"])]
        visible_articles = int((old or {}).get("counts", {}).get("articles", 0))
        floor = gen if old and keys and len(keys) >= visible_articles else int((old or {}).get("floor", 0))
        tombs = [] if floor == gen else keys
        self._insert(self._meta, [schema.meta_row(f"tomb@{gen}@{k}", "tombstone", gen, k) for k in tombs])
        crash_point("milvus-tombstones-written")
        return floor, len(tombs)

    def _write_rows(self, changes: Changes, gen: int) -> None:
        # Rows are sent in batches across articles: one insert per article was most of the time.
        rows: list[dict[str, Any]] = []
        crows: list[dict[str, Any]] = []
        for article, chunks, vecs in changes.added:
            rows += schema.article_rows(article, len(chunks), gen)
            crows += [schema.chunk_row(article, ch, v, gen) for ch, v in zip(chunks, vecs, strict=True)]
            if len(crows) >= BATCH:
                self._insert(self._articles, rows)
                self._insert(self._chunks, crows)
                rows, crows = [], []
        self._insert(self._articles, rows)
        self._insert(self._chunks, crows)

    def _publish(self, manifest: Manifest) -> None:
        body = json.dumps(manifest)
        if len(body.encode("utf-8")) > schema.TEXT_MAX:
            raise RagError(f"{self.where}: the manifest is over 64 KB; this is a bug in rag")
        # The switch: one row, inserted whole or not at all.
        gen = generation(manifest)
        self._insert(self._meta, [schema.meta_row(f"manifest@{gen}", "manifest", gen, body)])
        if is_server(self.uri):
            time.sleep(_SERVER_GRACE_SECONDS)  # readers in other processes finish the old generation

    def _wait_indexed(self, limit: float = 600.0) -> None:
        """Wait until the server has indexed the new vectors (it does so in the background), so
        that the first searches after `rag index` are not slowed by index building."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            info = self._call("describe index", self._client.describe_index, self._chunks, "vector")
            if not int(info.get("pending_index_rows", 0) or 0):
                return
            time.sleep(0.2)

    def close(self) -> None:
        if self._client is None:
            return
        with contextlib.suppress(Exception):
            self._client.close()
        self._client = None
        if not is_server(self.uri):
            # Milvus Lite keeps a file's in-process server (and its lock) until the process
            # exits; stop it once no store here uses it, so another process may open the file.
            key = os.path.abspath(self.uri)
            _LITE_USERS[key] = _LITE_USERS.get(key, 1) - 1
            if _LITE_USERS[key] <= 0:
                del _LITE_USERS[key]
                with contextlib.suppress(Exception):
                    from milvus_lite.server_manager import server_manager_instance

                    server_manager_instance.release_server(self.uri)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
