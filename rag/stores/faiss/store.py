"""The default store: FAISS files for vectors, SQLite for chunks, metadata and BM25 (FTS5).

Layout of an index folder:

    manifest.json         the commit point: names the generation and its vector segments
    chunks.sqlite         articles and chunks of every live generation, vectors, FTS5 index
    vectors-<gen>.faiss   one segment: vectors written by generation <gen>, keyed by chunk row id
    write.lock            held by the one `rag index` that may write
    read.lock             held shared by readers during a query, exclusively by the clean-up

How a build stays atomic: rows are stamped with the generation that added them (and the one that
removed them), see `sql.py`. A build inserts its rows under generation N+1, writes
`vectors-<N+1>.faiss`, and then replaces `manifest.json`: until that rename, readers filter on
generation N and see exactly the old index; after it, exactly the new one. A build killed
half-way leaves rows from N+1 that no reader can see, and the next build removes them before it
starts. Rows removed by a build are deleted for real right after the switch, once no reader is
still on the old generation. How vectors stay cheap to update: `segments.py`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexCorrupt, IndexMissing, RagError
from rag.records import ArticleInfo, FileRecord, Filters, StoredChunk
from rag.stores.base import Changes, GenerationalStore, Manifest, crash_point, generation, parse_manifest
from rag.stores.faiss import segments as sg
from rag.stores.faiss import sql
from rag.stores.faiss.files import EXCLUSIVE, SHARED, flock, write_atomic

MANIFEST = "manifest.json"
DB = sql.DB


class FaissStore(GenerationalStore):
    """FAISS + SQLite index folder. Reads take a consistent generation; writes are atomic."""

    def __init__(self, path: Path, create: bool = False) -> None:
        self.path = Path(path)
        self._loaded: dict[str, Any] = {}  # segment file name -> FAISS index, search-tuned
        self._segs: list[sg.Segment] = []  # the segments of generation `_index_gen`
        self._index_gen: int | None = None
        self._manifest: Manifest | None = None
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
            self._create()
        self._db = sql.connect(self.path / DB)

    def _create(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            for name in ("write.lock", "read.lock"):
                (self.path / name).touch(exist_ok=True)
            sql.create(self.path / DB)
        except OSError as e:
            raise RagError(f"{self.path}: cannot create the index: {e.strerror}") from None

    write_errors = (OSError, sqlite3.Error)

    @property
    def where(self) -> str:
        return str(self.path)

    @property
    def connection(self) -> sql.Db:
        """The SQLite connection (for benchmarks and diagnostics; the store owns it)."""
        return self._db

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Manifest]:
        """A consistent manifest (generation) for the duration of one query.

        The vectors are loaded by the first dense search, not here: listing articles or a BM25
        query should not wait for FAISS files to be read.
        """
        with flock(self.path / "read.lock", SHARED):
            m = self.manifest()
            if m is None:
                raise IndexMissing(f"{self.path}: the index is empty; run `rag index`")
            yield m

    def manifest(self) -> Manifest | None:
        """The committed manifest (re-read only when the file changed), or None."""
        p = self.path / MANIFEST
        try:
            st = p.stat()
        except FileNotFoundError:
            self._manifest = None
            return None
        stamp = (st.st_ino, st.st_mtime_ns)
        if stamp != self._manifest_stamp:
            self._manifest, self._manifest_stamp = parse_manifest(p.read_bytes(), str(p)), stamp
        return self._manifest

    # ----------------------------------------------------------------------------- vectors

    def _load_vectors(self, m: Manifest) -> None:
        """Read the segments of manifest `m` not yet in memory, and check every count."""
        segs = sg.segments(m)
        loaded = sg.load(self.path, segs, self._loaded)
        live = sum(sg.live(seg) for seg in segs)
        expected = int(m.get("counts", {}).get("chunks", live))
        if live != expected:
            raise IndexCorrupt(
                f"{self.path / MANIFEST}: its segments hold {live} live vectors but the manifest "
                f"lists {expected} chunks; run `rag index --rebuild`"
            )
        rows = sql.live_count(self._db, int(m["generation"]))
        if rows != live:
            raise IndexCorrupt(
                f"{self.path / DB}: holds {rows} chunks but the FAISS segments have {live} vectors; "
                "run `rag index --rebuild`"
            )
        self._loaded, self._segs, self._index_gen = loaded, segs, int(m["generation"])

    def segment_indexes(self) -> list[Any]:
        """The FAISS index of each vector segment of the visible generation, oldest first,
        loaded and checked as a search would (benchmarks inspect them)."""
        m = self.manifest()
        if m is None:
            return []
        if self._index_gen != int(m["generation"]):
            self._load_vectors(m)
        return [self._loaded[seg["file"]] for seg in self._segs]

    def release_vectors(self) -> None:
        """Forget the FAISS indexes held in memory; the next dense search reads them again."""
        self._loaded, self._segs, self._index_gen = {}, [], None

    # ----------------------------------------------------------------------------- reads

    def articles(self) -> list[ArticleInfo]:
        with self._reading() as m:
            return sql.articles(self._db, generation(m))

    def article_text(self, article_id: str) -> str | None:
        with self._reading() as m:
            return sql.article_text(self._db, generation(m), article_id)

    def chunk_count(self) -> int:
        with self._reading() as m:
            return sql.live_count(self._db, generation(m))

    def files(self) -> dict[str, FileRecord]:
        if self.manifest() is None:
            return {}
        with self._reading() as m:
            return sql.files_at(self._db, generation(m))

    def all_chunks(self) -> list[StoredChunk]:
        with self._reading() as m:
            return sql.all_chunks(self._db, generation(m))

    def search_dense(
        self, vector: np.ndarray, k: int, filters: Filters | None = None
    ) -> list[tuple[StoredChunk, float]]:
        q = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        with self._reading() as m:
            gen = generation(m)
            if filters:
                return self._dense_filtered(q, k, filters, gen)
            if self._index_gen != gen:
                self._load_vectors(m)
            sg.single_thread()
            return sg.search(
                self._loaded, self._segs, q, k, lambda rows: sql.chunks_by_row(self._db, rows, gen)
            )

    def _dense_filtered(
        self, q: np.ndarray, k: int, filters: Filters, gen: int
    ) -> list[tuple[StoredChunk, float]]:
        # Exact scores over the allowed chunks: filters narrow the set, so this stays cheap.
        cond, params = sql.filter_sql(filters)
        rows = sql.row_vectors(self._db, gen, cond, params)
        if not rows:
            return []
        best = sg.exact(rows, q, k)
        found = sql.chunks_by_row(self._db, [row for row, _ in best], gen)
        return [(found[row][0], score) for row, score in best if row in found]

    def search_lexical(
        self, query: str, k: int, filters: Filters | None = None
    ) -> list[tuple[StoredChunk, float]]:
        match = sql.fts_query(query)
        if not match:
            return []
        with self._reading() as m:
            return sql.lexical(self._db, match, generation(m), k, filters)

    def vectors(self, chunk_ids: list[str]) -> np.ndarray:
        with self._reading() as m:
            got = sql.vectors(self._db, generation(m), chunk_ids)
        return np.stack([got[c] for c in chunk_ids]) if chunk_ids else np.zeros((0, 0), np.float32)

    # ----------------------------------------------------------------------------- writes

    @contextlib.contextmanager
    def _writer_lock(self) -> Iterator[None]:
        """The single-writer lock: a second `rag index` is told so at once."""
        with flock(self.path / "write.lock", EXCLUSIVE, wait=0) as got:
            if not got:
                raise RagError(
                    f"{self.path}: another `rag index` is writing this index; "
                    "wait for it to finish and run again"
                )
            with self._db:
                self._db.executescript(sql.SCHEMA)  # indexes added since this store was created
            yield

    def _drop_uncommitted(self, gen: int) -> None:
        sql.drop_above(self._db, gen)
        sg.drop_above(self.path, gen)

    def _write_generation(
        self, changes: Changes, gen: int, old: Manifest | None, manifest: Manifest
    ) -> dict[str, Any]:
        """Rows go to SQLite in one transaction, the added vectors to one new segment; only a
        merge (see `segments.merge_from`) reads vectors back, those of the segments it merges."""
        with self._db:
            if changes.files is not None:
                sql.write_files(self._db, changes.files, gen)
            removed = sql.mark_removed(self._db, changes.removed, gen)
            rows, vecs = sql.insert_added(self._db, changes, gen)
            crash_point("sqlite-uncommitted")
        crash_point("sqlite-committed")
        segs = sg.segments(old) if old else []
        for _, born in removed:
            sg.segment_of(segs, born)["removed"] += 1
        index = self._write_vectors(segs, rows, vecs, gen, manifest)
        # Keep what is in memory and still listed, and the new segment, tuned as a reader's is;
        # the next search checks the counts against SQLite before it uses them.
        keep = {seg["file"] for seg in segs}
        self._loaded = {f: ix for f, ix in self._loaded.items() if f in keep}
        if index is not None:
            self._loaded[segs[-1]["file"]] = sg.tuned(index)
        self._index_gen = None
        live = int((old or {}).get("counts", {}).get("chunks", 0)) + len(rows) - len(removed)
        counts = {**manifest.get("counts", {}), "chunks": live}
        return {"segments": segs, "counts": counts, "faiss_file": None}

    def _write_vectors(
        self, segs: list[sg.Segment], rows: list[int], vecs: list[np.ndarray], gen: int, manifest: Manifest
    ) -> Any:
        """Add generation `gen`'s vectors to `segs`, merging where the policy says (reading the
        merged rows back from SQLite); returns the FAISS index written, or None."""

        def read(first: int, expect: int) -> list[tuple[int, bytes]]:
            rows_vecs = sql.vectors_since(self._db, first, gen)
            if len(rows_vecs) != expect:
                raise IndexCorrupt(
                    f"{self.path / DB}: holds {len(rows_vecs)} chunks where the segments have {expect} "
                    "vectors; run `rag index --rebuild`"
                )
            return rows_vecs

        kind, dim = manifest["index_kind"], int(manifest["embedder"]["dimension"])
        return sg.add_generation(segs, rows, vecs, gen, kind, dim, read, self.path)

    def _publish(self, manifest: Manifest) -> None:
        write_atomic(self.path / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))

    def _cleanup(self, manifest: Manifest) -> None:
        """Delete rows no generation from `manifest`'s on can see, and segment files it does not
        list, once readers have moved on."""
        with flock(self.path / "read.lock", EXCLUSIVE, wait=10) as got:
            if not got:
                return  # a reader is slow; the next build cleans up
            sql.delete_removed(self._db, generation(manifest))
            sg.drop_unlisted(self.path, manifest)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()
