"""The scale-out store: Milvus (a server or cluster), or Milvus Lite for development and tests.

Three collections share a name prefix (`rag` by default):

    <prefix>_chunks     one row per chunk and generation: vector, BM25 text, citation metadata
    <prefix>_articles   one row per article, generation and text part (a VARCHAR holds 64 KB)
    <prefix>_meta       manifests (one row per generation), tombstones, the writer's lock

Milvus has no multi-row transactions, so a build is made atomic the way the FAISS store does it:
every row carries the generation that wrote it, and readers filter on the generation the newest
manifest row names. A build writes its rows under generation N+1, then tombstone rows naming the
article versions it removes, and only then inserts the manifest row N+1: that single-row insert
is the switch. Readers of N+1 skip tombstoned articles (and everything below the manifest's
`floor`, which a full rebuild raises), so rows the clean-up has not yet deleted are invisible.
A build killed before the switch leaves rows above the newest manifest, which the next build
deletes first; one killed after it leaves removed rows, which the next build deletes too.

Every filter expression is built here from typed values: strings go through `literal` (and
`like_pattern` for substrings), numbers are formatted as integers, so no query, URL or
publication or author name can change what an expression means. A token comes only from the environment
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
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from rag.chunk import byline
from rag.errors import IndexCorrupt, IndexMissing, RagError
from rag.store import (
    SCHEMA_VERSION,
    ArticleInfo,
    Changes,
    FileRecord,
    Filters,
    StoredChunk,
    crash_point,
    query_words,
    record_from_json,
    record_to_json,
)

TOKEN_ENV = "RAG_MILVUS_TOKEN"
INDEX_TYPES = ("AUTOINDEX", "HNSW", "FLAT")

_TEXT_MAX = 65535  # bytes in a Milvus VARCHAR
_PART_CHARS = 16000  # article text per row: at most 4 bytes a character in UTF-8
_BATCH = 500  # rows per insert, and keys per `in [...]` list
_QUERY_PAGE = 4096
# A server may have readers in other processes: give a query that read the previous manifest
# time to finish before the rows only it could see are deleted.
_SERVER_GRACE_SECONDS = 1.0
_STALE_LOCK_SECONDS = 3600
_LITE_USERS: dict[str, int] = {}  # open stores per Milvus Lite file in this process

_CHUNK_FIELDS = [
    "chunk_id",
    "article_id",
    "url",
    "title",
    "publication",
    "published",
    "heading",
    "text",
    "text_cut",
    "start",
    "end",
    "ord",
    "member_only",
    "author",
]
_ARTICLE_FIELDS = [
    "article_id",
    "article_key",
    "gen",
    "url",
    "title",
    "publication",
    "published",
    "fetched",
    "member_only",
    "content_hash",
    "aliases",
    "chunks",
    "author",
]
_AUTHOR_MAX = 1024


# --------------------------------------------------------------------------------- expressions


def literal(value: str) -> str:
    """A Milvus string literal holding exactly `value`."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def like_pattern(substring: str) -> str:
    """A LIKE pattern matching any string that contains `substring` (callers re-check exactly:
    Milvus cannot escape a backslash inside LIKE, so one becomes a wildcard)."""
    parts = [p.replace("%", "\\%").replace("_", "\\_") for p in substring.split("\\")]
    return literal("%" + "%".join(parts) + "%")


def in_list(field: str, values: Iterable[str], negate: bool = False) -> str:
    items = ",".join(literal(v) for v in values)
    return f"{field} {'not in' if negate else 'in'} [{items}]"


def day_number(iso: str | None) -> int:
    """2024-03-01... -> 20240301; -1 when there is no date."""
    if not iso or not re.match(r"\d{4}-\d{2}-\d{2}", iso):
        return -1
    return int(iso[:10].replace("-", ""))


def _stem(words: list[str]) -> list[str]:
    global _STEMMER
    if _STEMMER is None:
        import Stemmer  # PyStemmer: the Porter algorithm, as SQLite FTS5's porter tokenizer

        _STEMMER = Stemmer.Stemmer("porter")
    return list(_STEMMER.stemWords(words))


_STEMMER: Any = None


def analyzed(text: str) -> str:
    """Text as BM25 should see it: lower-case Porter stems. Milvus Lite's analyzer has no
    stemmer, so stemming happens here, for the stored text and the query alike; a Milvus
    server then gives the same matches as Lite and as the FAISS store's FTS5 index."""
    return " ".join(_stem(re.findall(r"\w+", text.lower())))


def lexical_terms(text: str) -> str:
    """The query's stemmed words without stop words (Milvus's analyzer keeps them)."""
    return " ".join(dict.fromkeys(_stem(query_words(text))))


def redact(uri: str) -> str:
    """The URI without any user or password in it, for messages."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return uri


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "tcp://", "unix:"))


def _fit(text: str, limit: int) -> tuple[str, bool]:
    """`text` cut to at most `limit` UTF-8 bytes, and whether it was cut."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", errors="ignore"), True


def _quiet_milvus_logs() -> None:
    # pymilvus logs every failed call at ERROR before raising it; we turn the raise into one line.
    # Milvus Lite's in-process gRPC server logs calls it does not implement (the iterator's
    # timestamp probe, which pymilvus then does without).
    for name in ("pymilvus", "milvus_lite", "grpc._server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


class MilvusStore:
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
        self._manifest: dict[str, Any] | None = None
        self._tombs: tuple[int, list[str]] = (-1, [])
        self._lock_key: str | None = None
        self._client = self._connect(create)
        self._authors = True  # whether the collections have the author fields (older ones do not)
        if self._has(self._meta):
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
                            f"{self._where}: collection {name} is missing; run `rag index --rebuild`"
                        )
        elif not create:
            raise IndexMissing(f"{self._where}: no index here yet; run `rag index --store milvus` first")

    @property
    def _where(self) -> str:
        return f"milvus {redact(self.uri)} ({self._meta.removesuffix('_meta')})"

    def _connect(self, create: bool) -> Any:
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise RagError("the Milvus store needs the milvus extra: pip install -e '.[milvus]'") from None
        _quiet_milvus_logs()  # after the import: pymilvus sets its loggers up as it loads
        token = os.environ.get(TOKEN_ENV, "")
        if not is_server(self.uri):
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
        try:
            client = MilvusClient(uri=self.uri, token=token) if token else MilvusClient(uri=self.uri)
            if not is_server(self.uri):
                key = os.path.abspath(self.uri)
                _LITE_USERS[key] = _LITE_USERS.get(key, 0) + 1
            return client
        except Exception as e:  # pymilvus raises many kinds; every one is "cannot connect" here
            if not is_server(self.uri):
                raise RagError(
                    f"{self.uri}: cannot open Milvus Lite (another process may be using it: "
                    "a Lite file serves one process; run `milvus-lite server` for several)"
                ) from None
            raise RagError(f"{redact(self.uri)}: cannot connect to Milvus ({_reason(e)})") from None

    # ----------------------------------------------------------------------------- schema

    def _create_meta(self) -> None:
        from pymilvus import DataType

        c = self._client
        if not c.has_collection(self._meta):
            s = c.create_schema(auto_id=False, enable_dynamic_field=False)
            s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=160)
            s.add_field("kind", DataType.VARCHAR, max_length=16)
            s.add_field("gen", DataType.INT64)
            s.add_field("body", DataType.VARCHAR, max_length=_TEXT_MAX)
            s.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field
            ip = c.prepare_index_params()
            ip.add_index(field_name="unused", index_type="FLAT", metric_type="L2")
            c.create_collection(self._meta, schema=s, index_params=ip, consistency_level="Strong")
        self._load(self._meta)

    def _create_collections(self, dim: int) -> None:
        from pymilvus import DataType, Function, FunctionType

        self._create_meta()
        c = self._client
        if not c.has_collection(self._chunks):
            s = c.create_schema(auto_id=False, enable_dynamic_field=False)
            s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=96)
            s.add_field("chunk_id", DataType.VARCHAR, max_length=64)
            s.add_field("article_id", DataType.VARCHAR, max_length=64)
            s.add_field("article_key", DataType.VARCHAR, max_length=96)
            s.add_field("gen", DataType.INT64)
            s.add_field("url", DataType.VARCHAR, max_length=_TEXT_MAX)
            s.add_field("title", DataType.VARCHAR, max_length=_TEXT_MAX)
            s.add_field("publication", DataType.VARCHAR, max_length=4096)
            s.add_field("published", DataType.VARCHAR, max_length=64)
            s.add_field("published_day", DataType.INT64)
            s.add_field("heading", DataType.VARCHAR, max_length=_TEXT_MAX)
            s.add_field("text", DataType.VARCHAR, max_length=_TEXT_MAX)
            s.add_field("text_cut", DataType.BOOL)
            s.add_field("search_text", DataType.VARCHAR, max_length=_TEXT_MAX, enable_analyzer=True)
            s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            s.add_field("start", DataType.INT64)
            s.add_field("end", DataType.INT64)
            s.add_field("ord", DataType.INT64)
            s.add_field("member_only", DataType.BOOL)
            s.add_field("author", DataType.VARCHAR, max_length=_AUTHOR_MAX)
            s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            s.add_function(
                Function(
                    name="bm25",
                    function_type=FunctionType.BM25,
                    input_field_names=["search_text"],
                    output_field_names=["sparse"],
                )
            )
            ip = c.prepare_index_params()
            params = {"M": 32, "efConstruction": 80} if self.index_type == "HNSW" else {}
            ip.add_index(field_name="vector", index_type=self.index_type, metric_type="COSINE", params=params)
            ip.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
            c.create_collection(self._chunks, schema=s, index_params=ip, consistency_level="Strong")
        if not c.has_collection(self._articles):
            s = c.create_schema(auto_id=False, enable_dynamic_field=False)
            s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=128)
            s.add_field("article_id", DataType.VARCHAR, max_length=64)
            s.add_field("article_key", DataType.VARCHAR, max_length=96)
            s.add_field("gen", DataType.INT64)
            s.add_field("part", DataType.INT64)
            s.add_field("url", DataType.VARCHAR, max_length=_TEXT_MAX)
            s.add_field("url_lc", DataType.VARCHAR, max_length=_TEXT_MAX)
            s.add_field("title", DataType.VARCHAR, max_length=_TEXT_MAX)
            s.add_field("publication", DataType.VARCHAR, max_length=4096)
            s.add_field("publication_lc", DataType.VARCHAR, max_length=4096)
            s.add_field("published", DataType.VARCHAR, max_length=64)
            s.add_field("fetched", DataType.VARCHAR, max_length=64)
            s.add_field("member_only", DataType.BOOL)
            s.add_field("content_hash", DataType.VARCHAR, max_length=64)
            s.add_field("aliases", DataType.VARCHAR, max_length=_TEXT_MAX)
            s.add_field("chunks", DataType.INT64)
            s.add_field("source_file", DataType.VARCHAR, max_length=_TEXT_MAX)
            s.add_field("text", DataType.VARCHAR, max_length=_TEXT_MAX)
            s.add_field("author", DataType.VARCHAR, max_length=_AUTHOR_MAX)
            s.add_field("author_lc", DataType.VARCHAR, max_length=_AUTHOR_MAX)
            s.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
            ip = c.prepare_index_params()
            ip.add_index(field_name="unused", index_type="FLAT", metric_type="L2")
            c.create_collection(self._articles, schema=s, index_params=ip, consistency_level="Strong")
        for name in (self._chunks, self._articles):
            self._load(name)

    # ----------------------------------------------------------------------------- small helpers

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one client call; a failure is one line naming the store, never a traceback."""
        try:
            return fn(*args, **kwargs)
        except RagError:
            raise
        except Exception as e:
            raise RagError(f"{self._where}: {what} failed ({_reason(e)})") from None

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
        for i in range(0, len(rows), _BATCH):
            self._call("insert", self._client.insert, collection, rows[i : i + _BATCH])

    def _delete(self, collection: str, expr: str) -> None:
        self._call("delete", self._client.delete, collection, filter=expr)

    def _delete_keys(self, collection: str, field: str, values: list[str]) -> None:
        for i in range(0, len(values), _BATCH):
            self._delete(collection, in_list(field, values[i : i + _BATCH]))

    # ----------------------------------------------------------------------------- manifest

    def manifest(self) -> dict[str, Any] | None:
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
            self._manifest = None
            return None
        newest = max(rows, key=lambda r: int(r["gen"]))
        try:
            m = json.loads(newest["body"])
            if not isinstance(m, dict) or "generation" not in m:
                raise ValueError("not an index manifest")
        except ValueError as e:
            raise IndexCorrupt(
                f"{self._where}: unreadable manifest ({e}); run `rag index --rebuild`"
            ) from None
        if int(m.get("schema_version", 0)) > SCHEMA_VERSION:
            raise IndexCorrupt(
                f"{self._where}: written by a newer rag (schema {m.get('schema_version')}, this one "
                f"reads {SCHEMA_VERSION}); upgrade rag or run `rag index --rebuild`"
            )
        self._manifest = m
        return m

    def _visible(self) -> tuple[str, dict[str, Any]]:
        """The filter selecting rows of the current generation, and that generation's manifest."""
        m = self.manifest()
        if m is None:
            raise IndexMissing(f"{self._where}: the index is empty; run `rag index --store milvus`")
        gen, floor = int(m["generation"]), int(m.get("floor", 0))
        expr = f"gen >= {floor} and gen <= {gen}"
        tombs = self._tombstones(gen) if int(m.get("tombstones", 0)) else []
        if tombs:
            expr += " and " + in_list("article_key", tombs, negate=True)
        return expr, m

    def _tombstones(self, gen: int) -> list[str]:
        if self._tombs[0] != gen:
            rows = self._query(self._meta, f'kind == "tombstone" and gen == {gen}', ["body"])
            self._tombs = (gen, sorted(r["body"] for r in rows))
        return self._tombs[1]

    # ----------------------------------------------------------------------------- reads

    def articles(self) -> list[ArticleInfo]:
        vis, _ = self._visible()
        rows = self._query(self._articles, f"part == 0 and {vis}", self._fields(_ARTICLE_FIELDS))
        rows.sort(key=lambda r: (int(r["gen"]), r["url"]))
        return [
            ArticleInfo(
                article_id=r["article_id"],
                url=r["url"],
                title=r["title"],
                publication=r["publication"],
                published=r["published"] or None,
                fetched=r["fetched"] or None,
                member_only=bool(r["member_only"]),
                chunks=int(r["chunks"]),
                content_hash=r["content_hash"],
                aliases=tuple(json.loads(r["aliases"])),
                author=r.get("author") or None,
            )
            for r in rows
        ]

    def article_text(self, article_id: str) -> str | None:
        vis, _ = self._visible()
        rows = self._query(self._articles, f"article_id == {literal(article_id)} and {vis}", ["part", "text"])
        if not rows:
            return None
        return "".join(r["text"] for r in sorted(rows, key=lambda r: int(r["part"])))

    def chunk_count(self) -> int:
        vis, _ = self._visible()
        rows = self._call("count", self._client.query, self._chunks, filter=vis, output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def all_chunks(self) -> list[StoredChunk]:
        vis, _ = self._visible()
        rows = self._query(self._chunks, vis, self._fields(_CHUNK_FIELDS))
        rows.sort(key=lambda r: (r["url"], int(r["ord"])))
        return self._to_chunks(rows)

    def _to_chunks(self, rows: list[dict[str, Any]]) -> list[StoredChunk]:
        texts: dict[str, str] = {}
        out = []
        for r in rows:
            text = r["text"]
            if r["text_cut"]:  # a chunk over 64 KB: its text is a span of the article's
                aid = r["article_id"]
                if aid not in texts:
                    texts[aid] = self.article_text(aid) or ""
                text = texts[aid][int(r["start"]) : int(r["end"])]
            out.append(
                StoredChunk(
                    chunk_id=r["chunk_id"],
                    article_id=r["article_id"],
                    url=r["url"],
                    title=r["title"],
                    publication=r["publication"],
                    published=r["published"] or None,
                    heading=r["heading"],
                    text=text,
                    start=int(r["start"]),
                    end=int(r["end"]),
                    ord=int(r["ord"]),
                    member_only=bool(r["member_only"]),
                    author=r.get("author") or None,
                )
            )
        return out

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
        vis, _ = self._visible()
        expr = self._filter_expr(filters, vis)
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
            output_fields=self._fields(_CHUNK_FIELDS),
            search_params=params,
        )
        hits = list(res[0]) if res else []
        chunks = self._to_chunks([h["entity"] for h in hits])
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
        vis, _ = self._visible()
        got: dict[str, np.ndarray] = {}
        for i in range(0, len(chunk_ids), _BATCH):
            part = chunk_ids[i : i + _BATCH]
            for r in self._query(
                self._chunks, f"{in_list('chunk_id', part)} and {vis}", ["chunk_id", "vector"]
            ):
                got[r["chunk_id"]] = np.asarray(r["vector"], dtype=np.float32)
        return np.stack([got[c] for c in chunk_ids])

    # ----------------------------------------------------------------------------- writes

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """One writer at a time. A Lite file is locked to one process by Milvus Lite itself; on a
        server a lock row names the writer, and one left by a dead process is taken over."""
        if is_server(self.uri):
            self._take_lock()
        try:
            self._recover()
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
                        f"{self._where}: another `rag index` (pid {held.get('pid')} on "
                        f"{held.get('host')}) is writing this index; wait for it to finish and run again"
                    )
        else:
            self._call("creating collections", self._create_meta)
        self._lock_key = "lock"
        body = json.dumps({"host": host, "pid": pid, "since": time.time()})
        self._insert(
            self._meta, [{"key": "lock", "kind": "lock", "gen": -1, "body": body, "unused": [0.0, 0.0]}]
        )

    def _recover(self) -> None:
        """Delete what a killed build left: rows above the committed generation, and rows the
        committed generation removed but whose deletion did not finish."""
        if not self._has(self._meta):
            return
        m = self.manifest()
        gen = int(m["generation"]) if m else 0
        for name in (self._chunks, self._articles):
            if self._has(name):
                self._delete(name, f"gen > {gen}")
        self._delete(self._meta, f'kind != "lock" and gen > {gen}')
        if m is not None:
            self._cleanup(m)

    def _cleanup(self, m: dict[str, Any]) -> None:
        gen, floor = int(m["generation"]), int(m.get("floor", 0))
        tombs = self._tombstones(gen) if int(m.get("tombstones", 0)) else []
        for name in (self._chunks, self._articles):
            if floor:
                self._delete(name, f"gen < {floor}")
            self._delete_keys(name, "article_key", tombs)
        self._delete(self._meta, f'kind != "lock" and gen < {gen}')

    def commit(self, changes: Changes, manifest: dict[str, Any]) -> None:
        """Write a new generation and switch to it. Call inside `writing()`."""
        self._call("creating collections", self._create_collections, int(manifest["embedder"]["dimension"]))
        if not self._authors:
            raise RagError(
                f"{self._where}: these collections were made by an older rag, without author fields; "
                "index into a new collection (store.collection in the config) or drop these"
            )
        old = self.manifest()
        prev = int(old["generation"]) if old else 0
        gen = prev + 1

        # Which stored article versions this generation drops.
        vis = self._visible()[0] if old else None
        removed_keys: list[str] = []
        if vis is not None and changes.removed:
            ids = sorted(set(changes.removed))
            for i in range(0, len(ids), _BATCH):
                expr = f"part == 0 and {vis} and {in_list('article_id', ids[i : i + _BATCH])}"
                removed_keys += [r["article_key"] for r in self._query(self._articles, expr, ["article_key"])]
        visible_articles = int((old or {}).get("counts", {}).get("articles", 0))
        # Dropping everything (a rebuild) raises the floor instead of listing every article.
        floor = (
            gen
            if old and removed_keys and len(removed_keys) >= visible_articles
            else int((old or {}).get("floor", 0))
        )
        tombs = [] if floor == gen else removed_keys
        self._insert(
            self._meta,
            [
                {"key": f"tomb@{gen}@{k}", "kind": "tombstone", "gen": gen, "body": k, "unused": [0.0, 0.0]}
                for k in tombs
            ],
        )
        crash_point("milvus-tombstones-written")

        # Rows are sent in batches across articles: one insert per article was most of the time.
        rows: list[dict[str, Any]] = []
        crows: list[dict[str, Any]] = []
        for article, chunks, vecs in changes.added:
            akey = f"{article.id}@{gen}"
            parts = [article.text[i : i + _PART_CHARS] for i in range(0, len(article.text), _PART_CHARS)] or [
                ""
            ]
            for p, text in enumerate(parts):
                row: dict[str, Any] = {
                    "key": f"{akey}#{p}",
                    "article_id": article.id,
                    "article_key": akey,
                    "gen": gen,
                    "part": p,
                    "text": text,
                    "unused": [0.0, 0.0],
                    # Metadata rides on part 0; the other parts carry the same values for simplicity.
                    "url": _fit(article.url, _TEXT_MAX)[0],
                    "url_lc": _fit(article.url.lower(), _TEXT_MAX)[0],
                    "title": _fit(article.title, _TEXT_MAX)[0],
                    "publication": _fit(article.publication, 4096)[0],
                    "publication_lc": _fit(article.publication.lower(), 4096)[0],
                    "published": article.published or "",
                    "fetched": article.fetched or "",
                    "member_only": bool(article.member_only),
                    "content_hash": article.content_hash,
                    "aliases": _fit(json.dumps(list(article.aliases)), _TEXT_MAX)[0],
                    "chunks": len(chunks),
                    "source_file": _fit(article.source_file, _TEXT_MAX)[0],
                    "author": _fit(article.author or "", _AUTHOR_MAX)[0],
                    "author_lc": _fit((article.author or "").lower(), _AUTHOR_MAX)[0],
                }
                rows.append(row)
            for ch, v in zip(chunks, vecs, strict=True):
                text, cut = _fit(ch.text, _TEXT_MAX)
                crows.append(
                    {
                        "key": f"{ch.id}@{gen}",
                        "chunk_id": ch.id,
                        "article_id": article.id,
                        "article_key": akey,
                        "gen": gen,
                        "url": _fit(article.url, _TEXT_MAX)[0],
                        "title": _fit(article.title, _TEXT_MAX)[0],
                        "publication": _fit(article.publication, 4096)[0],
                        "published": article.published or "",
                        "published_day": day_number(article.published),
                        "heading": _fit(ch.heading, _TEXT_MAX)[0],
                        "text": text,
                        "text_cut": cut,
                        "search_text": _fit(
                            analyzed(f"{byline(article.title, article.author)}\n{ch.heading}\n{ch.text}"),
                            _TEXT_MAX,
                        )[0],
                        "start": ch.start,
                        "end": ch.end,
                        "ord": ch.ord,
                        "member_only": bool(article.member_only),
                        "author": _fit(article.author or "", _AUTHOR_MAX)[0],
                        "vector": np.asarray(v, dtype=np.float32),
                    }
                )
            if len(crows) >= _BATCH:
                self._insert(self._articles, rows)
                self._insert(self._chunks, crows)
                rows, crows = [], []
        self._insert(self._articles, rows)
        self._insert(self._chunks, crows)
        files = changes.files if changes.files is not None else (self.files() if old else {})
        self._insert(
            self._meta,
            [
                {"key": f"files@{gen}@{i}", "kind": "files", "gen": gen, "body": body, "unused": [0.0, 0.0]}
                for i, body in enumerate(_file_bodies(files))
            ],
        )
        # Seal what was written into segments: Milvus Lite searches rows still in its memtable
        # one by one in Python (minutes for SciFact's BM25), and a server persists them.
        for name in (self._chunks, self._articles, self._meta):
            self._call("flush", self._client.flush, name)
        self._wait_indexed()
        crash_point("milvus-rows-written")

        manifest = {
            **manifest,
            "schema_version": SCHEMA_VERSION,
            "generation": gen,
            "floor": floor,
            "tombstones": len(tombs),
            "store": "milvus",
        }
        body = json.dumps(manifest)
        if len(body.encode("utf-8")) > _TEXT_MAX:
            raise RagError(f"{self._where}: the manifest is over 64 KB; this is a bug in rag")
        # The switch: one row, inserted whole or not at all.
        self._insert(
            self._meta,
            [{"key": f"manifest@{gen}", "kind": "manifest", "gen": gen, "body": body, "unused": [0.0, 0.0]}],
        )
        crash_point("manifest-written")
        if is_server(self.uri):
            time.sleep(_SERVER_GRACE_SECONDS)
        self._cleanup(manifest)
        crash_point("cleaned-up")

    def files(self) -> dict[str, FileRecord]:
        m = self.manifest()
        if m is None:
            return {}
        out: dict[str, FileRecord] = {}
        for r in self._query(
            self._meta, f'kind == "files" and gen == {int(m["generation"])}', ["key", "body"]
        ):
            for v in json.loads(r["body"]):
                rec = record_from_json(v)
                prev = out.get(rec.path)  # a record too big for one row is split by its articles
                out[rec.path] = rec if prev is None else replace(prev, articles=prev.articles + rec.articles)
        return out

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


def _reason(e: Exception) -> str:
    msg = getattr(e, "message", None) or str(e) or type(e).__name__
    return redact(str(msg).strip().splitlines()[0])[:300]


def _file_bodies(files: dict[str, FileRecord]) -> list[str]:
    """File records as JSON lists of at most 64 KB each (a VARCHAR); a record with more articles
    than fit is split into parts that `files()` joins again."""
    budget = _TEXT_MAX - 1024
    items: list[list[Any]] = []
    for r in files.values():
        v = record_to_json(r)
        if len(json.dumps(v)) <= budget:
            items.append(v)
            continue
        part: list[Any] = []
        for a in v[4]:
            if part and len(json.dumps([*v[:4], [*part, a]])) > budget:
                items.append([*v[:4], part])
                part = []
            part.append(a)
        items.append([*v[:4], part])
    bodies: list[str] = []
    cur: list[list[Any]] = []
    size = 2
    for v in items:
        n = len(json.dumps(v)) + 2
        if cur and size + n > budget:
            bodies.append(json.dumps(cur))
            cur, size = [], 2
        cur.append(v)
        size += n
    if cur:
        bodies.append(json.dumps(cur))
    return bodies
