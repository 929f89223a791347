"""Scaling benchmark (not a test) of the default store (FAISS + SQLite/FTS5); writes bench/SCALE.md.

    nice -n 10 .venv/bin/python -m bench.scale --budget 4200   # everything (~60 min on 2 cores)
    nice -n 10 .venv/bin/python -m bench.scale --quick         # smoke run on tiny sizes
    python -m bench.scale --parts ann --ann-json ann.json      # part 4 alone (~12 min), and then
    python -m bench.scale --parts small,updates,large --ann-from ann.json   # the rest, reporting both

What it measures, all in one process on synthetic data:

1. Warm query latency (p50/p95) of `Retriever.search` for dense, bm25 and hybrid retrieval on
   stores of 100k (flat, HNSW, IVF) and 1M chunks (flat, HNSW), recall@10 of HNSW/IVF against
   flat on the same queries, and where BM25 time goes at 1M. Query embedding is excluded: a fake
   query embedder hands back a fixed random unit vector per query.
2. The time of `index_articles` adding one new article (10 chunks) to stores of 1k and 10k
   articles (flat), with a fake document embedder, and of the store's commit alone; a cProfile
   of one 10k run.
3. Disk size of every index folder.
4. FAISS alone, one thread: exact search at 100k to 1M vectors, HNSW and IVF at 1M, recall@10,
   an efSearch sweep; the data behind `index.approximate_above`.

Synthetic data: 384-d float32 unit vectors drawn from a mixture of 1000 Gaussian clusters, and
chunk text of 60 made-up words (a few thousand word vocabulary, Zipf-distributed). Stores for
part 1 are written with `FaissStore.commit` directly (10 chunks per article), not through the
embedder. Steps that would not fit the time budget are skipped and listed in the report.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, fmt
from rag.assembly import open_retriever
from rag.chunk import Chunk, chunk_id
from rag.config import load_settings
from rag.index import identity, index_articles
from rag.ingest import Article
from rag.retrieve import Retriever
from rag.stores import Changes
from rag.stores.faiss import FaissStore
from rag.stores.faiss.segments import new_index
from rag.text import STOPWORDS as _STOPWORDS

DIM = 384
CLUSTERS = 1000
SIGMA = 0.05  # per-dimension noise around a cluster centre (noise norm ~ 0.98 vs centre norm 1)
VOCAB = 5000
ZIPF_S = 1.0
WORDS_PER_CHUNK = 60
CHUNKS_PER_ARTICLE = 10
T_START = time.perf_counter()


def log(msg: str) -> None:
    el = time.perf_counter() - T_START
    print(f"[{el:7.1f}s rss {rss_mb():6.0f} MB] {msg}", flush=True)


def size_label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def elapsed() -> float:
    return time.perf_counter() - T_START


def folder_size(path: Path) -> dict[str, int]:
    sizes = {f.name: f.stat().st_size for f in path.iterdir() if f.is_file()}
    sizes["total"] = sum(sizes.values())
    return sizes


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 2**10:,.0f} KB"


# ------------------------------------------------------------------------------- synthetic data


class Synth:
    """Deterministic generator of clustered unit vectors and Zipf text."""

    def __init__(self, seed: int = 1234) -> None:
        rng = np.random.default_rng(seed)
        c = rng.standard_normal((CLUSTERS, DIM)).astype(np.float32)
        self.centres = c / np.linalg.norm(c, axis=1, keepdims=True)
        cons, vows = "bdfgklmnprstvz", "aeiou"
        words: set[str] = set()
        while len(words) < VOCAB:
            k = int(rng.integers(2, 4))
            w = "".join(cons[rng.integers(len(cons))] + vows[rng.integers(len(vows))] for _ in range(k))
            if w not in _STOPWORDS:
                words.add(w)
        vocab = sorted(words)
        rng.shuffle(vocab)
        self.vocab = np.array(vocab, dtype=object)
        self.vocab_cap = np.array([w.capitalize() for w in vocab], dtype=object)
        p = 1.0 / np.arange(1, VOCAB + 1) ** ZIPF_S
        self.cdf = np.cumsum(p / p.sum())
        # query terms skip the 100 most frequent words: they play the part of function words,
        # which the real query path drops as stopwords
        q = p.copy()
        q[:100] = 0
        self.qcdf = np.cumsum(q / q.sum())

    def vectors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        out = np.empty((n, DIM), dtype=np.float32)
        for s in range(0, n, 50_000):
            m = min(50_000, n - s)
            v = self.centres[rng.integers(0, CLUSTERS, m)]
            v += SIGMA * rng.standard_normal((m, DIM), dtype=np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            out[s : s + m] = v
        return out

    def texts(self, n: int, rng: np.random.Generator, words: int = WORDS_PER_CHUNK) -> list[str]:
        idx = np.searchsorted(self.cdf, rng.random((n, words)))
        idx = np.minimum(idx, VOCAB - 1)
        out = []
        for row in idx:
            sents = []
            for s in range(0, words, 12):
                part = row[s : s + 12]
                sents.append(self.vocab_cap[part[0]] + " " + " ".join(self.vocab[part[1:]]) + ".")
            out.append(" ".join(sents))
        return out

    def title(self, rng: np.random.Generator) -> str:
        idx = np.minimum(np.searchsorted(self.cdf, rng.random(3)), VOCAB - 1)
        return " ".join(w.capitalize() for w in self.vocab[idx])

    def queries(self, n: int, rng: np.random.Generator, terms: int = 4) -> list[str]:
        seen: set[str] = set()
        out = []
        while len(out) < n:
            idx = np.minimum(np.searchsorted(self.qcdf, rng.random(terms)), VOCAB - 1)
            q = " ".join(self.vocab[idx])
            if q not in seen:
                seen.add(q)
                out.append(q)
        return out

    def article(
        self, a: int, rng: np.random.Generator, bodies: list[str], tag: str = "a"
    ) -> tuple[Article, list[Chunk]]:
        """One article of len(bodies) sections, each `## Section k` + one body = one chunk."""
        url = f"https://synthetic.example/{tag}/{a}"
        title = self.title(rng)
        pieces, spans, pos = [], [], 0
        for o, body in enumerate(bodies):
            head = f"## Section {o + 1}\n\n"
            pos += len(head)
            spans.append((pos, pos + len(body)))
            pieces.append(head + body + "\n\n")
            pos += len(body) + 2
        art = Article(
            url=url,
            title=title,
            publication=f"Synthetic Weekly {a % 20}",
            published=f"20{10 + a % 15:02d}-{1 + a % 12:02d}-{1 + a % 28:02d}T00:00:00Z",
            fetched="2025-01-01T00:00:00Z",
            text="".join(pieces),
            member_only=False,
            source_file="synthetic.md",
            source_line=1,
        )
        aid = art.id
        chunks = [
            Chunk(
                id=chunk_id(url, f"{title} > Section {o + 1}\n{body}"),
                article_id=aid,
                url=url,
                title=title,
                heading=f"Section {o + 1}",
                start=s,
                end=e,
                text=body,
                ord=o,
            )
            for o, (body, (s, e)) in enumerate(zip(bodies, spans, strict=True))
        ]
        return art, chunks

    def changes(self, first_article: int, n_articles: int, seed: int) -> Changes:
        rng = np.random.default_rng(seed)
        n = n_articles * CHUNKS_PER_ARTICLE
        vecs = self.vectors(n, rng)
        texts = self.texts(n, rng)
        ch = Changes()
        for i in range(n_articles):
            s = i * CHUNKS_PER_ARTICLE
            art, chunks = self.article(first_article + i, rng, texts[s : s + CHUNKS_PER_ARTICLE])
            ch.added.append((art, chunks, vecs[s : s + CHUNKS_PER_ARTICLE]))
        return ch


class FakeQueryEmbedder:
    """A fixed random unit vector per query string: query embedding time is excluded."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.v = vectors

    def embed(self, texts: list[str], progress: Any = None) -> np.ndarray:
        return np.stack([self.v[t] for t in texts])


class FakeDocEmbedder:
    name = "fake"
    dimension = DIM

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)

    def embed(self, texts: list[str], progress: Any = None) -> np.ndarray:
        v = self.rng.standard_normal((len(texts), DIM)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


# ------------------------------------------------------------------------------- part 1: queries


def store_manifest(settings: Any, kind: str, articles: int, chunks: int) -> dict[str, Any]:
    return {
        **identity(settings),
        "index_kind": kind,
        "counts": {"articles": articles, "chunks": chunks},
        "query_embedder": "none",
    }


def reopen(store: FaissStore, path: Path, res: dict, key: tuple) -> FaissStore:
    """Close and reopen the store, as a reader process would, and time the first query's load."""
    store.close()
    store.release_vectors()  # free the old FAISS indexes now, even while callers still hold the object
    del store
    gc.collect()
    store = FaissStore(path)
    t = time.perf_counter()
    store.search_dense(np.ones(DIM, dtype=np.float32) / DIM**0.5, 1)  # reads the segments
    res.setdefault("load_s", {})[key] = time.perf_counter() - t
    return store


def the_index(store: FaissStore) -> Any:
    """The store's FAISS index, loaded and search-tuned; flat segments are joined into one."""
    import faiss

    m = store.manifest()
    assert m is not None
    indexes = store.segment_indexes()
    if len(indexes) == 1:
        return indexes[0]
    assert all(seg["kind"] == "flat" and seg["removed"] == 0 for seg in m["segments"]), m
    union = new_index("flat", DIM, 0)
    for idx in indexes:
        inner = faiss.downcast_index(idx.index)
        xb = faiss.rev_swig_ptr(inner.get_xb(), inner.ntotal * DIM).reshape(inner.ntotal, DIM)
        union.add_with_ids(np.array(xb), faiss.vector_to_array(idx.id_map).astype(np.int64))
    return union


def commit(store: FaissStore, changes: Changes, manifest: dict[str, Any]) -> float:
    t = time.perf_counter()
    with store.writing():
        store.commit(changes, manifest)
    return time.perf_counter() - t


def run_queries(
    retr: Retriever, queries: list[str], warm: list[str], mode: str, passes: int
) -> tuple[list[float], list[float], list[list[str]]]:
    """p50s and p95s (ms) of each pass, and the chunk ids of the last pass."""
    for q in warm:
        retr.search(q, retriever=mode)
    p50s, p95s, ids = [], [], []
    for _ in range(passes):
        lat, ids = [], []
        for q in queries:
            t = time.perf_counter()
            hits = retr.search(q, retriever=mode)
            lat.append((time.perf_counter() - t) * 1e3)
            ids.append([h.chunk.chunk_id for h in hits])
        p50s.append(float(np.percentile(lat, 50)))
        p95s.append(float(np.percentile(lat, 95)))
    return p50s, p95s, ids


def faiss_search_lat(
    index: Any, qv: np.ndarray, warmv: np.ndarray, threads: int
) -> tuple[list[float], list[list[int]]]:
    """FAISS alone: one `search` per query vector (k=10) with `threads` OpenMP threads."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        for v in warmv:
            index.search(v[None], 10)
        lat, got = [], []
        for i in range(len(qv)):
            t = time.perf_counter()
            _, found = index.search(qv[i : i + 1], 10)
            lat.append((time.perf_counter() - t) * 1e3)
            got.append([int(x) for x in found[0]])
    finally:
        faiss.omp_set_num_threads(before)
    return lat, got


def faiss_both(
    index: Any, res: dict, qs: list[str], warm: list[str], key: tuple[int, str]
) -> tuple[list[float], list[list[int]]]:
    """FAISS-alone latency with FAISS's default thread count and with one thread."""
    qv = np.stack([res["qvec"][q] for q in qs]).astype(np.float32)
    wv = np.stack([res["qvec"][q] for q in warm]).astype(np.float32)
    default = res["omp_default"]
    lat, got = faiss_search_lat(index, qv, wv, default)
    res["faiss_only"][(*key, default)] = lat
    lat1, _ = faiss_search_lat(index, qv, wv, 1)
    res["faiss_only"][(*key, 1)] = lat1
    log(
        f"  faiss alone {key[1]} {key[0]:,}: p50 {np.percentile(lat, 50):.2f} ms with {default} threads, "
        f"{np.percentile(lat1, 50):.2f} ms with 1"
    )
    return lat, got


def recall_at_10(exact: list[list[Any]], approx: list[list[Any]]) -> float:
    r = [len(set(a[:10]) & set(e[:10])) / max(1, len(e[:10])) for e, a in zip(exact, approx, strict=True)]
    return float(np.mean(r))


def measure_store(
    store: FaissStore, settings: Any, qs: list[str], warm: list[str], passes: int, res: dict, key: str
) -> dict[str, list[list[str]]]:
    # a fresh Retriever on the same store object: the FAISS index is already loaded (warm)
    emb = FakeQueryEmbedder(res["qvec"])
    retr = open_retriever(settings, store=store, embedder=emb)
    out = {}
    for mode in ("dense", "bm25", "hybrid"):
        p50, p95, ids = run_queries(retr, qs, warm, mode, passes)
        res["latency"][(key, mode)] = (p50, p95)
        log(
            f"  {key:>10} {mode:>6}: p50 {fmt(p50, digits=2)} ms, p95 {fmt(p95, digits=2)} ms "
            f"({passes} pass(es))"
        )
        out[mode] = ids
    return out


# ------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    ap.add_argument("--budget", type=float, default=24 * 60, help="seconds; later steps are skipped past it")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "SCALE.md")
    ap.add_argument(
        "--parts",
        default="small,updates,large,ann",
        help="comma list of parts to run: small (part 1 at 100k), updates (part 2), large (part 1 at 1M, "
        "needs small), ann (part 4: FAISS alone, exact vs approximate by size)",
    )
    ap.add_argument("--ann-json", type=Path, help="save part 4's results here (JSON)")
    ap.add_argument("--ann-from", type=Path, help="report part 4 from this JSON instead of running it")
    ap.add_argument("--dump", type=Path, help="also save the raw results here (pickle, for re-reporting)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))

    if args.quick:
        small, large, nq, nwarm, passes = 5_000, 20_000, 40, 5, 2
        upd_sizes, upd_repeats, batch = (100, 300), 3, 5_000
        ann_sizes = (2_000, 5_000, 10_000, 20_000)
    else:
        small, large, nq, nwarm, passes = 100_000, 1_000_000, 200, 20, 3
        upd_sizes, upd_repeats, batch = (1_000, 10_000), 5, 225_000
        ann_sizes = (100_000, 200_000, 300_000, 500_000, 1_000_000)
    budget = args.budget

    settings = load_settings(environ={})
    synth = Synth()
    qrng = np.random.default_rng(99)
    qs = synth.queries(nq + nwarm, qrng)
    qvecs = synth.vectors(nq + nwarm, qrng)
    warm, qs = qs[:nwarm], qs[nwarm:]
    res: dict[str, Any] = {
        "qvec": dict(zip(warm + qs, qvecs, strict=True)),
        "latency": {},
        "recall": {},
        "build": {},
        "disk": {},
        "skipped": [],
        "faiss_only": {},
        "omp_default": __import__("faiss").omp_get_max_threads(),
        "notes": [],
    }
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="rag-scale-", dir="/tmp"))
    log(f"temporary folder {tmp}; load average {load0}")
    upd: dict[str, Any] = {}
    try:
        if "ann" in parts and args.ann_from is None:
            run_ann(synth, qs, warm, ann_sizes, passes, res)
            if args.ann_json:
                args.ann_json.write_text(json.dumps(res["ann"], indent=1), encoding="utf-8")
        elif args.ann_from is not None:
            res["ann"] = json.loads(args.ann_from.read_text(encoding="utf-8"))
        if "updates" in parts:
            upd = run_updates(synth, settings, tmp, upd_sizes, upd_repeats, res)
        if "small" in parts:
            run_small_and_large(
                synth, settings, qs, warm, small, large, passes, batch, budget, res, tmp, parts
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"removed {tmp}")
    res["load"] = (load0, os.getloadavg())
    res["nice"] = os.nice(0)
    res["peak_rss"] = rss_mb()
    if args.dump:  # the raw results, to write the report again without measuring
        import pickle

        args.dump.write_bytes(pickle.dumps((res, upd)))
    write_report(args.out, res, small, large, nq, nwarm, passes, upd, upd_sizes, upd_repeats, args.quick)
    log(f"wrote {args.out}")


def run_small_and_large(
    synth: Synth,
    settings: Any,
    qs: list[str],
    warm: list[str],
    small: int,
    large: int,
    passes: int,
    batch: int,
    budget: float,
    res: dict,
    tmp: Path,
    parts: set[str],
) -> None:
    # ---------------------------------------------------------------- part 1 at `small`
    path = tmp / "q"
    store = FaissStore(path, create=True)
    t = time.perf_counter()
    ch = synth.changes(0, small // CHUNKS_PER_ARTICLE, seed=1000)
    gen_s = res["gen_s"] = time.perf_counter() - t
    log(f"generated {small:,} synthetic chunks in {gen_s:.1f}s; committing (flat)")
    sec = commit(store, ch, store_manifest(settings, "flat", small // CHUNKS_PER_ARTICLE, small))
    del ch
    gc.collect()
    res["build"][(small, "flat")] = sec
    log(f"committed {small:,} chunks (SQLite + FTS5 + flat FAISS) in {sec:.1f}s")
    res["disk"][(small, "flat")] = folder_size(path)
    store = reopen(store, path, res, (small, "flat"))
    exact = measure_store(store, settings, qs, warm, passes, res, f"{size_label(small)} flat")
    faiss_both(the_index(store), res, qs, warm, (small, "flat"))
    res["stale"] = {}
    for kind in ("hnsw", "ivf"):
        sec = commit(store, Changes(), store_manifest(settings, kind, small // 10, small))
        res["build"][(small, kind)] = sec
        log(f"rebuilt the {small:,}-chunk index as {kind} (commit from SQLite) in {sec:.1f}s")
        res["disk"][(small, kind)] = folder_size(path)
        # the process that committed keeps the index it built, with FAISS's default search
        # parameters: measure that once (dense only), then reopen as a reader would
        retr = open_retriever(settings, store=store, embedder=FakeQueryEmbedder(res["qvec"]))
        stale = [[h.chunk.chunk_id for h in retr.search(q, retriever="dense")] for q in qs]
        inner = __import__("faiss").downcast_index(store.segment_indexes()[0].index)
        params = f"efSearch={inner.hnsw.efSearch}" if kind == "hnsw" else f"nprobe={inner.nprobe}"
        res["stale"][(small, kind)] = (recall_at_10(exact["dense"], stale), params)
        log(f"  recall@10 {kind} in the committing process ({params}): {res['stale'][small, kind][0]:.3f}")
        store = reopen(store, path, res, (small, kind))
        got = measure_store(store, settings, qs, warm, passes, res, f"{size_label(small)} {kind}")
        faiss_both(the_index(store), res, qs, warm, (small, kind))
        res["recall"][(small, kind)] = recall_at_10(exact["dense"], got["dense"])
        res["recall_hybrid"] = res.get("recall_hybrid", {})
        res["recall_hybrid"][(small, kind)] = recall_at_10(exact["hybrid"], got["hybrid"])
        log(f"  recall@10 {kind} vs flat: dense {res['recall'][(small, kind)]:.3f}")
    # back to flat, kept for the 1M extension below
    sec = commit(store, Changes(), store_manifest(settings, "flat", small // 10, small))
    log(f"rebuilt as flat again in {sec:.1f}s")

    # ---------------------------------------------------------------- part 1 at `large`
    if "large" in parts:
        store = run_large(store, synth, settings, qs, warm, small, large, batch, budget, res, path)
    store.close()


def run_updates(
    synth: Synth, settings: Any, tmp: Path, sizes: tuple[int, ...], repeats: int, res: dict
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    emb = FakeDocEmbedder()
    for n in sizes:
        rng = np.random.default_rng(5000 + n)
        path = tmp / f"upd-{n}"
        texts = synth.texts(n * CHUNKS_PER_ARTICLE, rng)
        arts = [synth.article(i, rng, texts[i * 10 : i * 10 + 10], tag=f"u{n}")[0] for i in range(n)]
        del texts
        t = time.perf_counter()
        rep = index_articles(arts, settings, path, embedder=emb, export_query_model=False)
        base_s = time.perf_counter() - t
        assert rep.index_kind == "flat", rep
        log(
            f"update base: {n:,} articles -> {rep.chunks:,} chunks ({rep.chunks / n:.2f}/article), "
            f"built through index_articles in {base_s:.1f}s"
        )
        times = []
        new_chunks = []
        for r in range(repeats + 1):
            art = synth.article(r, rng, synth.texts(CHUNKS_PER_ARTICLE, rng), tag=f"new{n}")[0]
            arts.append(art)
            if r == repeats:  # one extra run under cProfile, not timed
                if n == max(sizes):
                    prof = cProfile.Profile()
                    prof.enable()
                    t = time.perf_counter()
                    rep = index_articles(arts, settings, path, embedder=emb, export_query_model=False)
                    prof_s = time.perf_counter() - t
                    prof.disable()
                    s = io.StringIO()
                    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(25)
                    out["profile"] = s.getvalue()
                    out["breakdown"] = profile_breakdown(prof)
                    out["profile_s"] = prof_s
                    s2 = io.StringIO()
                    pstats.Stats(prof, stream=s2).sort_stats("tottime").print_stats(12)
                    out["profile_tottime"] = s2.getvalue()
                break
            t = time.perf_counter()
            rep = index_articles(arts, settings, path, embedder=emb, export_query_model=False)
            times.append(time.perf_counter() - t)
            assert rep.added == 1 and rep.removed == 0 and rep.index_kind == "flat", rep
            new_chunks.append(rep.embedded_chunks)
            log(f"  +1 article ({rep.embedded_chunks} chunks) to {n:,}+{r}: {times[-1]:.3f}s")
        # the store's share: open, lock and recover, commit one article (10 chunks), clean up
        store_times = []
        for r in range(repeats):
            art, chunks = synth.article(r, rng, synth.texts(CHUNKS_PER_ARTICLE, rng), tag=f"direct{n}")
            vecs = emb.embed([c.text for c in chunks])
            t = time.perf_counter()
            store = FaissStore(path)
            with store.writing():
                store.commit(Changes(added=[(art, chunks, vecs)]), dict(store.manifest() or {}))
            store.close()
            store_times.append(time.perf_counter() - t)
        log(f"  store commit alone at {n:,}: {fmt(store_times, digits=3)}s")
        segs = json.loads((path / "manifest.json").read_text())["segments"]
        out[n] = {
            "times": times,
            "base_s": base_s,
            "chunks": rep.chunks,
            "new_chunks": new_chunks,
            "store_times": store_times,
            "segments": [s["vectors"] for s in segs],
        }
        res["disk"][(f"update-{n}", "flat")] = folder_size(path)
        shutil.rmtree(path, ignore_errors=True)
    return out


def run_large(
    store: FaissStore,
    synth: Synth,
    settings: Any,
    qs: list[str],
    warm: list[str],
    small: int,
    large: int,
    batch: int,
    budget: float,
    res: dict,
    path: Path,
) -> FaissStore:

    # growing the flat store (generation + commits), then one pass of queries at ~10x the small
    # flat latencies; skip when that cannot fit
    rate = (res["build"][(small, "flat")] + res["gen_s"]) / small
    q_est = (
        sum(
            10 * statistics.median(res["latency"][(f"{size_label(small)} flat", m)][0])
            for m in ("dense", "bm25", "hybrid")
        )
        * len(qs)
        / 1e3
    )
    need = rate * (large - small) * 1.5 + q_est + 60
    log(f"estimated time for the {large:,}-chunk store: {need / 60:.1f} min")
    if elapsed() + need > budget:
        res["skipped"].append(
            f"the {large:,}-chunk store: growing and querying it would take ~{need / 60:.0f} min more, "
            "past the budget"
        )
        log(res["skipped"][-1])
        return store
    n, a, b = small, small // CHUNKS_PER_ARTICLE, 0
    t_total = time.perf_counter()
    commit_s = 0.0
    while n < large:
        m = min(batch, large - n)
        ch = synth.changes(a, m // CHUNKS_PER_ARTICLE, seed=2000 + b)
        sec = commit(store, ch, store_manifest(settings, "flat", (n + m) // 10, n + m))
        commit_s += sec
        del ch
        gc.collect()
        n, a, b = n + m, a + m // CHUNKS_PER_ARTICLE, b + 1
        log(f"grew the store to {n:,} chunks (this commit {sec:.1f}s)")
    res["build"][(large, "flat")] = commit_s
    res["build_large_wall"] = time.perf_counter() - t_total
    res["build_batches"] = b
    res["disk"][(large, "flat")] = folder_size(path)
    store = reopen(store, path, res, (large, "flat"))
    passes = 1
    exact = measure_store(store, settings, qs, warm, passes, res, f"{size_label(large)} flat")

    res["lexical_profile"] = lexical_profile(store, qs, large)
    # FAISS alone on the store's flat index, then the store rebuilt as HNSW (what a commit does
    # when `auto` crosses `approximate_above`), measured in the store and alone
    kind = "flat"
    _, exact_ids = faiss_both(the_index(store), res, qs, warm, (large, kind))
    kind = "hnsw"
    est = res.get("ann", {}).get("build", {}).get("hnsw", [res["build"][(small, "hnsw")] * large / small])[0]
    est = est * 1.5 + 120 + q_est
    if elapsed() + est > budget:
        res["skipped"].append(
            f"HNSW in the {large:,}-chunk store: ~{est / 60:.0f} min estimated, past the budget"
        )
        log(res["skipped"][-1])
        return store
    sec = commit(store, Changes(), store_manifest(settings, kind, large // 10, large))
    res["build"][(large, kind)] = sec
    log(f"rebuilt the {large:,}-chunk store as {kind} in {sec:.0f}s")
    res["disk"][(large, kind)] = folder_size(path)
    store = reopen(store, path, res, (large, kind))
    got = measure_store(store, settings, qs, warm, passes, res, f"{size_label(large)} {kind}")
    _, ann_ids = faiss_both(the_index(store), res, qs, warm, (large, kind))
    res["recall"][(large, kind)] = recall_at_10(exact_ids, ann_ids)
    res["recall_hybrid"][(large, kind)] = recall_at_10(exact["hybrid"], got["hybrid"])
    log(f"  recall@10 {kind} vs flat at {large:,}: dense {res['recall'][(large, kind)]:.3f}")
    return store


def lexical_profile(store: FaissStore, qs: list[str], n: int) -> dict[str, Any]:
    """Where BM25 time goes: FTS5 matches per query, time per match, and the query `rag` used
    before (ranking after a join to `chunks` for the visibility test) on the same queries."""
    from rag.stores.faiss.sql import BM25_WEIGHTS as _BM25_WEIGHTS
    from rag.stores.faiss.sql import fts_query
    from rag.stores.faiss.sql import visible as _visible

    w = ", ".join(str(x) for x in _BM25_WEIGHTS)
    db = store.connection
    gen = int((store.manifest() or {})["generation"])
    old_q = f"""SELECT c.row, -bm25(chunks_fts, {w}) AS score
        FROM chunks_fts JOIN chunks c ON c.row = chunks_fts.rowid JOIN articles a ON a.row = c.article_row
        WHERE chunks_fts MATCH :match AND {_visible("c")} ORDER BY bm25(chunks_fts, {w}) LIMIT :k"""
    rank_q = f"""SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH :match
        ORDER BY bm25(chunks_fts, {w}), rowid LIMIT :k"""
    out: dict[str, Any] = {"n": n, "matches": [], "now": [], "rank_only": [], "old": []}
    for i, q in enumerate(qs):
        match = fts_query(q)
        out["matches"].append(
            db.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (match,)).fetchone()[0]
        )
        t = time.perf_counter()
        store.search_lexical(q, 20)
        out["now"].append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        db.execute(rank_q, {"match": match, "k": 20}).fetchall()
        out["rank_only"].append((time.perf_counter() - t) * 1e3)
        if i < 50:  # the old query is slow: 50 queries are enough
            t = time.perf_counter()
            db.execute(old_q, {"match": match, "k": 20, "gen": gen}).fetchall()
            out["old"].append((time.perf_counter() - t) * 1e3)
    per = [t / max(1, m) * 1e3 for t, m in zip(out["rank_only"], out["matches"], strict=True)]
    log(
        f"  lexical at {n:,}: matches p50 {np.percentile(out['matches'], 50):,.0f}, "
        f"now p50 {np.percentile(out['now'], 50):.1f} ms, "
        f"old query p50 {np.percentile(out['old'], 50):.1f} ms, "
        f"{np.median(per):.2f} us per match"
    )
    return out


# ------------------------------------------------------------------------------- part 4: exact vs ANN


def run_ann(
    synth: Synth, qs: list[str], warm: list[str], sizes: tuple[int, ...], passes: int, res: dict
) -> None:
    """FAISS alone, one thread (as `rag` searches): exact search at growing sizes, HNSW and IVF at
    the largest, with the store's own constructors and search settings; recall against exact."""
    import faiss

    from rag.stores.faiss.segments import tuned as _tuned

    large = max(sizes)
    ann: dict[str, Any] = {"flat": {}, "approx": {}, "recall": {}, "build": {}, "ef": {}}
    res["ann"] = ann
    xb = synth.vectors(large, np.random.default_rng(4000))
    ids = np.arange(1, large + 1, dtype=np.int64)
    qv = np.stack([res["qvec"][q] for q in qs]).astype(np.float32)
    wv = np.stack([res["qvec"][q] for q in warm]).astype(np.float32)

    def timed(index: Any) -> tuple[list[float], list[float], list[list[int]]]:
        p50s, p95s, got = [], [], []
        for _ in range(passes):
            lat, got = faiss_search_lat(index, qv, wv, 1)
            p50s.append(float(np.percentile(lat, 50)))
            p95s.append(float(np.percentile(lat, 95)))
        return p50s, p95s, got

    exact: list[list[int]] = []
    for n in sorted(sizes):
        index = new_index("flat", DIM, n)
        index.add_with_ids(xb[:n], ids[:n])
        p50, p95, exact = timed(index)
        ann["flat"][n] = (p50, p95)
        log(f"  ann: flat {n:,}: p50 {fmt(p50, digits=2)} ms, p95 {fmt(p95, digits=2)} ms (1 thread)")
        del index
        gc.collect()

    faiss.omp_set_num_threads(os.cpu_count() or 1)  # building is parallel, as in commit
    t = time.perf_counter()
    nlist = max(1, min(int(4 * large**0.5), large // 39))
    ivf = new_index("ivf", DIM, large)
    train_n = min(large, 64 * nlist)
    sample = xb[np.sort(np.random.default_rng(3).choice(large, train_n, replace=False))]
    ivf.train(sample)
    del sample
    train_s = time.perf_counter() - t
    ivf.add_with_ids(xb, ids)
    ann["build"]["ivf"] = (
        time.perf_counter() - t,
        f"nlist {nlist}, k-means on {train_n:,} vectors, {train_s:.0f}s",
    )
    p50, p95, got = timed(_tuned(ivf))
    ann["approx"]["ivf"] = (p50, p95)
    ann["recall"]["ivf"] = recall_at_10(exact, got)
    log(
        f"  ann: ivf {large:,}: p50 {fmt(p50, digits=2)}, p95 {fmt(p95, digits=2)}, "
        f"recall {ann['recall']['ivf']:.3f}"
    )
    del ivf
    gc.collect()

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    t = time.perf_counter()
    h = new_index("hnsw", DIM, large)
    for s in range(0, large, 100_000):  # in slices, to log progress of a long build
        h.add_with_ids(xb[s : s + 100_000], ids[s : s + 100_000])
        log(f"  ann: hnsw build {min(s + 100_000, large):,}/{large:,} after {time.perf_counter() - t:.0f}s")
    ann["build"]["hnsw"] = (time.perf_counter() - t, "M 32, efConstruction 80")
    p50, p95, got = timed(_tuned(h))
    ann["approx"]["hnsw"] = (p50, p95)
    ann["recall"]["hnsw"] = recall_at_10(exact, got)
    log(
        f"  ann: hnsw {large:,}: p50 {fmt(p50, digits=2)}, p95 {fmt(p95, digits=2)}, "
        f"recall {ann['recall']['hnsw']:.3f}"
    )
    inner = faiss.downcast_index(h.index)
    for ef in (32, 64, 128, 256):
        inner.hnsw.efSearch = ef
        lat, got = faiss_search_lat(h, qv, wv, 1)
        ann["ef"][ef] = (
            float(np.percentile(lat, 50)),
            float(np.percentile(lat, 95)),
            recall_at_10(exact, got),
        )
    del h, xb
    gc.collect()


# ------------------------------------------------------------------------------- report


def write_report(
    out: Path,
    res: dict,
    small: int,
    large: int,
    nq: int,
    nwarm: int,
    passes: int,
    upd: dict,
    upd_sizes: tuple[int, ...],
    upd_repeats: int,
    quick: bool,
) -> None:
    import faiss

    L: list[str] = []
    w = L.append
    w("# Store scaling benchmark")
    w("")
    w(
        f"Written by `bench/scale.py`{' (--quick: tiny sizes, not for reading)' if quick else ''} on "
        f"{date.today().isoformat()}. Machine: {os.cpu_count()} cores, no GPU, {platform.machine()}, "
        f"Python {platform.python_version()}, faiss {faiss.__version__}, numpy {np.__version__}, "
        f"SQLite {__import__('sqlite3').sqlite_version}. The script ran under `nice -n "
        f"{res.get('nice', 0)}` while other work shared the 2 cores (another engineer's test runs; "
        f"load average {res['load'][0][0]:.1f} at the start, {res['load'][1][0]:.1f} at the end): "
        "absolute times are pessimistic and noisy; ratios between rows are the more reliable "
        f"reading. Peak RSS of the benchmark process: {res.get('peak_rss', rss_mb()):,.0f} MB."
    )
    w("")
    w("Figures are median (min–max) over repeated runs where runs were repeated; a single number is one run.")
    w("")
    report_summary(w, res, upd, upd_sizes, large)
    w("## Synthetic data")
    w("")
    w(
        f"- Vectors: {DIM}-d float32, unit length, drawn from a mixture of {CLUSTERS} Gaussian clusters "
        f"(random unit centres plus N(0, {SIGMA}²) noise per dimension, renormalised). Queries are "
        "fresh draws from the same mixture, so each has a real cluster of neighbours but its exact "
        "top 10 is decided by the noise. The clusters are well separated: a query's 10 nearest "
        "neighbours lie in its own cluster (about 100 points at 100k chunks, 1,000 at 1M), which "
        "makes this an easy case for ANN recall (see the recall tables)."
    )
    w(
        f"- Text: {WORDS_PER_CHUNK} made-up words per chunk (5 sentences of 12) from a {VOCAB:,}-word "
        f"vocabulary, Zipf (s={ZIPF_S}); {CHUNKS_PER_ARTICLE} chunks per article, each under its own "
        "`## Section k` heading; titles of 3 words. Queries: 4 words drawn Zipf-weighted from "
        "vocabulary ranks 100 and below (the top 100 stand in for function words, which the real "
        "query path drops as stopwords); the text of a query and its vector are unrelated."
    )
    w(
        "- Part 1 stores are written with `FaissStore.commit(Changes(added=[(Article, [Chunk]*10, "
        "vectors)]))` directly, no embedder. HNSW and IVF variants are made by committing an empty "
        "change with another `index_kind`, which rewrites the vectors from SQLite as one segment of "
        "that kind: what a commit does when the kind changes, and when the flat segments written "
        "after an HNSW/IVF segment reach a tenth of its size."
    )
    w("")
    if res["latency"]:
        report_queries(w, res, small, large, nq, nwarm, passes)
    if upd:
        report_updates(w, upd, upd_sizes, upd_repeats)
    if res["disk"]:
        w("## 3. Disk size of each index folder")
        w("")
        w("| store | index | chunks.sqlite | FAISS files | folder total |")
        w("| --- | --- | ---: | ---: | ---: |")
        for (n, kind), sizes in res["disk"].items():
            faiss_sz = sum(v for k, v in sizes.items() if k.endswith(".faiss"))
            sq = sizes.get("chunks.sqlite")
            label = f"{n:,} chunks" if isinstance(n, int) else f"{int(n.split('-')[1]):,} articles (part 2)"
            w(
                f"| {label} | {kind} | {'' if sq is None else mb(sq)} | "
                f"{mb(faiss_sz) if faiss_sz else mb(sizes['total'])} | {mb(sizes['total'])} |"
            )
        w("")
    if res.get("ann"):
        report_ann(w, res["ann"], nq)
    report_notes(w, res, small, large)
    out.write_text("\n".join(L) + "\n", encoding="utf-8")


def report_summary(w: Any, res: dict, upd: dict, upd_sizes: tuple[int, ...], large: int) -> None:
    """The issue's targets against what was measured below."""
    w("## Summary against the targets")
    w("")
    if upd:
        a, b = upd[upd_sizes[0]], upd[upd_sizes[-1]]
        ta, tb = statistics.median(a["times"]), statistics.median(b["times"])
        sa, sb = statistics.median(a["store_times"]), statistics.median(b["store_times"])
        ratio = tb / ta
        verdict = "met" if ratio <= 2 else f"missed by {ratio / 2:.1f}×"
        w(
            f"- Adding one article to {upd_sizes[-1]:,} vs {upd_sizes[0]:,} articles (target: at most "
            f"2×): the store's commit takes {sb * 1e3:.1f} vs {sa * 1e3:.1f} ms (**{sb / sa:.1f}×**); "
            f"the whole `index_articles` call {tb:.3f} vs {ta:.3f} s (**{ratio:.1f}×**, {verdict}). "
            "What grows is `index_articles` comparing the whole corpus with the whole store (part 2's "
            "grouped profile), not the store's write."
        )
    lat = res.get("latency", {})
    big = size_label(large)
    for kind in ("hnsw", "flat"):
        if (f"{big} {kind}", "hybrid") in lat:
            h50, h95 = (statistics.median(x) for x in lat[(f"{big} {kind}", "hybrid")])
            b50, b95 = (statistics.median(x) for x in lat[(f"{big} {kind}", "bm25")])
            d95 = statistics.median(lat[(f"{big} {kind}", "dense")][1])
            rec = res["recall"].get((large, kind))
            w(
                f"- Warm hybrid at {large:,} chunks with {kind} (target: p95 ≤ 50 ms, recall@10 ≥ 0.95): "
                f"p50 {h50:.1f} ms, p95 **{h95:.1f} ms** ({'met' if h95 <= 50 else 'missed'})"
                + (f", dense recall@10 {rec:.3f}" if rec is not None else "")
                + f". Dense alone p95 {d95:.1f} ms; BM25 alone p50 {b50:.1f}, p95 {b95:.1f} ms "
                "(part 1: where BM25 time goes)."
            )
            break
    if res.get("ann"):
        ann = ann_keys(res["ann"])
        n = max(ann["flat"])
        w(
            f"- FAISS alone at {n:,}, one thread: HNSW p95 "
            f"{statistics.median(ann['approx']['hnsw'][1]):.2f} ms, recall@10 "
            f"{ann['recall']['hnsw']:.3f} at efSearch 128 and {ann['ef'][256][2]:.3f} at 256 (now "
            f"the store's setting); exact search p95 {statistics.median(ann['flat'][n][1]):.1f} ms "
            "(part 4)."
        )
    w("")


def ann_keys(ann: dict) -> dict:
    """Part 4's results with integer sizes and efSearch values (JSON made them strings)."""
    return {
        **ann,
        "flat": {int(n): v for n, v in ann["flat"].items()},
        "ef": {int(e): v for e, v in ann["ef"].items()},
    }


def report_queries(w: Any, res: dict, small: int, large: int, nq: int, nwarm: int, passes: int) -> None:
    w(f"## 1. Warm query latency ({nq} queries, in process)")
    w("")
    w(
        f"`Retriever.search(query, retriever=...)` with the default retrieve settings (k=10; hybrid "
        f"takes 20 candidates from each side and fuses them by RRF), after {nwarm} warm-up queries, on "
        "one open store. The query embedder is a fake that returns a fixed random unit vector per "
        "query: **embedding time is excluded**. Dense includes the FAISS search (one thread, as `rag` "
        "searches) and the SQLite lookup of the hits; bm25 is FTS5 ranking plus that lookup. HNSW "
        "efSearch=256 and IVF nprobe=32, as the store sets them."
    )
    w("")
    w(
        f"At {small:,} chunks each figure is the median (min–max) of the per-pass p50/p95 over "
        f"{passes} passes of the {nq} queries; at {large:,} one pass."
    )
    w("")
    w("| chunks | FAISS index | retriever | p50 ms | p95 ms |")
    w("| ---: | --- | --- | ---: | ---: |")
    for (key, mode), (p50, p95) in res["latency"].items():
        size, kind = key.split()
        w(f"| {size} | {kind} | {mode} | {fmt(p50, digits=2)} | {fmt(p95, digits=2)} |")
    w("")
    lp = res.get("lexical_profile")
    if lp:
        per = [t / max(1, m) * 1e3 for t, m in zip(lp["rank_only"], lp["matches"], strict=True)]
        w(
            f"Where BM25 time goes at {lp['n']:,} chunks (same {len(lp['matches'])} queries, one pass): "
            f"FTS5 finds {np.percentile(lp['matches'], 50):,.0f} matching chunks for the median query "
            f"({np.percentile(lp['matches'], 95):,.0f} at p95), since any of its terms matches, and "
            "scores every one of them before the top 20 are known. The query `rag` ran before this "
            "version joined every match to `chunks` to test its generation before ranking:"
        )
        w("")
        w("| query | p50 ms | p95 ms |")
        w("| --- | ---: | ---: |")
        rows = [
            (
                f"before: rank after joining every match to `chunks` (first {len(lp['old'])} queries)",
                lp["old"],
            ),
            ("now: FTS5 ranks alone (`ORDER BY bm25(...), rowid LIMIT 20`)", lp["rank_only"]),
            ("now, whole `search_lexical` (ranking + visibility and chunk lookup of the hits)", lp["now"]),
        ]
        for label, lat in rows:
            w(f"| {label} | {np.percentile(lat, 50):.1f} | {np.percentile(lat, 95):.1f} |")
        w("")
        w(
            f"The ranking costs about {np.median(per):.2f} µs per matching chunk (median over queries "
            "of time / matches), so BM25 time grows with the number of matches, i.e. linearly with "
            "the corpus for a fixed query. FTS5 has no early termination (no WAND/MaxScore): "
            "`ORDER BY rank` with the weights set as the table's rank function was measured slower "
            "at 100k chunks (6.6 vs 5.0 ms p50); what is left is to score fewer matches, by dropping "
            "the commonest query terms or capping the matches scored, which changes BM25's results "
            "and was not done."
        )
        w("")
    if res["faiss_only"]:
        w(
            f"FAISS alone (same vectors, same {nq} query vectors, one `search` call per query, k=10, "
            f"no SQLite) on the store's own loaded index, with FAISS's default OpenMP thread count "
            f"({res['omp_default']}) and with one thread (what `rag` uses). One pass each."
        )
        w("")
        w("| chunks | FAISS index | threads | p50 ms | p95 ms |")
        w("| ---: | --- | ---: | ---: | ---: |")
        for (n, kind, th), lat in res["faiss_only"].items():
            w(f"| {n:,} | {kind} | {th} | {np.percentile(lat, 50):.2f} | {np.percentile(lat, 95):.2f} |")
        w("")
    w("Recall@10 of the approximate indexes against exact (flat) search, same queries, in the store:")
    w("")
    w("| chunks | FAISS index | dense recall@10 | hybrid top-10 overlap with flat-based hybrid |")
    w("| ---: | --- | ---: | ---: |")
    for (n, kind), r in res["recall"].items():
        h = res.get("recall_hybrid", {}).get((n, kind))
        w(f"| {n:,} | {kind} | {r:.3f} | {'' if h is None else f'{h:.3f}'} |")
    w("")
    w(
        "Read recall with the data in mind: each query's true neighbours sit in one cluster of ~100 "
        "(100k) or ~1,000 (1M) points, so recall here is an upper bound, not a forecast for real "
        "embeddings."
    )
    w("")
    if res.get("stale"):
        w(
            "Recall@10 of dense search in the process that committed the index, before reopening it "
            "(the index a commit keeps in memory is now tuned as a reader's is; before this version it "
            "kept FAISS's defaults, efSearch=16 and nprobe=1, and lost 4–6 points of recall there):"
        )
        w("")
        w("| chunks | FAISS index | search parameter in force | dense recall@10 |")
        w("| ---: | --- | --- | ---: |")
        for (n, kind), (r, params) in res["stale"].items():
            w(f"| {n:,} | {kind} | {params} | {r:.3f} |")
        w("")
    if res.get("load_s"):
        w(
            "Opening a store and answering its first dense search (reads the FAISS segments and "
            "checks their counts against SQLite: `segment_indexes`), one run each, page cache warm; a "
            "BM25 query or listing articles reads no FAISS file:"
        )
        w("")
        w("| chunks | FAISS index | seconds |")
        w("| ---: | --- | ---: |")
        for (n, kind), sec in res["load_s"].items():
            w(f"| {n:,} | {kind} | {sec:.2f} |")
        w("")
    w("Build times (one run each):")
    w("")
    w("| chunks | what | seconds |")
    w("| ---: | --- | ---: |")
    for (n, kind), sec in res["build"].items():
        if kind == "flat" and n == small:
            what = "first commit: SQLite rows + FTS5 + flat segment (data generation excluded)"
        elif kind == "flat":
            what = (
                f"growing from {small:,} in {res.get('build_batches', '?')} commits of up to 225,000 "
                "chunks (flat segments merged as they grow; data generation excluded)"
            )
        else:
            what = f"commit rewriting the whole index as {kind} from SQLite (a full rebuild)"
        w(f"| {n:,} | {what} | {sec:.1f} |")
    w("")


def report_updates(w: Any, upd: dict, upd_sizes: tuple[int, ...], upd_repeats: int) -> None:
    w("## 2. Incremental update: `index_articles` adding one article (10 chunks), flat index")
    w("")
    w(
        f"A store built by `index_articles` from N synthetic articles (fake document embedder with "
        f"`.embed(texts, progress=None)` returning random unit vectors, `export_query_model=False`, "
        f"settings from `load_settings(environ={{}})`), then {upd_repeats} timed calls that each pass "
        "the same list plus one new article (so the store grows by one article per call). The "
        "time is the whole `index_articles` call: open, lock, recovery, listing what the store "
        "holds, hashing the input, chunking the one article, fake embedding, commit, clean-up. "
        f"Then {upd_repeats} commits of one more article straight to the store (open, `writing()`, "
        "`commit`, close): the store's own share."
    )
    w("")
    w(
        "| articles in store | chunks | `index_articles`, s | store commit alone, s | base build | "
        "segments after (vectors) |"
    )
    w("| ---: | ---: | ---: | ---: | ---: | --- |")
    for n in upd_sizes:
        u = upd[n]
        w(
            f"| {n:,} | {u['chunks']:,} | {fmt(u['times'], digits=3)} | {fmt(u['store_times'], digits=4)} | "
            f"{u['base_s']:.1f}s | {', '.join(f'{v:,}' for v in u['segments'])} |"
        )
    a, b = upd[upd_sizes[0]], upd[upd_sizes[-1]]
    ratio = statistics.median(b["times"]) / statistics.median(a["times"])
    sratio = statistics.median(b["store_times"]) / statistics.median(a["store_times"])
    w("")
    w(
        f"Ratio {upd_sizes[-1]:,}/{upd_sizes[0]:,} of the medians: **{ratio:.1f}×** for the whole "
        f"`index_articles` call, **{sratio:.1f}×** for the store's commit, for "
        f"{upd_sizes[-1] // upd_sizes[0]}× the articles (new chunks per call: "
        f"{sorted(set(b['new_chunks']))}). Before this version (one FAISS file rewritten by every "
        "commit) the same measurement gave 0.151 s and 1.133 s, 7.5×."
    )
    w("")
    if "profile" in upd:
        w(
            f"Where the time goes at {upd_sizes[-1]:,} articles (cProfile of one extra call, "
            f"{upd['profile_s']:.2f}s under the profiler), top entries by cumulative time:"
        )
        w("")
        w("```")
        w(trim_profile(upd["profile"], 25))
        w("```")
        w("")
        w('The same profile grouped (seconds, under the profiler; "of which" rows split the row above them):')
        w("")
        w("| what | seconds |")
        w("| --- | ---: |")
        for label, sec in upd["breakdown"]:
            if not label.lstrip().startswith(("SQLite statements", "of which from")):  # older runs
                w(f"| {label} | {sec:.3f} |")
        w("")


def report_ann(w: Any, ann: dict, nq: int) -> None:
    ann = ann_keys(ann)
    flat = ann["flat"]
    large = max(flat)
    w("## 4. Exact or approximate: FAISS alone, one thread, by size")
    w("")
    (l0, l1) = ann.get("load", [[0.0], [0.0]])
    w(
        f"Run separately (`--parts ann`, {ann.get('date', '')}; load average {l0[0]:.1f} at the start, "
        f"{l1[0]:.1f} at the end, other test runs sharing the cores). The vectors are {large:,} "
        f"fresh draws from the same mixture, the same {nq} query vectors; exact search on the "
        "first N of them, HNSW and IVF on all, each built with `rag.stores.faiss.segments.new_index` "
        "and tuned with `segments.tuned`; one `search` call per query, k=10, one OpenMP thread (as `rag` "
        "searches; building used both cores). Median (min–max) of the per-pass p50/p95 over 3 passes."
    )
    w("")
    w("| chunks | FAISS index | p50 ms | p95 ms | recall@10 vs exact | build |")
    w("| ---: | --- | ---: | ---: | ---: | --- |")
    for n in sorted(flat):
        p50, p95 = flat[n]
        w(f"| {n:,} | flat (exact) | {fmt(p50, digits=2)} | {fmt(p95, digits=2)} | 1 | |")
    for kind, (p50, p95) in ann["approx"].items():
        sec, how = ann["build"][kind]
        label = f"{kind} (efSearch 128)" if kind == "hnsw" else f"{kind} (nprobe 32)"
        w(
            f"| {large:,} | {label} | {fmt(p50, digits=2)} | {fmt(p95, digits=2)} | "
            f"{ann['recall'][kind]:.3f} | {sec:.0f}s, {how} |"
        )
    w("")
    w(f"HNSW at {large:,}, efSearch swept on the same index (one pass each; the store now uses 256):")
    w("")
    w("| efSearch | p50 ms | p95 ms | recall@10 |")
    w("| ---: | ---: | ---: | ---: |")
    for ef, (p50, p95, r) in ann["ef"].items():
        w(f"| {ef} | {p50:.2f} | {p95:.2f} | {r:.3f} |")
    w("")
    over = [n for n in sorted(flat) if statistics.median(flat[n][1]) > 20]
    under = [n for n in sorted(flat) if statistics.median(flat[n][1]) <= 20]
    crossing = (
        f"Flat p95 is within 20 ms up to {max(under):,} chunks and past it from {min(over):,}"
        if over and under
        else "The sizes measured do not bracket 20 ms"
    )
    w(
        "**The `approximate_above` threshold.** Exact search costs time linear in the chunks "
        f"(about {statistics.median(flat[large][0]) / large * 1e6:.0f} ms per million per query here), "
        "HNSW next to nothing, but HNSW costs recall and full rebuilds, since it cannot be extended "
        "exactly: a commit rebuilds it when the kind switches and whenever the flat segments "
        f"written after it reach a tenth of its size (the build above: {ann['build']['hnsw'][0]:.0f}s "
        f"for {large:,} chunks, about {ann['build']['hnsw'][0] / large * 1e5:.0f}s per 100,000). The "
        "criterion: keep exact search while its p95 stays within 20 ms, 40% of the 50 ms hybrid "
        f"budget, which leaves the rest for BM25 and the lookups. {crossing}; "
        "`approximate_above = 200000` in `config/default.toml` sits at that crossing, so it stays "
        "as it was, now measured."
    )
    w("")


def report_notes(w: Any, res: dict, small: int, large: int) -> None:
    w("## Notes on `rag/stores/faiss/`")
    w("")
    w(
        "- Vectors live in segments (log-structured): a commit writes one new flat FAISS file "
        "with just the vectors it added, and the manifest lists the live segments with the "
        "generations each covers and its count of tombstones (vectors of rows removed since). A "
        "removal touches no FAISS file: the row is invisible through SQLite's generation filter and "
        "deleted at clean-up. Dense search asks each segment for k plus up to k more to cover its "
        "tombstones (again, for more, in the rare case that was not enough), keeps a hit only if its "
        "row is visible and was added within the segment's generations (SQLite reuses freed row ids), "
        "and merges the lists. Flat segments merge by the logarithmic method (the newest run once it "
        "holds half as many vectors as the segment before it): O(log n) segments, each vector "
        "rewritten O(log n) times. An HNSW or IVF first segment is rebuilt once the flat ones "
        "after it hold a tenth of its size, or a quarter of it is tombstones."
    )
    w(
        "- The live count is the previous one plus added minus removed; recovery and clean-up are "
        "ranges on indexed generation columns (checked with EXPLAIN QUERY PLAN); counting live "
        "chunks, in all (the load check) or per article (`articles()`), reads a covering index "
        "instead of the chunk rows, which hold the text and the 1.5 KB vector."
    )
    w(
        "- What is still O(corpus) in an update is outside the store's commit: `index_articles` "
        "is handed every article and compares it with `store.articles()`, which lists every "
        "stored article with its content hash and chunk count; it hashes every input article "
        "(`Article.content_hash`, SHA-256 of the text, once; `Article.id`, SHA-1 of the URL, five "
        "times per article, since it is a property computed on each use). See the grouped profile "
        "in part 2. In a real `rag index`, parsing every scrape costs more than both."
    )
    w(
        "- FAISS files are read on the first dense search, not on every read: listing articles, "
        "counting chunks and BM25 need no vectors. The count checks (each segment's file against "
        "the manifest, the segments' live total against the manifest and against SQLite) run "
        "then. The index a commit keeps in memory is tuned as a reader's is."
    )
    w(
        "- BM25 without filters ranks in FTS5 alone and then drops hits not visible at the "
        "reader's generation, asking for more only when some of the top k were not visible; with "
        "filters it keeps the join, which the filters narrow."
    )
    w(
        "- IVF uses nprobe=32 whatever nlist is (`4·√n`: 1,264 lists at 100k chunks, 4,000 at 1M), "
        "so the share of the index searched falls as the store grows. On this well-clustered data "
        "recall stayed at 1.000; on real embeddings it may not."
    )
    w("")
    w("## Not measured")
    w("")
    for s in res["skipped"]:
        w(f"- {s}.")
    w("- Query embedding (excluded by design), process start-up, filtered search, article removal.")
    w(
        f"- IVF in the {large:,}-chunk store: a commit trains k-means on every vector (4,000 lists), "
        "estimated at well over 15 minutes on these cores; part 4 has IVF alone, trained on a sample."
    )
    w("")


def profile_breakdown(prof: cProfile.Profile) -> list[tuple[str, float]]:
    """Cumulative seconds of the calls that matter for an incremental update."""
    st = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    out: list[tuple[str, float]] = []
    total = 0.0
    for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in st.items():
        if func == "index_articles" and file.endswith("index.py"):
            total = ct
    out.append(("whole `index_articles` call", total))

    def cum(pred: Any) -> float:
        return sum(v[3] for k, v in st.items() if pred(*k))

    index_own = sum(
        v[2] for (f, _ln, fn), v in st.items() if f.endswith("rag/index.py") and fn.startswith("<")
    )
    index_own += sum(
        v[2] for (f, _ln, fn), v in st.items() if f.endswith("rag/index.py") and fn == "index_articles"
    )
    out += [
        (
            "`FaissStore.articles` (what the store holds: every article's hash and chunk count)",
            cum(lambda f, ln, fn: f.endswith("faiss/store.py") and fn == "articles"),
        ),
        (
            "`Article.content_hash` + `Article.id` (hashing every input article)",
            cum(lambda f, ln, fn: f.endswith("records.py") and fn in ("content_hash", "id")),
        ),
        ("`index_articles`' own loops over every article (dicts, sums)", index_own),
        (
            "`FaissStore.commit` (SQLite rows, new segment, manifest, clean-up)",
            cum(lambda f, ln, fn: fn == "commit"),
        ),
        ("  of which FAISS `write_index` (the new segment)", cum(lambda f, ln, fn: "write_index>" in fn)),
        ("`FaissStore.writing` (lock, schema check, `_recover`)", cum(lambda f, ln, fn: fn == "writing")),
        (
            "`fsync` (SQLite journal aside: segment, manifest, folder)",
            cum(lambda f, ln, fn: "posix.fsync" in fn),
        ),
        ("chunking the new article", cum(lambda f, ln, fn: fn == "chunk_articles")),
    ]
    return out


def trim_profile(text: str, n: int) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("ncalls"):
            body = [ln.replace(str(ROOT) + "/", "") for ln in lines[i : i + 1 + n] if ln.strip()]
            return "\n".join(
                ln.replace(sys.prefix + "/lib/python3.11/site-packages/", "").replace(
                    sys.base_prefix + "/lib/python3.11/", ""
                )
                for ln in body
            )
    return text


if __name__ == "__main__":
    main()
