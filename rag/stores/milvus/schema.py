"""Milvus collections of an index and the rows that go into them.

Three collections share a name prefix (`rag` by default):

    <prefix>_chunks     one row per chunk and generation: vector, BM25 text, citation metadata
    <prefix>_articles   one row per article, generation and text part (a VARCHAR holds 64 KB)
    <prefix>_meta       manifests (one row per generation), tombstones, the writer's lock
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from rag.records import Article, Chunk, FileRecord
from rag.stores.milvus.expr import day_number
from rag.text import analyzed, byline

TEXT_MAX = 65535  # bytes in a Milvus VARCHAR
PART_CHARS = 16000  # article text per row: at most 4 bytes a character in UTF-8
AUTHOR_MAX = 1024
NO_VECTOR = [0.0, 0.0]  # Milvus wants a vector field in every collection; meta and article rows fill it

CHUNK_FIELDS = (
    "chunk_id article_id url title publication published heading text text_cut start end ord "
    "member_only author"
).split()
ARTICLE_FIELDS = (
    "article_id article_key gen url title publication published fetched member_only content_hash aliases "
    "chunks author"
).split()


def fit(text: str, limit: int = TEXT_MAX) -> tuple[str, bool]:
    """`text` cut to at most `limit` UTF-8 bytes, and whether it was cut."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", errors="ignore"), True


def cut(text: str, limit: int = TEXT_MAX) -> str:
    return fit(text, limit)[0]


# ------------------------------------------------------------------------------- collections


def create_meta(client: Any, name: str) -> None:
    from pymilvus import DataType

    if client.has_collection(name):
        return
    s = _keyed_schema(client, 160)
    s.add_field("kind", DataType.VARCHAR, max_length=16)
    s.add_field("gen", DataType.INT64)
    s.add_field("body", DataType.VARCHAR, max_length=TEXT_MAX)
    _create_unsearched(client, name, s)


def create_chunks(client: Any, name: str, dim: int, index_type: str) -> None:
    from pymilvus import DataType, Function, FunctionType

    if client.has_collection(name):
        return
    s = _keyed_schema(client, 96)
    for field, size in (("chunk_id", 64), ("article_id", 64), ("article_key", 96)):
        s.add_field(field, DataType.VARCHAR, max_length=size)
    s.add_field("gen", DataType.INT64)
    s.add_field("url", DataType.VARCHAR, max_length=TEXT_MAX)
    s.add_field("title", DataType.VARCHAR, max_length=TEXT_MAX)
    s.add_field("publication", DataType.VARCHAR, max_length=4096)
    s.add_field("published", DataType.VARCHAR, max_length=64)
    s.add_field("published_day", DataType.INT64)
    s.add_field("heading", DataType.VARCHAR, max_length=TEXT_MAX)
    s.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX)
    s.add_field("text_cut", DataType.BOOL)
    s.add_field("search_text", DataType.VARCHAR, max_length=TEXT_MAX, enable_analyzer=True)
    s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    for field in ("start", "end", "ord"):
        s.add_field(field, DataType.INT64)
    s.add_field("member_only", DataType.BOOL)
    s.add_field("author", DataType.VARCHAR, max_length=AUTHOR_MAX)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    s.add_function(
        Function(
            name="bm25",
            function_type=FunctionType.BM25,
            input_field_names=["search_text"],
            output_field_names=["sparse"],
        )
    )
    ip = client.prepare_index_params()
    params = {"M": 32, "efConstruction": 80} if index_type == "HNSW" else {}
    ip.add_index(field_name="vector", index_type=index_type, metric_type="COSINE", params=params)
    ip.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection(name, schema=s, index_params=ip, consistency_level="Strong")


def create_articles(client: Any, name: str) -> None:
    from pymilvus import DataType

    if client.has_collection(name):
        return
    s = _keyed_schema(client, 128)
    s.add_field("article_id", DataType.VARCHAR, max_length=64)
    s.add_field("article_key", DataType.VARCHAR, max_length=96)
    s.add_field("gen", DataType.INT64)
    s.add_field("part", DataType.INT64)
    for field, size in (
        ("url", TEXT_MAX),
        ("url_lc", TEXT_MAX),
        ("title", TEXT_MAX),
        ("publication", 4096),
        ("publication_lc", 4096),
        ("published", 64),
        ("fetched", 64),
    ):
        s.add_field(field, DataType.VARCHAR, max_length=size)
    s.add_field("member_only", DataType.BOOL)
    s.add_field("content_hash", DataType.VARCHAR, max_length=64)
    s.add_field("aliases", DataType.VARCHAR, max_length=TEXT_MAX)
    s.add_field("chunks", DataType.INT64)
    s.add_field("source_file", DataType.VARCHAR, max_length=TEXT_MAX)
    s.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX)
    s.add_field("author", DataType.VARCHAR, max_length=AUTHOR_MAX)
    s.add_field("author_lc", DataType.VARCHAR, max_length=AUTHOR_MAX)
    _create_unsearched(client, name, s)


def _keyed_schema(client: Any, key_length: int) -> Any:
    """A fixed schema whose primary key is a string of at most `key_length` bytes."""
    from pymilvus import DataType

    s = client.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=key_length)
    return s


def _create_unsearched(client: Any, name: str, s: Any) -> None:
    """Create a collection read only by filters: Milvus wants a vector field with an index in
    every collection, so it gets a two-dimensional one that rows fill with NO_VECTOR."""
    from pymilvus import DataType

    s.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
    ip = client.prepare_index_params()
    ip.add_index(field_name="unused", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=s, index_params=ip, consistency_level="Strong")


# -------------------------------------------------------------------------------------- rows


def meta_row(key: str, kind: str, gen: int, body: str) -> dict[str, Any]:
    return {"key": key, "kind": kind, "gen": gen, "body": body, "unused": NO_VECTOR}


def article_rows(article: Article, n_chunks: int, gen: int) -> list[dict[str, Any]]:
    """An article as rows of at most PART_CHARS characters of text each."""
    akey = f"{article.id}@{gen}"
    text = article.text
    parts = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]
    # Metadata rides on part 0; the other parts carry the same values for simplicity.
    meta = {
        "article_id": article.id,
        "article_key": akey,
        "gen": gen,
        "unused": NO_VECTOR,
        "url": cut(article.url),
        "url_lc": cut(article.url.lower()),
        "title": cut(article.title),
        "publication": cut(article.publication, 4096),
        "publication_lc": cut(article.publication.lower(), 4096),
        "published": article.published or "",
        "fetched": article.fetched or "",
        "member_only": bool(article.member_only),
        "content_hash": article.content_hash,
        "aliases": cut(json.dumps(list(article.aliases))),
        "chunks": n_chunks,
        "source_file": cut(article.source_file),
        "author": cut(article.author or "", AUTHOR_MAX),
        "author_lc": cut((article.author or "").lower(), AUTHOR_MAX),
    }
    return [{"key": f"{akey}#{p}", "part": p, "text": part, **meta} for p, part in enumerate(parts)]


def chunk_row(article: Article, ch: Chunk, vector: np.ndarray, gen: int) -> dict[str, Any]:
    text, was_cut = fit(ch.text)
    search_text = analyzed(f"{byline(article.title, article.author)}\n{ch.heading}\n{ch.text}")
    return {
        "key": f"{ch.id}@{gen}",
        "chunk_id": ch.id,
        "article_id": article.id,
        "article_key": f"{article.id}@{gen}",
        "gen": gen,
        "url": cut(article.url),
        "title": cut(article.title),
        "publication": cut(article.publication, 4096),
        "published": article.published or "",
        "published_day": day_number(article.published),
        "heading": cut(ch.heading),
        "text": text,
        "text_cut": was_cut,
        "search_text": cut(search_text),
        "start": ch.start,
        "end": ch.end,
        "ord": ch.ord,
        "member_only": bool(article.member_only),
        "author": cut(article.author or "", AUTHOR_MAX),
        "vector": np.asarray(vector, dtype=np.float32),
    }


def file_bodies(files: dict[str, FileRecord]) -> list[str]:
    """File records as JSON lists of at most 64 KB each (a VARCHAR); a record with more articles
    than fit is split into parts that the store joins again when it reads them."""
    budget = TEXT_MAX - 1024
    items: list[list[Any]] = []
    for r in files.values():
        v = r.to_json()
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
