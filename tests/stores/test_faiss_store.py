"""The FAISS store's vector segments: updates write only what changed, and search stays exact."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from rag.chunk import Chunk
from rag.ingest import Article
from rag.stores import Changes, Filters
from rag.stores.faiss import FaissStore
from rag.stores.faiss.segments import merge_from as _merge_from

DIM = 16


def _article(n: int, chunks: int, rng: np.random.Generator, tag: str = "a", words: str = ""):
    url = f"https://example.com/{tag}/{n}"
    bodies = [f"body {tag} {n} part {o} {words}" for o in range(chunks)]
    art = Article(
        url=url,
        title=f"Article {tag} {n}",
        publication="Test Weekly",
        published="2024-01-01",
        fetched=None,
        text="\n\n".join(bodies),
        member_only=False,
        source_file="test.md",
        source_line=1,
    )
    chs = [
        Chunk(
            id=f"{tag}-{n}-{o}",
            article_id=art.id,
            url=url,
            title=art.title,
            heading="",
            start=0,
            end=len(b),
            text=b,
            ord=o,
        )
        for o, b in enumerate(bodies)
    ]
    vecs = rng.standard_normal((chunks, DIM)).astype(np.float32)
    return art, chs, vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def _commit(store: FaissStore, added=(), removed=(), kind: str = "flat") -> None:
    manifest = {"embedder": {"name": "test", "dimension": DIM}, "index_kind": kind, "counts": {}}
    with store.writing():
        store.commit(Changes(added=list(added), removed=list(removed)), manifest)


def _exact(store: FaissStore, q: np.ndarray, k: int) -> list[str]:
    """Brute force over every visible chunk's stored vector."""
    ids = [c.chunk_id for c in store.all_chunks()]
    scores = store.vectors(ids) @ q
    return [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


def _segments(path: Path) -> list[dict]:
    return json.loads((path / "manifest.json").read_text())["segments"]


def test_dense_search_stays_exact_over_many_small_updates(tmp_path):
    rng = np.random.default_rng(0)
    store = FaissStore(tmp_path / "i", create=True)
    _commit(store, [_article(i, 5, rng) for i in range(40)])
    live = list(range(40))
    nxt = 40
    for step in range(60):
        new = [_article(nxt + j, int(rng.integers(1, 6)), rng) for j in range(int(rng.integers(0, 3)))]
        gone = [live.pop(int(rng.integers(len(live)))) for _ in range(int(rng.integers(0, 3)))]
        if step % 7 == 0:  # a re-scrape: the same article (id) comes back with new content
            art, chs, vecs = _article(live[0], 4, rng)
            new.append((art, [replace(c, id=f"{c.id}-v{step}") for c in chs], vecs))
            gone.append(live[0])
        _commit(store, new, [_article(g, 1, rng)[0].id for g in gone])
        live += [int(a.url.rsplit("/", 1)[1]) for a, _, _ in new if int(a.url.rsplit("/", 1)[1]) >= nxt]
        nxt = max(live) + 1
        for q in rng.standard_normal((3, DIM)).astype(np.float32):
            got = [c.chunk_id for c, _ in store.search_dense(q, 8)]
            assert got == _exact(store, q, 8)
        segs = _segments(store.path)
        assert {p.name for p in store.path.glob("vectors-*.faiss")} == {s["file"] for s in segs}
        assert len(segs) <= 2 * math.log2(store.chunk_count()) + 1
    assert {a.url.rsplit("/", 1)[1] for a in store.articles()} == {str(i) for i in live}


def test_an_update_writes_only_the_new_vectors(tmp_path):
    rng = np.random.default_rng(1)
    store = FaissStore(tmp_path / "i", create=True)
    _commit(store, [_article(i, 10, rng) for i in range(100)])
    base = tmp_path / "i" / _segments(tmp_path / "i")[0]["file"]
    before = base.stat()
    _commit(store, [_article(100, 10, rng)])
    segs = _segments(tmp_path / "i")
    assert [s["vectors"] for s in segs] == [1000, 10]
    after = base.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    q = rng.standard_normal(DIM).astype(np.float32)
    assert [c.chunk_id for c, _ in store.search_dense(q, 10)] == _exact(store, q, 10)


def test_a_row_id_reused_by_sqlite_never_returns_the_removed_vector(tmp_path):
    rng = np.random.default_rng(2)
    store = FaissStore(tmp_path / "i", create=True)
    _commit(store, [_article(i, 3, rng) for i in range(20)])
    big, small = _article(20, 8, rng), _article(21, 2, rng)
    _commit(store, [big, small])  # rows 61-70: the small article holds the two highest
    _commit(store, removed=[small[0].id])  # 2 of 10 vectors: kept in the segment as tombstones
    assert _segments(tmp_path / "i")[1]["removed"] == 2
    newer = _article(22, 2, rng)
    _commit(store, [newer])  # SQLite gives the new chunks the freed row ids 69 and 70
    for q in small[2]:  # the removed vectors, still in the older segment under ids now reused
        hits = store.search_dense(q, 5)
        assert [c.chunk_id for c, _ in hits] == _exact(store, q, 5)
        assert all(not c.chunk_id.startswith("a-21-") for c, _ in hits)
        scores = dict((c.chunk_id, s) for c, s in hits)
        for c, v in zip(newer[1], newer[2], strict=True):
            if c.id in scores:
                assert math.isclose(scores[c.id], float(v @ q), rel_tol=1e-5, abs_tol=1e-6)


def test_approximate_first_segment_takes_flat_updates_and_is_tuned_in_the_committing_process(tmp_path):
    import faiss

    rng = np.random.default_rng(3)
    store = FaissStore(tmp_path / "i", create=True)
    _commit(store, [_article(i, 10, rng) for i in range(50)], kind="hnsw")
    first = _segments(tmp_path / "i")[0]
    assert first["kind"] == "hnsw"
    inner = faiss.downcast_index(store.segment_indexes()[0].index)
    assert inner.hnsw.efSearch == 256  # not FAISS's default of 16
    _commit(store, [_article(50, 10, rng)], kind="hnsw")
    assert [s["kind"] for s in _segments(tmp_path / "i")] == ["hnsw", "flat"]
    q = store.vectors(["a-50-3"])[0]
    assert store.search_dense(q, 1)[0][0].chunk_id == "a-50-3"
    _commit(store, [_article(51 + i, 10, rng) for i in range(5)], kind="hnsw")  # a tenth: rebuild
    assert [s["kind"] for s in _segments(tmp_path / "i")] == ["hnsw"]
    _commit(store, kind="flat")  # another kind: one rebuilt segment of that kind
    assert [s["kind"] for s in _segments(tmp_path / "i")] == ["flat"]


def test_an_index_written_before_segments_is_read_and_updated(tmp_path):
    rng = np.random.default_rng(4)
    path = tmp_path / "i"
    store = FaissStore(path, create=True)
    _commit(store, [_article(i, 4, rng) for i in range(30)])
    m = json.loads((path / "manifest.json").read_text())
    m["faiss_file"] = m.pop("segments")[0]["file"]
    (path / "manifest.json").write_text(json.dumps(m))
    store = FaissStore(path)
    q = rng.standard_normal(DIM).astype(np.float32)
    assert [c.chunk_id for c, _ in store.search_dense(q, 6)] == _exact(store, q, 6)
    _commit(store, [_article(30, 4, rng)], removed=[_article(0, 1, rng)[0].id])
    assert [s["vectors"] for s in _segments(path)] == [120, 4]
    assert [c.chunk_id for c, _ in store.search_dense(q, 6)] == _exact(store, q, 6)


def test_merges_keep_segments_logarithmic_and_rewrites_proportional():
    """10,000 updates of 10 vectors to a flat store of 100,000: few segments, little rewriting."""
    segs = [{"kind": "flat", "vectors": 100_000, "removed": 0}]
    rewritten = 0
    for _ in range(10_000):
        segs.append({"kind": "flat", "vectors": 10, "removed": 0})
        start = _merge_from(segs, "flat")
        if start is not None:
            n = sum(s["vectors"] for s in segs[start:])
            rewritten += n
            segs[start:] = [{"kind": "flat", "vectors": n, "removed": 0}]
        assert len(segs) <= 2 + math.log2(sum(s["vectors"] for s in segs) / 10)
    assert rewritten <= 100_000 * math.log2(200_000 / 10)


def test_bm25_skips_rows_of_a_build_in_progress_and_still_returns_k(tmp_path):
    rng = np.random.default_rng(5)
    store = FaissStore(tmp_path / "i", create=True)
    _commit(store, [_article(i, 2, rng, words="zebra" if i % 3 == 0 else "") for i in range(30)])
    gen = store.manifest()["generation"]
    # A build under way has written rows that match better, under a generation not yet committed.
    with store.connection:
        arow = store.connection.execute(
            "INSERT INTO articles (article_id, gen_added, url, title, publication, member_only, "
            "content_hash, aliases, text, source_file) VALUES ('x', ?, 'u', 't', 'p', 0, 'h', '[]', '', 'f')",
            (gen + 1,),
        ).lastrowid
        for o in range(40):
            row = store.connection.execute(
                'INSERT INTO chunks (chunk_id, article_row, gen_added, heading, start, "end", ord, text, '
                "vector) VALUES (?, ?, ?, '', 0, 1, ?, 'zebra zebra zebra', x'00')",
                (f"pending-{o}", arow, gen + 1, o),
            ).lastrowid
            store.connection.execute(
                "INSERT INTO chunks_fts (rowid, title, heading, text) "
                "VALUES (?, 't', '', 'zebra zebra zebra')",
                (row,),
            )
    hits = store.search_lexical("zebra", 5)
    assert len(hits) == 5 and all("zebra" in c.text and c.chunk_id.startswith("a-") for c, _ in hits)
    assert len(store.search_lexical("zebra", 50)) == 20  # every visible match, none pending


def test_an_index_written_before_authors_is_read_and_then_keeps_them(tmp_path):
    import sqlite3

    rng = np.random.default_rng(5)
    path = tmp_path / "i"
    store = FaissStore(path, create=True)
    _commit(store, [_article(i, 2, rng) for i in range(3)])
    store.close()
    with sqlite3.connect(path / "chunks.sqlite") as db:  # as an older rag wrote it
        db.execute("ALTER TABLE articles DROP COLUMN author")
    store = FaissStore(path)
    assert [a.author for a in store.articles()] == [None] * 3
    assert all(c.author is None for c in store.all_chunks())
    art, chs, vecs = _article(9, 2, rng)
    _commit(store, [(replace(art, author="Ann Lee"), chs, vecs)])
    assert [c.url for c, _ in store.search_lexical("body", 10, Filters(author="ann"))] == [art.url] * 2
