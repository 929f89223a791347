"""Reading an index from its Milvus collections: narrowing the visible rows by search filters,
and turning result rows into StoredChunks.

Filter expressions are built only through `expr.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rag.records import Filters, StoredChunk
from rag.stores.base import chunk_from_row
from rag.stores.milvus.client import Collections
from rag.stores.milvus.expr import day_number, in_list, like_pattern


def to_chunks(rows: list[dict[str, Any]], article_text: Callable[[str], str | None]) -> list[StoredChunk]:
    """StoredChunks from chunk rows; a chunk whose text was cut gets it from its article's."""
    texts: dict[str, str] = {}
    for r in rows:
        if r["text_cut"]:  # a chunk over 64 KB: its text is a span of the article's
            aid = r["article_id"]
            if aid not in texts:
                texts[aid] = article_text(aid) or ""
            r["text"] = texts[aid][int(r["start"]) : int(r["end"])]
    return [chunk_from_row(r) for r in rows]


def filter_expr(db: Collections, filters: Filters | None, vis: str) -> str | None:
    """`vis` narrowed by the filters; None when no article can match."""
    if not filters:
        return vis
    expr = vis
    if filters.since:
        expr += f" and published_day >= {day_number(filters.since)}"
    if filters.until:
        expr += f" and published_day >= 0 and published_day <= {day_number(filters.until)}"
    if filters.url or filters.publication or filters.author:
        keys = articles_matching(db, filters, vis)
        if not keys:
            return None
        expr += " and " + in_list("article_key", keys)
    return expr


def articles_matching(db: Collections, filters: Filters, vis: str) -> list[str]:
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
        if not db.authors:
            return []  # an index from before authors were kept names none
        expr += f" and author_lc like {like_pattern(author)}"
        fields.append("author_lc")
    rows = db.query(db.articles, expr, fields)
    # LIKE may over-match (a backslash became a wildcard): keep exact substring matches only.
    return [
        r["article_key"]
        for r in rows
        if url in r["url_lc"] and pub in r["publication_lc"] and author in r.get("author_lc", "")
    ]
