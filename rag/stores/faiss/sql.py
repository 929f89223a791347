"""The SQLite half of the FAISS store: schema, visibility by generation, and the queries.

Every row is stamped with the generation that added it (`gen_added`) and, once removed, the one
that removed it (`gen_removed`); a reader of generation N sees the rows with
`gen_added <= N < gen_removed`. Functions here take the open connection; values are always
bound, never spliced into SQL.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexCorrupt, RagError
from rag.stores.base import (
    ArticleInfo,
    Changes,
    FileRecord,
    Filters,
    StoredChunk,
    article_from_row,
    batched,
    chunk_from_row,
)
from rag.text import byline, query_words

DB = "chunks.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    row INTEGER PRIMARY KEY,
    article_id TEXT NOT NULL,
    gen_added INTEGER NOT NULL,
    gen_removed INTEGER,
    url TEXT NOT NULL,
    title TEXT NOT NULL,
    publication TEXT NOT NULL,
    published TEXT,
    fetched TEXT,
    member_only INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    aliases TEXT NOT NULL,
    text TEXT NOT NULL,
    source_file TEXT NOT NULL,
    author TEXT
);
CREATE INDEX IF NOT EXISTS articles_id ON articles(article_id);
CREATE TABLE IF NOT EXISTS chunks (
    row INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL,
    article_row INTEGER NOT NULL REFERENCES articles(row),
    gen_added INTEGER NOT NULL,
    gen_removed INTEGER,
    heading TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    ord INTEGER NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_chunk_id ON chunks(chunk_id);
CREATE INDEX IF NOT EXISTS chunks_gen_removed ON chunks(gen_removed);
CREATE INDEX IF NOT EXISTS articles_gen_removed ON articles(gen_removed);
CREATE INDEX IF NOT EXISTS articles_gen_added ON articles(gen_added);
-- These two cover the visibility filter, so counting live chunks (in all, or per article)
-- reads a small index instead of the chunk rows with their text and vector. They replace
-- the one-column indexes of earlier versions.
CREATE INDEX IF NOT EXISTS chunks_gens ON chunks(gen_added, gen_removed);
CREATE INDEX IF NOT EXISTS chunks_article_gens ON chunks(article_row, gen_added, gen_removed);
DROP INDEX IF EXISTS chunks_gen_added;
DROP INDEX IF EXISTS chunks_article;
-- Scrape bundle files as the build that added the row read them (rag.stores.base.FileRecord).
CREATE TABLE IF NOT EXISTS files (
    row INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    gen_added INTEGER NOT NULL,
    gen_removed INTEGER,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    articles TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS files_gens ON files(gen_added, gen_removed);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, heading, text, tokenize = 'porter unicode61 remove_diacritics 2'
);
"""

# BM25 column weights: title, heading, body. Matches in the title count for more, as they do
# in most search engines; measured on the development set (see eval/README.md).
BM25_WEIGHTS = (2.0, 1.5, 1.0)

_CHUNK_NAMES = (
    "chunk_id article_id url title publication published heading text start end ord member_only author"
).split()
_CHUNK_COLUMNS = (
    "c.row, c.chunk_id, a.article_id, a.url, a.title, a.publication, a.published, c.heading, "
    'c.text, c.start, c."end", c.ord, a.member_only, a.author'
)
_ARTICLE_NAMES = (
    "article_id url title publication published fetched member_only content_hash aliases author chunks"
).split()

Db = sqlite3.Connection
Params = dict[str, Any]


def visible(alias: str) -> str:
    """The condition that a row of table `alias` is visible at generation `:gen`."""
    return f"{alias}.gen_added <= :gen AND ({alias}.gen_removed IS NULL OR {alias}.gen_removed > :gen)"


def _lower(value: str | None) -> str:
    return value.lower() if value else ""


def connect(path: Path) -> Db:
    """Open the index database; an unreadable one is IndexCorrupt, one without the author
    column (written before authors were kept) gets it, NULL everywhere, so it stays readable."""
    try:
        db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 30000")
        db.create_function("casefold_py", 1, _lower, deterministic=True)
        if "author" not in {r[1] for r in db.execute("PRAGMA table_info(articles)")}:
            try:
                with db:
                    db.execute("ALTER TABLE articles ADD COLUMN author TEXT")
            except sqlite3.OperationalError:
                raise RagError(
                    f"{path.parent}: index written by an older rag and cannot be upgraded here "
                    "(read-only?); run `rag index --rebuild`"
                ) from None
        return db
    except sqlite3.Error as e:
        raise IndexCorrupt(f"{path}: cannot open ({e}); run `rag index --rebuild`") from None


def create(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA)


def filter_sql(filters: Filters | None) -> tuple[str, Params]:
    """SQL conditions on the articles table `a`; values are bound, never spliced in."""
    if not filters:
        return "", {}
    where, params = [], {}
    if filters.url:
        where.append("instr(lower(a.url), :f_url) > 0")
        params["f_url"] = filters.url.lower()
    if filters.publication:
        where.append("instr(lower(a.publication), :f_pub) > 0")
        params["f_pub"] = filters.publication.lower()
    if filters.author:
        # Python's lower-casing (registered as casefold_py): SQLite's lower() knows only ASCII.
        where.append("instr(casefold_py(a.author), :f_author) > 0")
        params["f_author"] = filters.author.lower()
    if filters.since:
        where.append("a.published IS NOT NULL AND substr(a.published, 1, 10) >= :f_since")
        params["f_since"] = filters.since[:10]
    if filters.until:
        where.append("a.published IS NOT NULL AND substr(a.published, 1, 10) <= :f_until")
        params["f_until"] = filters.until[:10]
    return " AND " + " AND ".join(where), params


def fts_query(text: str) -> str:
    """An FTS5 query that ORs the query's terms, each quoted so that no user text is syntax."""
    return " OR ".join(f'"{t}"' for t in query_words(text))


def _chunk(r: tuple[Any, ...]) -> StoredChunk:
    """A row selected with _CHUNK_COLUMNS (its first column is the row id)."""
    return chunk_from_row(dict(zip(_CHUNK_NAMES, r[1:], strict=False)))


# ------------------------------------------------------------------------------------- reads


def live_count(db: Db, gen: int) -> int:
    return int(db.execute(f"SELECT count(*) FROM chunks c WHERE {visible('c')}", {"gen": gen}).fetchone()[0])


def articles(db: Db, gen: int) -> list[ArticleInfo]:
    rows = db.execute(
        f"""SELECT a.article_id, a.url, a.title, a.publication, a.published, a.fetched,
            a.member_only, a.content_hash, a.aliases, a.author,
            (SELECT count(*) FROM chunks c WHERE c.article_row = a.row AND {visible("c")})
            FROM articles a WHERE {visible("a")} ORDER BY a.row""",
        {"gen": gen},
    ).fetchall()
    return [article_from_row(dict(zip(_ARTICLE_NAMES, r, strict=True))) for r in rows]


def article_text(db: Db, gen: int, article_id: str) -> str | None:
    r = db.execute(
        f"SELECT a.text FROM articles a WHERE a.article_id = :id AND {visible('a')}",
        {"gen": gen, "id": article_id},
    ).fetchone()
    return r[0] if r else None


def files_at(db: Db, gen: int) -> dict[str, FileRecord]:
    rows = db.execute(
        f"SELECT path, size, mtime_ns, sha256, articles FROM files f WHERE {visible('f')}", {"gen": gen}
    ).fetchall()
    return {r[0]: FileRecord.from_json([r[0], r[1], r[2], r[3], json.loads(r[4])]) for r in rows}


def all_chunks(db: Db, gen: int) -> list[StoredChunk]:
    rows = db.execute(
        f"""SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN articles a ON a.row = c.article_row
        WHERE {visible("c")} ORDER BY a.row, c.ord""",
        {"gen": gen},
    ).fetchall()
    return [_chunk(r) for r in rows]


def chunks_by_row(db: Db, rows: list[int], gen: int) -> dict[int, tuple[StoredChunk, int]]:
    """The rows visible at `gen`, each with the generation that added it."""
    out: dict[int, tuple[StoredChunk, int]] = {}
    for part in batched(rows):
        marks = ",".join("?" * len(part))
        q = (
            f"SELECT {_CHUNK_COLUMNS}, c.gen_added FROM chunks c "
            f"JOIN articles a ON a.row = c.article_row WHERE c.row IN ({marks}) AND c.gen_added <= ? "
            "AND (c.gen_removed IS NULL OR c.gen_removed > ?)"
        )
        for r in db.execute(q, [*part, gen, gen]):
            out[r[0]] = (_chunk(r), r[-1])
    return out


def vectors(db: Db, gen: int, chunk_ids: list[str]) -> dict[str, np.ndarray]:
    got: dict[str, np.ndarray] = {}
    for part in batched(chunk_ids):
        marks = ",".join("?" * len(part))
        for cid, blob in db.execute(
            f"""SELECT chunk_id, vector FROM chunks c WHERE chunk_id IN ({marks})
            AND c.gen_added <= ? AND (c.gen_removed IS NULL OR c.gen_removed > ?)""",
            [*part, gen, gen],
        ):
            got[cid] = np.frombuffer(blob, dtype=np.float32)
    return got


def row_vectors(db: Db, gen: int, cond: str = "", params: Params | None = None) -> list[tuple[int, bytes]]:
    """(row, vector) of the chunks visible at `gen` whose article matches `cond`, by row."""
    return db.execute(
        f"""SELECT c.row, c.vector FROM chunks c JOIN articles a ON a.row = c.article_row
        WHERE {visible("c")}{cond} ORDER BY c.row""",
        {"gen": gen, **(params or {})},
    ).fetchall()


def vectors_since(db: Db, first: int, gen: int) -> list[tuple[int, bytes]]:
    """(row, vector) of the chunks added by generations `first`..`gen` and live at `gen`."""
    return db.execute(
        f"SELECT row, vector FROM chunks c WHERE c.gen_added >= :first AND {visible('c')} ORDER BY row",
        {"gen": gen, "first": first},
    ).fetchall()


def lexical(db: Db, match: str, gen: int, k: int, filters: Filters | None) -> list[tuple[StoredChunk, float]]:
    """The k best BM25 matches of an FTS5 `match` expression visible at `gen`."""
    w = ", ".join(str(x) for x in BM25_WEIGHTS)
    if filters:
        cond, params = filter_sql(filters)
        rows = db.execute(
            f"""SELECT c.row, -bm25(chunks_fts, {w}) AS score
            FROM chunks_fts JOIN chunks c ON c.row = chunks_fts.rowid
            JOIN articles a ON a.row = c.article_row
            WHERE chunks_fts MATCH :match AND {visible("c")}{cond}
            ORDER BY bm25(chunks_fts, {w}), c.row LIMIT :k""",
            {"gen": gen, "match": match, "k": k, **params},
        ).fetchall()
        found = chunks_by_row(db, [r[0] for r in rows], gen)
        return [(found[r[0]][0], float(r[1])) for r in rows if r[0] in found]
    # Rank in FTS5 alone, then keep the visible rows: joining every match to `chunks` to test
    # visibility before ranking cost a random row read per match (5x slower at 100k chunks,
    # bench/SCALE.md). Invisible rows (a build in progress, removals not yet cleaned up) are
    # rare, so k are asked for first and more only if some were.
    n = k
    while True:
        rows = db.execute(
            f"""SELECT rowid, -bm25(chunks_fts, {w}) FROM chunks_fts
            WHERE chunks_fts MATCH :match ORDER BY bm25(chunks_fts, {w}), rowid LIMIT :n""",
            {"match": match, "n": n},
        ).fetchall()
        found = chunks_by_row(db, [r[0] for r in rows], gen)
        live = [r for r in rows if r[0] in found]
        if len(live) >= k or len(rows) < n:
            return [(found[r][0], float(s)) for r, s in live[:k]]
        n *= 4


# ------------------------------------------------------------------------------------ writes


def mark_removed(db: Db, article_ids: list[str], gen: int) -> list[tuple[int, int]]:
    """Stamp the live rows of these articles as removed by `gen`; returns the chunk rows
    removed, each with the generation that added it."""
    removed: list[tuple[int, int]] = []
    for aid in article_ids:
        arts = [
            r[0]
            for r in db.execute(
                "SELECT row FROM articles WHERE article_id = ? AND gen_removed IS NULL", (aid,)
            )
        ]
        for arow in arts:
            rows = db.execute(
                "SELECT row, gen_added FROM chunks WHERE article_row = ? AND gen_removed IS NULL", (arow,)
            ).fetchall()
            db.executemany("UPDATE chunks SET gen_removed = ? WHERE row = ?", [(gen, r) for r, _ in rows])
            db.execute("UPDATE articles SET gen_removed = ? WHERE row = ?", (gen, arow))
            removed += rows
    return removed


def insert_added(db: Db, changes: Changes, gen: int) -> tuple[list[int], list[np.ndarray]]:
    """Insert the added articles and chunks under `gen`; returns the chunk rows and vectors."""
    rows: list[int] = []
    vecs: list[np.ndarray] = []
    for article, chunks, article_vecs in changes.added:
        cur = db.execute(
            """INSERT INTO articles (article_id, gen_added, url, title, publication,
            published, fetched, member_only, content_hash, aliases, text, source_file, author)
            VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)""",
            (
                article.id,
                gen,
                article.url,
                article.title,
                article.publication,
                article.published,
                article.fetched,
                int(article.member_only),
                article.content_hash,
                json.dumps(list(article.aliases)),
                article.text,
                article.source_file,
                article.author,
            ),
        )
        arow = cur.lastrowid
        title = byline(article.title, article.author)
        for ch, v in zip(chunks, article_vecs, strict=True):
            v32 = np.ascontiguousarray(v, dtype=np.float32)
            cur = db.execute(
                """INSERT INTO chunks (chunk_id, article_row, gen_added, heading, start,
                "end", ord, text, vector) VALUES (?,?,?,?,?,?,?,?,?)""",
                (ch.id, arow, gen, ch.heading, ch.start, ch.end, ch.ord, ch.text, v32.tobytes()),
            )
            row = int(cur.lastrowid or 0)
            db.execute(
                "INSERT INTO chunks_fts (rowid, title, heading, text) VALUES (?,?,?,?)",
                (row, title, ch.heading, ch.text),
            )
            rows.append(row)
            vecs.append(v32)
    return rows, vecs


def write_files(db: Db, files: dict[str, FileRecord], gen: int) -> None:
    """Only records that differ from the previous generation's are written."""
    old = files_at(db, gen - 1) if gen > 1 else {}
    stale = [p for p, r in old.items() if files.get(p) != r]
    for part in batched(stale):
        db.execute(
            "UPDATE files SET gen_removed = ? WHERE gen_removed IS NULL "
            f"AND path IN ({','.join('?' * len(part))})",
            [gen, *part],
        )
    db.executemany(
        "INSERT INTO files (path, gen_added, size, mtime_ns, sha256, articles) VALUES (?,?,?,?,?,?)",
        [
            (r.path, gen, r.size, r.mtime_ns, r.sha256, json.dumps(r.to_json()[4]))
            for p, r in files.items()
            if old.get(p) != r
        ],
    )


def _delete_chunk_rows(db: Db, rows: list[int]) -> None:
    for part in batched(rows):
        marks = ",".join("?" * len(part))
        db.execute(f"DELETE FROM chunks_fts WHERE rowid IN ({marks})", part)
        db.execute(f"DELETE FROM chunks WHERE row IN ({marks})", part)


def drop_above(db: Db, gen: int) -> None:
    """Undo what a killed build wrote above generation `gen` (in one transaction).

    Every statement is a range on an indexed generation column: its cost follows what the
    killed build wrote, not the size of the index.
    """
    with db:
        _delete_chunk_rows(
            db, [r[0] for r in db.execute("SELECT row FROM chunks WHERE gen_added > ?", (gen,))]
        )
        for table in ("articles", "files"):
            db.execute(f"DELETE FROM {table} WHERE gen_added > ?", (gen,))
        for table in ("chunks", "articles", "files"):
            db.execute(f"UPDATE {table} SET gen_removed = NULL WHERE gen_removed > ?", (gen,))


def delete_removed(db: Db, gen: int) -> None:
    """Delete for real the rows removed by generation `gen` or earlier (in one transaction)."""
    with db:
        dead = db.execute("SELECT row FROM chunks WHERE gen_removed IS NOT NULL AND gen_removed <= ?", (gen,))
        _delete_chunk_rows(db, [r[0] for r in dead])
        for table in ("articles", "files"):
            db.execute(f"DELETE FROM {table} WHERE gen_removed IS NOT NULL AND gen_removed <= ?", (gen,))
