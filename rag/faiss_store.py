"""The default store: FAISS files for vectors, SQLite for chunks, metadata and BM25 (FTS5).

Layout of an index folder:

    manifest.json         the commit point: names the generation and its vector segments
    chunks.sqlite         articles and chunks of every live generation, vectors, FTS5 index
    vectors-<gen>.faiss   one segment: vectors written by generation <gen>, keyed by chunk row id
    write.lock            held by the one `rag index` that may write
    read.lock             held shared by readers during a query, exclusively by the clean-up

How a build stays atomic: rows are stamped with the generation that added them (and the one that
removed them). A build inserts its rows under generation N+1, writes `vectors-<N+1>.faiss`, and
then replaces `manifest.json`: until that rename, readers filter on generation N and see exactly
the old index; after it, exactly the new one. A build killed half-way leaves rows from N+1 that
no reader can see, and the next build removes them before it starts. Rows removed by a build are
deleted for real right after the switch, once no reader is still on the old generation.

How an update stays cheap (log-structured vectors): a build writes only the vectors it added, as
a new small segment, and the manifest lists the live segments, oldest first, each with the
generations it covers and its count of tombstones (vectors of rows removed since it was
written). A removed row needs no FAISS write: it is invisible through SQLite's generation
filter, and a search asks each segment for enough extra hits to make up for its tombstones.
Segments are merged (rewritten from SQLite, without their tombstones) as they grow, see
`_merge_from`; only the first segment has the configured kind (HNSW, IVF, flat), the newer
ones are flat and searched exactly.
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
-- Scrape bundle files as the build that added the row read them (rag.store.FileRecord).
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
_BM25_WEIGHTS = (2.0, 1.5, 1.0)

_CHUNK_COLUMNS = (
    "c.row, c.chunk_id, a.article_id, a.url, a.title, a.publication, a.published, c.heading, "
    'c.text, c.start, c."end", c.ord, a.member_only, a.author'
)

# When segments are merged (see `_merge_from`).
_MERGE_RATIO = 2  # flat: merge the newest run once it holds half as many vectors as the one before
_REBUILD_RATIO = 10  # HNSW/IVF first segment: rebuild once the flat ones after it hold a tenth of it
_DEAD_SHARE = 0.25  # a segment of which this share are tombstones is rewritten


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
        author=r[13],
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


def _lower(value: str | None) -> str:
    return value.lower() if value else ""


def fts_query(text: str) -> str:
    """An FTS5 query that ORs the query's terms, each quoted so that no user text is syntax."""
    return " OR ".join(f'"{t}"' for t in query_words(text))


def _single_thread() -> None:
    import faiss

    faiss.omp_set_num_threads(1)


def _tuned(index: Any) -> Any:
    """Search-time settings of approximate indexes (they are not stored in the FAISS file)."""
    import faiss

    inner: Any = faiss.downcast_index(index.index) if hasattr(index, "index") else None
    if hasattr(inner, "hnsw"):
        # 256, not 128: at 1M chunks recall@10 rises from 0.95 to 0.99 for well under a
        # millisecond (bench/SCALE.md, part 4)
        inner.hnsw.efSearch = 256
    if hasattr(inner, "nprobe"):
        inner.nprobe = 32
    return index


def _segments(m: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's vector segments, oldest first, as fresh dicts a commit may change.

    Each has `file`, `kind`, `first`/`last` (the generations whose rows it holds), `vectors`
    (in the file) and `removed` (tombstones: vectors of rows removed since it was written). A
    manifest from before segments names one file that holds every live vector.
    """
    if "segments" in m:
        return [dict(seg) for seg in m["segments"]]
    n = int(m.get("counts", {}).get("chunks", 0))
    return [
        {
            "file": m["faiss_file"],
            "kind": m.get("index_kind", "flat"),
            "first": 0,
            "last": int(m["generation"]),
            "vectors": n,
            "removed": 0,
        }
    ]


def _segment_of(segs: list[dict[str, Any]], born: int) -> dict[str, Any]:
    """The segment that holds the vector of a row added by generation `born`."""
    for seg in segs:
        if seg["first"] <= born <= seg["last"]:
            return seg
    raise IndexCorrupt(f"no vector segment holds generation {born}; run `rag index --rebuild`")


def _merge_from(segs: list[dict[str, Any]], kind: str) -> int | None:
    """Where the newest run of segments to rewrite as one starts; None when none needs it.

    Flat segments follow the logarithmic method: the newest run is merged with the segment
    before it while the run holds at least 1/_MERGE_RATIO as many live vectors, so a store of n
    vectors has O(log n) segments and a vector is rewritten O(log n) times, and an update that
    adds a few chunks writes a few chunks. The first segment has the configured kind; an HNSW or
    IVF one is rebuilt (a full rebuild: they cannot be extended cheaply and exactly) once the flat
    segments after it hold 1/_REBUILD_RATIO as many vectors. A segment with too many tombstones
    is rewritten, with all after it, since every search over-fetches by its tombstones.
    """
    if not segs:
        return None
    if segs[0]["kind"] != kind:
        return 0

    def live(seg: dict[str, Any]) -> int:
        return int(seg["vectors"] - seg["removed"])

    start, run = len(segs) - 1, live(segs[-1])
    while start > 0:
        before = segs[start - 1]
        ratio = _REBUILD_RATIO if start == 1 and kind != "flat" else _MERGE_RATIO
        if run * ratio < live(before):
            break
        start -= 1
        run += live(before)
    for j, seg in enumerate(segs[: start + 1]):
        if seg["removed"] > _DEAD_SHARE * seg["vectors"]:
            return j
    return start if start < len(segs) - 1 else None  # alone, the newest is written as it is


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
        self._loaded: dict[str, Any] = {}  # segment file name -> FAISS index, search-tuned
        self._segs: list[dict[str, Any]] = []  # the segments of generation `_index_gen`
        self._index_gen: int | None = None
        self._manifest: dict[str, Any] | None = None
        self._manifest_stamp: tuple[int, int] | None = None
        if self.path.exists() and not self.path.is_dir():
            raise RagError(f"{self.path}: is a file, not an index folder (give --index a folder)")
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
            db.create_function("casefold_py", 1, _lower, deterministic=True)
            if "author" not in {r[1] for r in db.execute("PRAGMA table_info(articles)")}:
                # An index written before authors were kept: the column is added (NULL for every
                # article) so that old indexes stay readable; the next `rag index` fills it.
                try:
                    with db:
                        db.execute("ALTER TABLE articles ADD COLUMN author TEXT")
                except sqlite3.OperationalError:
                    raise RagError(
                        f"{self.path}: index written by an older rag and cannot be upgraded here "
                        "(read-only?); run `rag index --rebuild`"
                    ) from None
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
    def _reading(self) -> Iterator[dict[str, Any]]:
        """A consistent manifest (generation) for the duration of one query.

        The vectors are loaded by the first dense search, not here: listing articles or a BM25
        query should not wait for FAISS files to be read.
        """
        with self._flock("read.lock", fcntl.LOCK_SH):
            m = self.manifest()
            if m is None:
                raise IndexMissing(f"{self.path}: the index is empty; run `rag index`")
            yield m

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
        """Read the segments of manifest `m` not yet in memory, and check every count."""
        import faiss

        segs = _segments(m)
        loaded: dict[str, Any] = {}
        for seg in segs:
            index = self._loaded.get(seg["file"])
            path = self.path / seg["file"]
            if index is None:
                try:
                    index = _tuned(faiss.read_index(str(path)))
                except (RuntimeError, OSError) as e:
                    msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                    raise IndexCorrupt(
                        f"{path}: cannot read vectors ({msg}); run `rag index --rebuild`"
                    ) from None
            if index.ntotal != seg["vectors"]:
                raise IndexCorrupt(
                    f"{path}: holds {index.ntotal} vectors but the manifest lists {seg['vectors']}; "
                    "run `rag index --rebuild`"
                )
            loaded[seg["file"]] = index
        live = sum(seg["vectors"] - seg["removed"] for seg in segs)
        expected = int(m.get("counts", {}).get("chunks", live))
        if live != expected:
            raise IndexCorrupt(
                f"{self.path / MANIFEST}: its segments hold {live} live vectors but the manifest "
                f"lists {expected} chunks; run `rag index --rebuild`"
            )
        rows = self._live_count(int(m["generation"]))
        if rows != live:
            raise IndexCorrupt(
                f"{self.path / DB}: holds {rows} chunks but the FAISS segments have {live} vectors; "
                "run `rag index --rebuild`"
            )
        self._loaded, self._segs, self._index_gen = loaded, segs, int(m["generation"])

    def _live_count(self, gen: int) -> int:
        return int(
            self._db.execute(f"SELECT count(*) FROM chunks c WHERE {_visible('c')}", {"gen": gen}).fetchone()[
                0
            ]
        )

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
        with self._reading() as m:
            gen = int(m["generation"])
            rows = self._db.execute(
                f"""SELECT a.article_id, a.url, a.title, a.publication, a.published, a.fetched,
                    a.member_only, a.content_hash, a.aliases, a.author,
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
                aliases=tuple(json.loads(r[8])) if r[8] != "[]" else (),
                author=r[9],
                chunks=r[10],
            )
            for r in rows
        ]

    def article_text(self, article_id: str) -> str | None:
        with self._reading() as m:
            gen = int(m["generation"])
            r = self._db.execute(
                f"SELECT a.text FROM articles a WHERE a.article_id = :id AND {_visible('a')}",
                {"gen": gen, "id": article_id},
            ).fetchone()
        return r[0] if r else None

    def chunk_count(self) -> int:
        with self._reading() as m:
            gen = int(m["generation"])
            return int(
                self._db.execute(
                    f"SELECT count(*) FROM chunks c WHERE {_visible('c')}", {"gen": gen}
                ).fetchone()[0]
            )

    def files(self) -> dict[str, FileRecord]:
        if self.manifest() is None:
            return {}
        with self._reading() as m:
            return self._files_at(int(m["generation"]))

    def _files_at(self, gen: int) -> dict[str, FileRecord]:
        rows = self._db.execute(
            f"SELECT path, size, mtime_ns, sha256, articles FROM files f WHERE {_visible('f')}", {"gen": gen}
        ).fetchall()
        return {r[0]: record_from_json([r[0], r[1], r[2], r[3], json.loads(r[4])]) for r in rows}

    def all_chunks(self) -> list[StoredChunk]:
        """Every visible chunk, in article then position order (evaluation needs them all)."""
        with self._reading() as m:
            gen = int(m["generation"])
            rows = self._db.execute(
                f"""SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN articles a ON a.row = c.article_row
                WHERE {_visible("c")} ORDER BY a.row, c.ord""",
                {"gen": gen},
            ).fetchall()
        return [_row_to_chunk(r) for r in rows]

    def _chunks_by_row(self, rows: list[int], gen: int) -> dict[int, tuple[StoredChunk, int]]:
        """The rows visible at `gen`, each with the generation that added it."""
        if not rows:
            return {}
        out: dict[int, tuple[StoredChunk, int]] = {}
        for i in range(0, len(rows), 500):
            part = rows[i : i + 500]
            marks = ",".join("?" * len(part))
            q = (
                f"SELECT {_CHUNK_COLUMNS}, c.gen_added FROM chunks c "
                f"JOIN articles a ON a.row = c.article_row WHERE c.row IN ({marks}) AND c.gen_added <= ? "
                "AND (c.gen_removed IS NULL OR c.gen_removed > ?)"
            )
            for r in self._db.execute(q, [*part, gen, gen]):
                out[r[0]] = (_row_to_chunk(r), r[-1])
        return out

    def search_dense(
        self, vector: np.ndarray, k: int, filters: Filters | None = None
    ) -> list[tuple[StoredChunk, float]]:
        q = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        with self._reading() as m:
            gen = int(m["generation"])
            if filters:
                return self._dense_filtered(q, k, filters, gen)
            if self._index_gen != gen:
                self._load_faiss(m)
            # One query at a time: threads cost more than they give (measured in bench/SCALE.md).
            _single_thread()
            return self._search_segments(q, k, gen)

    def _search_segments(self, q: np.ndarray, k: int, gen: int) -> list[tuple[StoredChunk, float]]:
        """The best k live chunks over all segments, exact when the segments are.

        A segment's hits include its tombstones (rows removed, or ids SQLite has since given to
        a newer row: a hit counts only if its row was added within the segment's generations).
        Tombstones are rarely near the top, so a segment is first asked for k + min(tombstones,
        k) hits and asked again for more only when fewer than k of them are live; asking for k
        + tombstones would be exact at once but costly where a segment holds many.
        """
        found: dict[int, tuple[StoredChunk, int]] = {}
        best: list[tuple[float, int]] = []
        ask = {j: min(seg["vectors"], k + min(seg["removed"], k)) for j, seg in enumerate(self._segs)}
        while ask:
            hits: dict[int, list[tuple[int, float]]] = {}
            for j, n in ask.items():
                if n > 0:
                    scores, ids = self._loaded[self._segs[j]["file"]].search(q, n)
                    hits[j] = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
            found.update(self._chunks_by_row([i for h in hits.values() for i, _ in h if i not in found], gen))
            again = {}
            for j, h in hits.items():
                seg = self._segs[j]
                live = [(s, i) for i, s in h if i in found and seg["first"] <= found[i][1] <= seg["last"]]
                most = min(seg["vectors"], k + seg["removed"])
                if len(live) < k and ask[j] < most:
                    again[j] = min(most, 4 * ask[j])
                else:
                    best += live[:k]
            ask = again
        best.sort(key=lambda p: -p[0])
        return [(found[i][0], s) for s, i in best[:k]]

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
        return [(found[rows[i][0]][0], float(scores[i])) for i in top if rows[i][0] in found]

    def search_lexical(
        self, query: str, k: int, filters: Filters | None = None
    ) -> list[tuple[StoredChunk, float]]:
        match = fts_query(query)
        if not match:
            return []
        cond, params = _filter_sql(filters)
        w = ", ".join(str(x) for x in _BM25_WEIGHTS)
        with self._reading() as m:
            gen = int(m["generation"])
            if filters:
                rows = self._db.execute(
                    f"""SELECT c.row, -bm25(chunks_fts, {w}) AS score
                    FROM chunks_fts JOIN chunks c ON c.row = chunks_fts.rowid
                    JOIN articles a ON a.row = c.article_row
                    WHERE chunks_fts MATCH :match AND {_visible("c")}{cond}
                    ORDER BY bm25(chunks_fts, {w}), c.row LIMIT :k""",
                    {"gen": gen, "match": match, "k": k, **params},
                ).fetchall()
                found = self._chunks_by_row([r[0] for r in rows], gen)
                return [(found[r[0]][0], float(r[1])) for r in rows if r[0] in found]
            # Rank in FTS5 alone, then keep the visible rows: joining every match to `chunks`
            # to test visibility before ranking cost a random row read per match (5x slower at
            # 100k chunks, bench/SCALE.md). Invisible rows (a build in progress, removals not
            # yet cleaned up) are rare, so k are asked for first and more only if some were.
            n = k
            while True:
                rows = self._db.execute(
                    f"""SELECT rowid, -bm25(chunks_fts, {w}) FROM chunks_fts
                    WHERE chunks_fts MATCH :match ORDER BY bm25(chunks_fts, {w}), rowid LIMIT :n""",
                    {"match": match, "n": n},
                ).fetchall()
                found = self._chunks_by_row([r[0] for r in rows], gen)
                live = [r for r in rows if r[0] in found]
                if len(live) >= k or len(rows) < n:
                    return [(found[r][0], float(s)) for r, s in live[:k]]
                n *= 4

    def vectors(self, chunk_ids: list[str]) -> np.ndarray:
        with self._reading() as m:
            gen = int(m["generation"])
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
        """Undo what a killed build left behind: rows and files of a generation never committed.

        Every statement here is a range on an indexed generation column: its cost follows what
        the killed build wrote, not the size of the index.
        """
        gen = self._generation()
        with self._db:
            dead = [r[0] for r in self._db.execute("SELECT row FROM chunks WHERE gen_added > ?", (gen,))]
            self._delete_chunk_rows(dead)
            self._db.execute("DELETE FROM articles WHERE gen_added > ?", (gen,))
            self._db.execute("UPDATE chunks SET gen_removed = NULL WHERE gen_removed > ?", (gen,))
            self._db.execute("UPDATE articles SET gen_removed = NULL WHERE gen_removed > ?", (gen,))
            self._db.execute("DELETE FROM files WHERE gen_added > ?", (gen,))
            self._db.execute("UPDATE files SET gen_removed = NULL WHERE gen_removed > ?", (gen,))
        for f in self.path.glob("vectors-*.faiss"):
            n = re.match(r"vectors-(\d+)\.faiss$", f.name)
            if n and int(n.group(1)) > gen:
                f.unlink(missing_ok=True)
        for f in self.path.glob(".*.tmp"):
            f.unlink(missing_ok=True)
        m = self.manifest()
        if m is not None:
            self._cleanup(gen, m)  # a build killed after its switch left rows and files to delete

    def _delete_chunk_rows(self, rows: list[int]) -> None:
        for i in range(0, len(rows), 500):
            part = rows[i : i + 500]
            marks = ",".join("?" * len(part))
            self._db.execute(f"DELETE FROM chunks_fts WHERE rowid IN ({marks})", part)
            self._db.execute(f"DELETE FROM chunks WHERE row IN ({marks})", part)

    def commit(self, changes: Changes, manifest: dict[str, Any]) -> None:
        """Write a new generation and switch to it. Call inside `writing()`.

        The cost follows the size of `changes`: the rows are written to SQLite, the added
        vectors to one new segment, and the live count is the old one plus added minus removed.
        Only a merge (see `_merge_from`) reads vectors back, those of the segments it merges.
        """
        old = self.manifest()
        gen = (int(old["generation"]) if old else 0) + 1
        kind = manifest["index_kind"]
        dim = int(manifest["embedder"]["dimension"])
        segs = _segments(old) if old else []
        live = int(old.get("counts", {}).get("chunks", 0)) if old else 0
        added_rows: list[int] = []
        added_vecs: list[np.ndarray] = []
        removed: list[tuple[int, int]] = []  # (row, generation that added it)
        with self._db:
            if changes.files is not None:
                self._write_files(changes.files, gen)
            for aid in changes.removed:
                arts = [
                    r[0]
                    for r in self._db.execute(
                        "SELECT row FROM articles WHERE article_id = ? AND gen_removed IS NULL", (aid,)
                    )
                ]
                for arow in arts:
                    rows = self._db.execute(
                        "SELECT row, gen_added FROM chunks WHERE article_row = ? AND gen_removed IS NULL",
                        (arow,),
                    ).fetchall()
                    self._db.executemany(
                        "UPDATE chunks SET gen_removed = ? WHERE row = ?", [(gen, r) for r, _ in rows]
                    )
                    self._db.execute("UPDATE articles SET gen_removed = ? WHERE row = ?", (gen, arow))
                    removed += rows
            for article, chunks, vecs in changes.added:
                cur = self._db.execute(
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
                        (row, byline(article.title, article.author), ch.heading, ch.text),
                    )
                    added_rows.append(row)
                    added_vecs.append(v32)
            crash_point("sqlite-uncommitted")
        crash_point("sqlite-committed")

        live += len(added_rows) - len(removed)
        for _, born in removed:
            _segment_of(segs, born)["removed"] += 1
        if added_rows:
            segs.append(
                {
                    "file": "",
                    "kind": "flat",
                    "first": gen,
                    "last": gen,
                    "vectors": len(added_rows),
                    "removed": 0,
                }
            )
        start = _merge_from(segs, kind)
        index: Any = None
        if start is not None:
            # Rewrite segs[start:] as one segment, from the rows SQLite holds for its generations.
            first = 0 if start == 0 else segs[start]["first"]
            expect = sum(seg["vectors"] - seg["removed"] for seg in segs[start:])
            index = self._build_segment(kind if start == 0 else "flat", dim, first, gen, expect)
            segs[start:] = [
                {
                    "file": "",
                    "kind": kind if start == 0 else "flat",
                    "first": first,
                    "last": gen,
                    "vectors": index.ntotal,
                    "removed": 0,
                }
            ]
        elif added_rows:
            index = self._new_faiss("flat", dim, len(added_rows))
            index.add_with_ids(np.stack(added_vecs), np.asarray(added_rows, dtype=np.int64))
        if index is not None and index.ntotal == 0:
            segs.pop()  # every row of the merged segments was removed: no file at all
            index = None
        if index is not None:
            segs[-1]["file"] = f"vectors-{gen}.faiss"
            self._write_segment(index, segs[-1]["file"])

        manifest = {
            **manifest,
            "schema_version": SCHEMA_VERSION,
            "generation": gen,
            "segments": segs,
        }
        manifest.pop("faiss_file", None)
        manifest["counts"] = {**manifest.get("counts", {}), "chunks": live}
        write_atomic(self.path / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))
        crash_point("manifest-written")
        # Keep what is in memory and still listed, and the new segment, tuned as a reader's is;
        # the next search checks the counts against SQLite before it uses them.
        keep = {seg["file"] for seg in segs}
        self._loaded = {f: ix for f, ix in self._loaded.items() if f in keep}
        if index is not None:
            self._loaded[segs[-1]["file"]] = _tuned(index)
        self._index_gen = None
        self._cleanup(gen, manifest)
        crash_point("cleaned-up")

    def _write_files(self, files: dict[str, FileRecord], gen: int) -> None:
        """Only records that differ from the previous generation's are written."""
        old = self._files_at(gen - 1) if gen > 1 else {}
        stale = [p for p, r in old.items() if files.get(p) != r]
        for i in range(0, len(stale), 500):
            part = stale[i : i + 500]
            self._db.execute(
                "UPDATE files SET gen_removed = ? WHERE gen_removed IS NULL "
                f"AND path IN ({','.join('?' * len(part))})",
                [gen, *part],
            )
        self._db.executemany(
            "INSERT INTO files (path, gen_added, size, mtime_ns, sha256, articles) VALUES (?,?,?,?,?,?)",
            [
                (r.path, gen, r.size, r.mtime_ns, r.sha256, json.dumps(record_to_json(r)[4]))
                for p, r in files.items()
                if old.get(p) != r
            ],
        )

    def _build_segment(self, kind: str, dim: int, first: int, gen: int, expect: int) -> Any:
        """A FAISS index of the rows added by generations `first`..`gen` and live at `gen`."""
        import faiss

        rows_vecs = self._db.execute(
            f"SELECT row, vector FROM chunks c WHERE c.gen_added >= :first AND {_visible('c')} ORDER BY row",
            {"gen": gen, "first": first},
        ).fetchall()
        if len(rows_vecs) != expect:
            raise IndexCorrupt(
                f"{self.path / DB}: holds {len(rows_vecs)} chunks where the segments have {expect} "
                "vectors; run `rag index --rebuild`"
            )
        index = self._new_faiss(kind, dim, len(rows_vecs))
        if rows_vecs:
            mat = np.frombuffer(b"".join(v for _, v in rows_vecs), dtype=np.float32).reshape(-1, dim)
            ids = np.asarray([r for r, _ in rows_vecs], dtype=np.int64)
            del rows_vecs
            faiss.omp_set_num_threads(os.cpu_count() or 1)  # building is parallel; queries are not
            if kind == "ivf":
                index.train(mat)
            index.add_with_ids(mat, ids)
        return index

    def _write_segment(self, index: Any, name: str) -> None:
        import faiss

        tmp = self.path / f".{name}.{os.getpid()}.tmp"
        faiss.write_index(index, str(tmp))
        crash_point("faiss-tmp-written")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.path / name)
        crash_point("faiss-written")

    def _cleanup(self, gen: int, m: dict[str, Any]) -> None:
        """Delete rows no generation >= `gen` can see, and segment files manifest `m` does not
        list, once readers have moved on."""
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
                self._db.execute(
                    "DELETE FROM files WHERE gen_removed IS NOT NULL AND gen_removed <= ?", (gen,)
                )
            keep = {seg["file"] for seg in _segments(m)}
            for f in self.path.glob("vectors-*.faiss"):
                if f.name not in keep:
                    f.unlink(missing_ok=True)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()
