"""The default store: a FAISS file for vectors, SQLite for chunks, metadata and BM25 (FTS5).

Layout of an index folder:

    manifest.json         the commit point: names the generation and its FAISS file
    chunks.sqlite         articles and chunks of every live generation, vectors, FTS5 index
    vectors-<gen>.faiss   the vectors live in generation <gen>, keyed by chunk row id
    write.lock            held by the one `rag index` that may write
    read.lock             held shared by readers during a query, exclusively by the clean-up

How a build stays atomic: rows are stamped with the generation that added them (and the one that
removed them). A build inserts its rows under generation N+1, writes `vectors-<N+1>.faiss`, and
then replaces `manifest.json`: until that rename, readers filter on generation N and see exactly
the old index; after it, exactly the new one. A build killed half-way leaves rows from N+1 that
no reader can see, and the next build removes them before it starts. Rows removed by a build are
deleted for real right after the switch, once no reader is still on the old generation.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexCorrupt, IndexMissing, RagError
from rag.store import SCHEMA_VERSION, ArticleInfo, Changes, Filters, StoredChunk, crash_point

MANIFEST = "manifest.json"
DB = "chunks.sqlite"

_SCHEMA = """
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
    source_file TEXT NOT NULL
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
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_row);
CREATE INDEX IF NOT EXISTS chunks_gen_added ON chunks(gen_added);
CREATE INDEX IF NOT EXISTS chunks_gen_removed ON chunks(gen_removed);
CREATE INDEX IF NOT EXISTS articles_gen_removed ON articles(gen_removed);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, heading, text, tokenize = 'porter unicode61 remove_diacritics 2'
);
"""

# BM25 column weights: title, heading, body. Matches in the title count for more, as they do
# in most search engines; measured on the development set (see eval/README.md).
_BM25_WEIGHTS = (2.0, 1.5, 1.0)

_CHUNK_COLUMNS = (
    "c.row, c.chunk_id, a.article_id, a.url, a.title, a.publication, a.published, c.heading, "
    'c.text, c.start, c."end", c.ord, a.member_only'
)

_STOPWORDS = frozenset(
    """a an and are as at be but by can could did do does for from had has have how i if in into
    is it its me my of on or our shall should so than that the their them then there these they
    this those to was we were what when where which while who whom why will with would you your
    about after all also any been before being both each few more most no nor not only other out
    over own same some such too under until up very just don does doing""".split()
)


def _row_to_chunk(r: tuple[Any, ...]) -> StoredChunk:
    return StoredChunk(
        chunk_id=r[1],
        article_id=r[2],
        url=r[3],
        title=r[4],
        publication=r[5],
        published=r[6],
        heading=r[7],
        text=r[8],
        start=r[9],
        end=r[10],
        ord=r[11],
        member_only=bool(r[12]),
    )


def _visible(alias: str) -> str:
    return f"{alias}.gen_added <= :gen AND ({alias}.gen_removed IS NULL OR {alias}.gen_removed > :gen)"


def _filter_sql(filters: Filters | None) -> tuple[str, dict[str, Any]]:
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
    if filters.since:
        where.append("a.published IS NOT NULL AND substr(a.published, 1, 10) >= :f_since")
        params["f_since"] = filters.since[:10]
    if filters.until:
        where.append("a.published IS NOT NULL AND substr(a.published, 1, 10) <= :f_until")
        params["f_until"] = filters.until[:10]
    return " AND " + " AND ".join(where), params


def fts_query(text: str) -> str:
    """An FTS5 query that ORs the query's terms, each quoted so that no user text is syntax."""
    terms = [t for t in re.findall(r"\w+", text.lower()) if t not in _STOPWORDS]
    if not terms:
        terms = re.findall(r"\w+", text.lower())
    seen = dict.fromkeys(terms)
    return " OR ".join(f'"{t}"' for t in seen)


def _single_thread() -> None:
    import faiss

    faiss.omp_set_num_threads(1)


def _tuned(index: Any) -> Any:
    """Search-time settings of approximate indexes (they are not stored in the FAISS file)."""
    import faiss

    inner: Any = faiss.downcast_index(index.index) if hasattr(index, "index") else None
    if hasattr(inner, "hnsw"):
        inner.hnsw.efSearch = 128
    if hasattr(inner, "nprobe"):
        inner.nprobe = 32
    return index


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old or the new content, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    crash_point(f"{path.name}-tmp-written")
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class FaissStore:
    """FAISS + SQLite index folder. Reads take a consistent generation; writes are atomic."""

    def __init__(self, path: Path, create: bool = False) -> None:
        self.path = Path(path)
        self._index: Any = None
        self._index_gen: int | None = None
        self._manifest: dict[str, Any] | None = None
        self._manifest_stamp: tuple[int, int] | None = None
        if not (self.path / DB).exists():
            if not create:
                if self.path.exists() and any(self.path.iterdir()):
                    raise IndexCorrupt(
                        f"{self.path}: index is incomplete ({DB} is missing); run `rag index --rebuild`"
                    )
                raise IndexMissing(f"{self.path}: no index here yet; run `rag index` first")
            try:
                self.path.mkdir(parents=True, exist_ok=True)
                for name in ("write.lock", "read.lock"):
                    (self.path / name).touch(exist_ok=True)
                with sqlite3.connect(self.path / DB) as db:
                    db.executescript(_SCHEMA)
            except OSError as e:
                raise RagError(f"{self.path}: cannot create the index: {e.strerror}") from None
        self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path / DB, timeout=30, check_same_thread=False)
            db.execute("PRAGMA busy_timeout = 30000")
            return db
        except sqlite3.Error as e:
            raise IndexCorrupt(f"{self.path / DB}: cannot open ({e}); run `rag index --rebuild`") from None

    # ----------------------------------------------------------------------------- locking

    @contextlib.contextmanager
    def _flock(self, name: str, mode: int, wait: float | None = None) -> Iterator[bool]:
        """Hold a lock file; yields False when `wait` ran out without getting it."""
        lock_path = self.path / name
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            fd = os.open(lock_path, os.O_RDONLY)  # a read-only index folder: shared locks only
        try:
            deadline = None if wait is None else time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.02)
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """The single-writer lock: a second `rag index` is told so at once."""
        with self._flock("write.lock", fcntl.LOCK_EX, wait=0) as got:
            if not got:
                raise RagError(
                    f"{self.path}: another `rag index` is writing this index; "
                    "wait for it to finish and run again"
                )
            with self._db:
                self._db.executescript(_SCHEMA)  # indexes added since this store was created
            self._recover()
            yield

    @contextlib.contextmanager
    def _reading(self) -> Iterator[int]:
        """A consistent generation for the duration of one query."""
        with self._flock("read.lock", fcntl.LOCK_SH):
            m = self.manifest()
            if m is None:
                raise IndexMissing(f"{self.path}: the index is empty; run `rag index`")
            gen = int(m["generation"])
            if self._index_gen != gen:
                self._load_faiss(m)
            yield gen

    # ----------------------------------------------------------------------------- manifest

    def manifest(self) -> dict[str, Any] | None:
        p = self.path / MANIFEST
        try:
            st = p.stat()
        except FileNotFoundError:
            self._manifest = None
            return None
        stamp = (st.st_ino, st.st_mtime_ns)
        if stamp != self._manifest_stamp:
            try:
                m = json.loads(p.read_text(encoding="utf-8"))
                if not isinstance(m, dict) or "generation" not in m:
                    raise ValueError("not an index manifest")
            except (ValueError, UnicodeDecodeError) as e:
                raise IndexCorrupt(f"{p}: unreadable manifest ({e}); run `rag index --rebuild`") from None
            if int(m.get("schema_version", 0)) > SCHEMA_VERSION:
                raise IndexCorrupt(
                    f"{p}: written by a newer rag (schema {m.get('schema_version')}, this one "
                    f"reads {SCHEMA_VERSION}); upgrade rag or run `rag index --rebuild`"
                )
            self._manifest, self._manifest_stamp = m, stamp
        return self._manifest

    def _generation(self) -> int:
        m = self.manifest()
        return int(m["generation"]) if m else 0

    # ----------------------------------------------------------------------------- FAISS

    def _load_faiss(self, m: dict[str, Any]) -> None:
        import faiss

        path = self.path / m["faiss_file"]
        try:
            index = faiss.read_index(str(path))
        except (RuntimeError, OSError) as e:
            msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise IndexCorrupt(f"{path}: cannot read vectors ({msg}); run `rag index --rebuild`") from None
        expected = int(m.get("counts", {}).get("chunks", index.ntotal))
        if index.ntotal != expected:
            raise IndexCorrupt(
                f"{path}: holds {index.ntotal} vectors but the manifest lists {expected} chunks; "
                "run `rag index --rebuild`"
            )
        rows = int(
            self._db.execute(
                f"SELECT count(*) FROM chunks c WHERE {_visible('c')}", {"gen": int(m["generation"])}
            ).fetchone()[0]
        )
        if rows != index.ntotal:
            raise IndexCorrupt(
                f"{self.path / DB}: holds {rows} chunks but {path.name} has {index.ntotal} vectors; "
                "run `rag index --rebuild`"
            )
        self._index, self._index_gen = _tuned(index), int(m["generation"])

    @staticmethod
    def _new_faiss(kind: str, dim: int, n: int) -> Any:
        import faiss

        base: Any
        if kind == "hnsw":
            base = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            base.hnsw.efConstruction = 80
        elif kind == "ivf":
            nlist = max(1, min(int(4 * n**0.5), n // 39 if n >= 39 else 1))
            base = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            base = faiss.IndexFlatIP(dim)
        return faiss.IndexIDMap2(base)

    # ----------------------------------------------------------------------------- reads

    def articles(self) -> list[ArticleInfo]:
        with self._reading() as gen:
            rows = self._db.execute(
                f"""SELECT a.article_id, a.url, a.title, a.publication, a.published, a.fetched,
                    a.member_only, a.content_hash, a.aliases,
                    (SELECT count(*) FROM chunks c WHERE c.article_row = a.row AND {_visible("c")})
                    FROM articles a WHERE {_visible("a")} ORDER BY a.row""",
                {"gen": gen},
            ).fetchall()
        return [
            ArticleInfo(
                article_id=r[0],
                url=r[1],
                title=r[2],
                publication=r[3],
                published=r[4],
                fetched=r[5],
                member_only=bool(r[6]),
                content_hash=r[7],
                aliases=tuple(json.loads(r[8])),
                chunks=r[9],
            )
            for r in rows
        ]

    def article_text(self, article_id: str) -> str | None:
        with self._reading() as gen:
            r = self._db.execute(
                f"SELECT a.text FROM articles a WHERE a.article_id = :id AND {_visible('a')}",
                {"gen": gen, "id": article_id},
            ).fetchone()
        return r[0] if r else None

    def chunk_count(self) -> int:
        with self._reading() as gen:
            return int(
                self._db.execute(
                    f"SELECT count(*) FROM chunks c WHERE {_visible('c')}", {"gen": gen}
                ).fetchone()[0]
            )

    def all_chunks(self) -> list[StoredChunk]:
        """Every visible chunk, in article then position order (evaluation needs them all)."""
        with self._reading() as gen:
            rows = self._db.execute(
                f"""SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN articles a ON a.row = c.article_row
                WHERE {_visible("c")} ORDER BY a.row, c.ord""",
                {"gen": gen},
            ).fetchall()
        return [_row_to_chunk(r) for r in rows]

    def _chunks_by_row(self, rows: list[int], gen: int) -> dict[int, StoredChunk]:
        if not rows:
            return {}
        out: dict[int, StoredChunk] = {}
        for i in range(0, len(rows), 500):
            part = rows[i : i + 500]
            marks = ",".join("?" * len(part))
            q = (
                f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN articles a ON a.row = c.article_row "
                f"WHERE c.row IN ({marks}) AND c.gen_added <= ? "
                "AND (c.gen_removed IS NULL OR c.gen_removed > ?)"
            )
            for r in self._db.execute(q, [*part, gen, gen]):
                out[r[0]] = _row_to_chunk(r)
        return out

    def search_dense(
        self, vector: np.ndarray, k: int, filters: Filters | None = None
    ) -> list[tuple[StoredChunk, float]]:
        q = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        with self._reading() as gen:
            if filters:
                return self._dense_filtered(q, k, filters, gen)
            n = self._index.ntotal
            if n == 0:
                return []
            # One query at a time: threads cost more than they give (measured in bench/SCALE.md).
            _single_thread()
            scores, ids = self._index.search(q, min(k, n))
            pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
            found = self._chunks_by_row([i for i, _ in pairs], gen)
        return [(found[i], s) for i, s in pairs if i in found]

    def _dense_filtered(
        self, q: np.ndarray, k: int, filters: Filters, gen: int
    ) -> list[tuple[StoredChunk, float]]:
        # Exact scores over the allowed chunks: filters narrow the set, so this stays cheap.
        cond, params = _filter_sql(filters)
        rows = self._db.execute(
            f"""SELECT c.row, c.vector FROM chunks c JOIN articles a ON a.row = c.article_row
            WHERE {_visible("c")}{cond}""",
            {"gen": gen, **params},
        ).fetchall()
        if not rows:
            return []
        mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        scores = mat @ q[0]
        top = np.argsort(-scores, kind="stable")[:k]
        found = self._chunks_by_row([rows[i][0] for i in top], gen)
        return [(found[rows[i][0]], float(scores[i])) for i in top if rows[i][0] in found]

    def search_lexical(
        self, query: str, k: int, filters: Filters | None = None
    ) -> list[tuple[StoredChunk, float]]:
        match = fts_query(query)
        if not match:
            return []
        cond, params = _filter_sql(filters)
        w = ", ".join(str(x) for x in _BM25_WEIGHTS)
        with self._reading() as gen:
            rows = self._db.execute(
                f"""SELECT c.row, -bm25(chunks_fts, {w}) AS score
                FROM chunks_fts JOIN chunks c ON c.row = chunks_fts.rowid
                JOIN articles a ON a.row = c.article_row
                WHERE chunks_fts MATCH :match AND {_visible("c")}{cond}
                ORDER BY bm25(chunks_fts, {w}) LIMIT :k""",
                {"gen": gen, "match": match, "k": k, **params},
            ).fetchall()
            found = self._chunks_by_row([r[0] for r in rows], gen)
        return [(found[r[0]], float(r[1])) for r in rows if r[0] in found]

    def vectors(self, chunk_ids: list[str]) -> np.ndarray:
        with self._reading() as gen:
            got: dict[str, np.ndarray] = {}
            for i in range(0, len(chunk_ids), 500):
                part = chunk_ids[i : i + 500]
                marks = ",".join("?" * len(part))
                for cid, blob in self._db.execute(
                    f"""SELECT chunk_id, vector FROM chunks c WHERE chunk_id IN ({marks})
                    AND c.gen_added <= ? AND (c.gen_removed IS NULL OR c.gen_removed > ?)""",
                    [*part, gen, gen],
                ):
                    got[cid] = np.frombuffer(blob, dtype=np.float32)
        return np.stack([got[c] for c in chunk_ids]) if chunk_ids else np.zeros((0, 0), np.float32)

    # ----------------------------------------------------------------------------- writes

    def _recover(self) -> None:
        """Undo what a killed build left behind: rows and files of a generation never committed."""
        gen = self._generation()
        with self._db:
            dead = [r[0] for r in self._db.execute("SELECT row FROM chunks WHERE gen_added > ?", (gen,))]
            self._delete_chunk_rows(dead)
            self._db.execute("DELETE FROM articles WHERE gen_added > ?", (gen,))
            self._db.execute("UPDATE chunks SET gen_removed = NULL WHERE gen_removed > ?", (gen,))
            self._db.execute("UPDATE articles SET gen_removed = NULL WHERE gen_removed > ?", (gen,))
        m = self.manifest()
        keep = {m["faiss_file"]} if m else set()
        for f in self.path.glob("vectors-*.faiss"):
            n = re.match(r"vectors-(\d+)\.faiss$", f.name)
            if f.name not in keep and n and int(n.group(1)) > gen:
                f.unlink(missing_ok=True)
        for f in self.path.glob(".*.tmp"):
            f.unlink(missing_ok=True)
        if m is not None:
            self._cleanup(gen)  # a build killed after its switch left rows to delete

    def _delete_chunk_rows(self, rows: list[int]) -> None:
        for i in range(0, len(rows), 500):
            part = rows[i : i + 500]
            marks = ",".join("?" * len(part))
            self._db.execute(f"DELETE FROM chunks_fts WHERE rowid IN ({marks})", part)
            self._db.execute(f"DELETE FROM chunks WHERE row IN ({marks})", part)

    def commit(self, changes: Changes, manifest: dict[str, Any]) -> None:
        """Write a new generation and switch to it. Call inside `writing()`."""
        import faiss

        old = self.manifest()
        gen = (int(old["generation"]) if old else 0) + 1
        dim = int(manifest["embedder"]["dimension"])
        added_rows: list[int] = []
        added_vecs: list[np.ndarray] = []
        with self._db:
            removed_rows: list[int] = []
            for aid in changes.removed:
                for (row,) in self._db.execute(
                    "SELECT c.row FROM chunks c JOIN articles a ON a.row = c.article_row "
                    "WHERE a.article_id = ? AND a.gen_removed IS NULL",
                    (aid,),
                ):
                    removed_rows.append(row)
                self._db.execute(
                    "UPDATE chunks SET gen_removed = ? WHERE gen_removed IS NULL AND article_row IN "
                    "(SELECT row FROM articles WHERE article_id = ? AND gen_removed IS NULL)",
                    (gen, aid),
                )
                self._db.execute(
                    "UPDATE articles SET gen_removed = ? WHERE article_id = ? AND gen_removed IS NULL",
                    (gen, aid),
                )
            for article, chunks, vecs in changes.added:
                cur = self._db.execute(
                    """INSERT INTO articles (article_id, gen_added, url, title, publication,
                    published, fetched, member_only, content_hash, aliases, text, source_file)
                    VALUES (?,?,?,?,?,?,?,?,?,?,?,?)""",
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
                    ),
                )
                arow = cur.lastrowid
                for ch, v in zip(chunks, vecs, strict=True):
                    v32 = np.ascontiguousarray(v, dtype=np.float32)
                    cur = self._db.execute(
                        """INSERT INTO chunks (chunk_id, article_row, gen_added, heading, start,
                        "end", ord, text, vector) VALUES (?,?,?,?,?,?,?,?,?)""",
                        (ch.id, arow, gen, ch.heading, ch.start, ch.end, ch.ord, ch.text, v32.tobytes()),
                    )
                    row = int(cur.lastrowid or 0)
                    self._db.execute(
                        "INSERT INTO chunks_fts (rowid, title, heading, text) VALUES (?,?,?,?)",
                        (row, article.title, ch.heading, ch.text),
                    )
                    added_rows.append(row)
                    added_vecs.append(v32)
            live = int(
                self._db.execute(
                    f"SELECT count(*) FROM chunks c WHERE {_visible('c')}", {"gen": gen}
                ).fetchone()[0]
            )
            crash_point("sqlite-uncommitted")
        crash_point("sqlite-committed")

        kind = manifest["index_kind"]
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # building is parallel; queries are not
        reuse = old is not None and old.get("index_kind") == kind == "flat"
        if reuse:
            assert old is not None
            if self._index_gen != int(old["generation"]):
                self._load_faiss(old)
            index = self._index
            # The in-memory index is about to change: until the switch it belongs to no
            # committed generation, so a failure below must make the next read reload it.
            self._index_gen = None
            if removed_rows:
                index.remove_ids(np.asarray(removed_rows, dtype=np.int64))
            if added_rows:
                index.add_with_ids(np.stack(added_vecs), np.asarray(added_rows, dtype=np.int64))
        else:
            rows_vecs = self._db.execute(
                f"SELECT row, vector FROM chunks c WHERE {_visible('c')} ORDER BY row", {"gen": gen}
            ).fetchall()
            index = self._new_faiss(kind, dim, len(rows_vecs))
            if rows_vecs:
                mat = np.frombuffer(b"".join(v for _, v in rows_vecs), dtype=np.float32)
                mat = mat.reshape(len(rows_vecs), dim)
                ids = np.asarray([r for r, _ in rows_vecs], dtype=np.int64)
                if kind == "ivf":
                    index.train(mat)
                index.add_with_ids(mat, ids)
        if index.ntotal != live:
            raise IndexCorrupt(
                f"{self.path}: vector count {index.ntotal} does not match {live} chunks; "
                "run `rag index --rebuild`"
            )
        faiss_file = f"vectors-{gen}.faiss"
        tmp = self.path / f".{faiss_file}.{os.getpid()}.tmp"
        faiss.write_index(index, str(tmp))
        crash_point("faiss-tmp-written")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.path / faiss_file)
        crash_point("faiss-written")

        manifest = {
            **manifest,
            "schema_version": SCHEMA_VERSION,
            "generation": gen,
            "faiss_file": faiss_file,
        }
        manifest["counts"] = {**manifest.get("counts", {}), "chunks": live}
        write_atomic(self.path / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))
        crash_point("manifest-written")
        self._index, self._index_gen = _tuned(index), gen
        self._cleanup(gen)
        crash_point("cleaned-up")

    def _cleanup(self, gen: int) -> None:
        """Delete rows and files no generation >= `gen` can see, once readers have moved on."""
        with self._flock("read.lock", fcntl.LOCK_EX, wait=10) as got:
            if not got:
                return  # a reader is slow; the next build cleans up
            with self._db:
                dead = [
                    r[0]
                    for r in self._db.execute(
                        "SELECT row FROM chunks WHERE gen_removed IS NOT NULL AND gen_removed <= ?", (gen,)
                    )
                ]
                self._delete_chunk_rows(dead)
                self._db.execute(
                    "DELETE FROM articles WHERE gen_removed IS NOT NULL AND gen_removed <= ?", (gen,)
                )
            for f in self.path.glob("vectors-*.faiss"):
                if f.name != f"vectors-{gen}.faiss":
                    f.unlink(missing_ok=True)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()
