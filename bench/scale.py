"""Scaling benchmark (not a test) of the default store (FAISS + SQLite/FTS5); writes bench/SCALE.md.

    nice -n 19 .venv/bin/python bench/scale.py            # full run (~25 min on 2 cores)
    nice -n 19 .venv/bin/python bench/scale.py --quick    # smoke run on tiny sizes

What it measures, all in one process on synthetic data:

1. Warm query latency (p50/p95) of `Retriever.search` for dense, bm25 and hybrid retrieval on
   stores of 100k and 1M chunks, with flat, HNSW and IVF FAISS indexes, and recall@10 of HNSW/IVF
   against flat on the same queries. Query embedding is excluded: a fake query embedder hands
   back a fixed random unit vector per query.
2. The time of `index_articles` adding one new article (10 chunks) to stores of 1k and 10k
   articles (flat), with a fake document embedder; a cProfile of one 10k run.
3. Disk size of every index folder.

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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.chunk import Chunk, chunk_id  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.faiss_store import _STOPWORDS, FaissStore  # noqa: E402
from rag.index import identity, index_articles  # noqa: E402
from rag.ingest import Article  # noqa: E402
from rag.retrieve import Retriever  # noqa: E402
from rag.store import Changes  # noqa: E402

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


def fmt(values: list[float], digits: int = 1, unit: str = "") -> str:
    """median (min–max), or the single value when there is one."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}{unit}"
    med = statistics.median(values)
    return f"{med:.{digits}f}{unit} ({min(values):.{digits}f}–{max(values):.{digits}f})"


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
    store._index = None  # free the old FAISS index now, even while callers still hold the object
    del store
    gc.collect()
    store = FaissStore(path)
    t = time.perf_counter()
    store.chunk_count()  # loads the FAISS file (_load_faiss)
    res.setdefault("load_s", {})[key] = time.perf_counter() - t
    return store


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
    retr = Retriever(store, settings.retrieve, embedder=emb)
    out = {}
    for mode in ("dense", "bm25", "hybrid"):
        p50, p95, ids = run_queries(retr, qs, warm, mode, passes)
        res["latency"][(key, mode)] = (p50, p95)
        log(f"  {key:>10} {mode:>6}: p50 {fmt(p50, 2)} ms, p95 {fmt(p95, 2)} ms ({passes} pass(es))")
        out[mode] = ids
    return out


# ------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    ap.add_argument("--budget", type=float, default=24 * 60, help="seconds; later steps are skipped past it")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "SCALE.md")
    args = ap.parse_args()

    if args.quick:
        small, large, nq, nwarm, passes = 5_000, 20_000, 40, 5, 2
        upd_sizes, upd_repeats, batch = (100, 300), 3, 5_000
    else:
        small, large, nq, nwarm, passes = 100_000, 1_000_000, 200, 20, 3
        upd_sizes, upd_repeats, batch = (1_000, 10_000), 5, 225_000
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
    try:
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
        faiss_both(store._index, res, qs, warm, (small, "flat"))
        res["stale"] = {}
        for kind in ("hnsw", "ivf"):
            sec = commit(store, Changes(), store_manifest(settings, kind, small // 10, small))
            res["build"][(small, kind)] = sec
            log(f"rebuilt the {small:,}-chunk index as {kind} (commit from SQLite) in {sec:.1f}s")
            res["disk"][(small, kind)] = folder_size(path)
            # the process that committed keeps the index it built, with FAISS's default search
            # parameters: measure that once (dense only), then reopen as a reader would
            retr = Retriever(store, settings.retrieve, embedder=FakeQueryEmbedder(res["qvec"]))
            stale = [[h.chunk.chunk_id for h in retr.search(q, retriever="dense")] for q in qs]
            inner = __import__("faiss").downcast_index(store._index.index)
            params = f"efSearch={inner.hnsw.efSearch}" if kind == "hnsw" else f"nprobe={inner.nprobe}"
            res["stale"][(small, kind)] = (recall_at_10(exact["dense"], stale), params)
            log(
                f"  recall@10 {kind} in the committing process ({params}): {res['stale'][small, kind][0]:.3f}"
            )
            store = reopen(store, path, res, (small, kind))
            got = measure_store(store, settings, qs, warm, passes, res, f"{size_label(small)} {kind}")
            faiss_both(store._index, res, qs, warm, (small, kind))
            res["recall"][(small, kind)] = recall_at_10(exact["dense"], got["dense"])
            res["recall_hybrid"] = res.get("recall_hybrid", {})
            res["recall_hybrid"][(small, kind)] = recall_at_10(exact["hybrid"], got["hybrid"])
            log(f"  recall@10 {kind} vs flat: dense {res['recall'][(small, kind)]:.3f}")
        # back to flat, kept for the 1M extension below
        sec = commit(store, Changes(), store_manifest(settings, "flat", small // 10, small))
        log(f"rebuilt as flat again in {sec:.1f}s")

        # ---------------------------------------------------------------- part 2: incremental
        upd = run_updates(synth, settings, tmp, upd_sizes, upd_repeats, res)

        # ---------------------------------------------------------------- part 1 at `large`
        store = run_large(store, synth, settings, qs, warm, small, large, batch, budget, res, path)
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"removed {tmp}")
    res["load"] = (load0, os.getloadavg())
    write_report(args.out, res, small, large, nq, nwarm, passes, upd, upd_sizes, upd_repeats, args.quick)
    log(f"wrote {args.out}")


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
        out[n] = {"times": times, "base_s": base_s, "chunks": rep.chunks, "new_chunks": new_chunks}
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
    import faiss

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
    del exact

    # ANN at `large`: straight on FAISS with the store's own constructor and search settings
    idx = store._index  # the store's loaded IndexIDMap2(IndexFlatIP)
    inner = faiss.downcast_index(idx.index)
    ntot = inner.ntotal
    xb = faiss.rev_swig_ptr(inner.get_xb(), ntot * DIM).reshape(ntot, DIM)
    ids = faiss.vector_to_array(idx.id_map).astype(np.int64)

    def faiss_lat(index: Any) -> tuple[list[float], list[list[int]]]:
        return faiss_both(index, res, qs, warm, (large, kind))

    kind = "flat"
    lat, exact_ids = faiss_lat(idx)

    nlist = max(1, min(int(4 * ntot**0.5), ntot // 39))
    # IVF: the store trains k-means on every vector (~256*nlist); estimate from the small run
    ivf_small = res["build"][(small, "ivf")]
    train_n = min(ntot, 64 * nlist)
    est = ivf_small * (train_n * nlist * 0.5 + ntot * nlist) / (small * (4 * small**0.5) * 1.5) + 30
    if elapsed() + est < budget:
        t = time.perf_counter()
        ivf = FaissStore._new_faiss("ivf", DIM, ntot)
        rng = np.random.default_rng(3)
        sample = xb[np.sort(rng.choice(ntot, train_n, replace=False))]
        ivf.train(sample)
        del sample
        train_s = time.perf_counter() - t
        ivf.add_with_ids(xb, ids)
        build_s = time.perf_counter() - t
        faiss.downcast_index(ivf.index).nprobe = 32
        kind = "ivf"
        lat, got = faiss_lat(ivf)
        res["recall"][(large, "ivf")] = recall_at_10(exact_ids, got)
        res["ivf_large"] = {"nlist": nlist, "train_n": train_n, "train_s": train_s, "build_s": build_s}
        f = path.parent / "ivf-large.faiss"
        faiss.write_index(ivf, str(f))
        res["disk"][(large, "ivf (faiss file only)")] = {"total": f.stat().st_size}
        f.unlink()
        del ivf
        gc.collect()
        log(
            f"  faiss-only ivf {large:,} (nlist {nlist}, trained on {train_n:,}): built {build_s:.0f}s, "
            f"p50 {np.percentile(lat, 50):.2f} ms, recall@10 {res['recall'][(large, 'ivf')]:.3f}"
        )
    else:
        res["skipped"].append(f"IVF at {large:,} chunks: ~{est / 60:.0f} min estimated, past the budget")
        log(res["skipped"][-1])

    hnsw_small = res["build"][(small, "hnsw")]
    est = hnsw_small * (ntot / small) * 1.3 + 30
    if elapsed() + est < budget:
        t = time.perf_counter()
        h = FaissStore._new_faiss("hnsw", DIM, ntot)
        h.add_with_ids(xb, ids)
        build_s = time.perf_counter() - t
        faiss.downcast_index(h.index).hnsw.efSearch = 128
        kind = "hnsw"
        lat, got = faiss_lat(h)
        res["recall"][(large, "hnsw")] = recall_at_10(exact_ids, got)
        res["hnsw_large"] = {"build_s": build_s}
        del h
        log(f"  faiss-only hnsw {large:,}: built {build_s:.0f}s, recall {res['recall'][(large, 'hnsw')]:.3f}")
    else:
        res["skipped"].append(
            f"HNSW at {large:,} chunks: building it would take ~{est / 60:.0f} min on these 2 cores "
            f"(the {small:,}-chunk build took {hnsw_small:.0f}s), past the budget"
        )
        log(res["skipped"][-1])
    return store


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
        f"SQLite {__import__('sqlite3').sqlite_version}. The script ran under `nice -n 19` while another "
        f"process shared the 2 cores (load average {res['load'][0][0]:.1f} at the start, "
        f"{res['load'][1][0]:.1f} at the end): absolute times are pessimistic and noisy; ratios "
        "between rows are the more reliable reading. Peak RSS of the benchmark process: "
        f"{rss_mb():,.0f} MB."
    )
    w("")
    w("Figures are median (min–max) over repeated runs where runs were repeated; a single number is one run.")
    w("")
    w("## Synthetic data")
    w("")
    w(
        f"- Vectors: {DIM}-d float32, unit length, drawn from a mixture of {CLUSTERS} Gaussian clusters "
        f"(random unit centres plus N(0, {SIGMA}²) noise per dimension, renormalised). Queries are "
        "fresh draws from the same mixture, so each has a real cluster of neighbours but its exact "
        "top 10 is decided by the noise. The clusters are well separated: a query's 10 nearest "
        "neighbours lie in its own cluster (about 100 points at 100k chunks, 1,000 at 1M), which "
        "makes this an easy case for ANN recall (see the recall table)."
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
        "change with another `index_kind`, which rebuilds the FAISS file from the vectors in SQLite "
        "(what `rag index` does when the kind changes, and on every commit of a non-flat index)."
    )
    w("")
    w(f"## 1. Warm query latency ({nq} queries, in process)")
    w("")
    w(
        f"`Retriever.search(query, retriever=...)` with the default retrieve settings (k=10; hybrid "
        f"takes 20 candidates from each side and fuses them by RRF), after {nwarm} warm-up queries, on "
        "one open store. The query embedder is a fake that returns a fixed random unit vector per "
        "query: **embedding time is excluded**. Dense includes the FAISS search and the SQLite "
        "lookup of the 10 hits. HNSW efSearch=128 and IVF nprobe=32, as `_load_faiss` sets them. "
        "FAISS runs with its default thread count, as in `rag`; on this busy machine that dominates "
        "the dense figures (HNSW and IVF rows pinned near 8 ms): compare the FAISS-alone table."
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
        w(f"| {size} | {kind} | {mode} | {fmt(p50, 2)} | {fmt(p95, 2)} |")
    w("")
    if res["faiss_only"]:
        w(
            f"FAISS alone (same vectors, same {nq} query vectors, one `search` call per query, k=10, "
            "no SQLite), with FAISS's default OpenMP thread count (what `rag` runs with: it sets none) "
            f"and with one thread. At {small:,} chunks this is the store's own loaded index; at "
            f"{large:,} the ANN indexes were built outside the store from the vectors of the store's "
            "flat index, with `FaissStore._new_faiss` and the search settings of `_load_faiss`. "
            "One pass each."
        )
        w("")
        w("| chunks | FAISS index | threads | p50 ms | p95 ms | build |")
        w("| ---: | --- | ---: | ---: | ---: | --- |")
        for (n, kind, th), lat in res["faiss_only"].items():
            build = ""
            if n == large and kind == "ivf" and th != 1:
                iv = res["ivf_large"]
                build = (
                    f"{iv['build_s']:.0f}s (nlist {iv['nlist']}; k-means on a sample of "
                    f"{iv['train_n']:,} vectors, {iv['train_s']:.0f}s; the store would train on all)"
                )
            elif n == large and kind == "hnsw" and th != 1:
                build = f"{res['hnsw_large']['build_s']:.0f}s"
            w(
                f"| {n:,} | {kind} | {th} | {np.percentile(lat, 50):.2f} | {np.percentile(lat, 95):.2f} "
                f"| {build} |"
            )
        w("")
    w("Recall@10 of the approximate indexes against exact (flat) search, same queries:")
    w("")
    w("| chunks | FAISS index | dense recall@10 | hybrid top-10 overlap with flat-based hybrid |")
    w("| ---: | --- | ---: | ---: |")
    for (n, kind), r in res["recall"].items():
        h = res.get("recall_hybrid", {}).get((n, kind))
        note = "" if n == small else " (FAISS alone)"
        w(f"| {n:,} | {kind}{note} | {r:.3f} | {'' if h is None else f'{h:.3f}'} |")
    w("")
    w(
        "Read recall with the data in mind: each query's true neighbours sit in one cluster of ~100 "
        "(100k) or ~1,000 (1M) points, which HNSW's efSearch=128 and IVF's 32 probed lists cover, "
        "so recall near 1 here is an upper bound, not a forecast for real embeddings."
    )
    w("")
    if res.get("stale"):
        w(
            "Recall@10 of dense search in the process that committed the index, before reopening it "
            "(see the note on `commit` below: the freshly built index keeps FAISS's default search "
            "parameters there):"
        )
        w("")
        w("| chunks | FAISS index | search parameter in force | dense recall@10 |")
        w("| ---: | --- | --- | ---: |")
        for (n, kind), (r, params) in res["stale"].items():
            w(f"| {n:,} | {kind} | {params} | {r:.3f} |")
        w("")
    if res.get("load_s"):
        w(
            "Opening a store and answering its first request (reads the FAISS file: "
            "`_load_faiss`), one run each, page cache warm:"
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
            what = "first commit: SQLite rows + FTS5 + flat FAISS (data generation excluded)"
        elif kind == "flat":
            what = (
                f"growing from {small:,} in {res.get('build_batches', '?')} commits (flat, each "
                "rewrites the whole FAISS file; data generation excluded)"
            )
        else:
            what = (
                f"commit rebuilding the index as {kind} from SQLite (= cost of ANY commit to a {kind} store)"
            )
        w(f"| {n:,} | {what} | {sec:.1f} |")
    w("")
    w("## 2. Incremental update: `index_articles` adding one article (10 chunks), flat index")
    w("")
    w(
        f"A store built by `index_articles` from N synthetic articles (fake document embedder with "
        f"`.embed(texts, progress=None)` returning random unit vectors, `export_query_model=False`, "
        f"settings from `load_settings(environ={{}})`), then {upd_repeats} timed calls that each pass "
        "the same list plus one new article (so the store grows by one article per call). The "
        "time is the whole `index_articles` call: open, lock, recovery, hashing, chunking the one "
        "article, fake embedding, commit, FAISS write, clean-up."
    )
    w("")
    w("| articles in store | chunks | seconds to add one article | base build (one run) |")
    w("| ---: | ---: | ---: | ---: |")
    for n in upd_sizes:
        u = upd[n]
        w(f"| {n:,} | {u['chunks']:,} | {fmt(u['times'], 3)} | {u['base_s']:.1f}s |")
    a, b = upd[upd_sizes[0]]["times"], upd[upd_sizes[-1]]["times"]
    ratio = statistics.median(b) / statistics.median(a)
    w("")
    w(
        f"Ratio {upd_sizes[-1]:,}/{upd_sizes[0]:,} of the medians: **{ratio:.1f}×** for "
        f"{upd_sizes[-1] // upd_sizes[0]}× the articles (new chunks per call: "
        f"{sorted(set(upd[upd_sizes[-1]]['new_chunks']))})."
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
            w(f"| {label} | {sec:.3f} |")
        w("")
        w("Top entries by own time:")
        w("")
        w("```")
        w(trim_profile(upd["profile_tottime"], 12))
        w("```")
        w("")
    w("## 3. Disk size of each index folder")
    w("")
    w("| store | index | chunks.sqlite | FAISS file | folder total |")
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
    w("## Notes on `rag/faiss_store.py` seen while measuring")
    w("")
    w(
        "- `commit` keeps the FAISS index it has just built as the store's live index "
        "(`self._index, self._index_gen = index, gen`) without the search parameters that "
        "`_load_faiss` sets. In the process that committed, HNSW then searches with FAISS's default "
        "efSearch=16 and IVF with nprobe=1 until the store is reopened (recall table above); the "
        "benchmark reopens the store after every commit so that the figures above use "
        "efSearch=128/nprobe=32, as a reader process would."
    )
    w(
        "- Only a flat index is updated in place. Any commit to an HNSW or IVF store, even one "
        "adding a single article, reads every vector back from SQLite (`fetchall` of all rows, then "
        '`b"".join`, so about twice the vector bytes in Python memory on top of the index) and '
        "builds the index from scratch; IVF retrains k-means on all vectors. The rebuild rows in the "
        "build-time table are therefore the cost of adding one article to such a store, and with "
        'the default `kind = "auto"` every store above 200,000 chunks is HNSW.'
    )
    w(
        "- A flat incremental commit is still O(store size): it rewrites and fsyncs the whole FAISS "
        "file, and the recovery in `writing()`, the live count in `commit` and the clean-up "
        "(`_cleanup`, run by both) each do a full scan of the `chunks` table (no index on "
        "`gen_added`/`gen_removed`; the rows hold the 1.5 KB vector blob and the text, so a scan "
        "reads the whole table). See the profile in part 2."
    )
    w(
        "- In the flat path the live in-memory index is modified (`remove_ids`/`add_with_ids`) "
        "before the FAISS file and manifest are written; if the commit fails after that point, the "
        "store object keeps an index holding the uncommitted generation's vectors while "
        "`_index_gen` still names the old one (searches in that process lose hits to the "
        "visibility filter, and a later commit by the same object fails its count check)."
    )
    w(
        "- Adding vectors to a flat index just read from disk copies the whole index: `read_index` "
        "leaves the storage vector without spare capacity, so the first `add_with_ids` reallocates "
        "and copies all N×384 floats (the `IndexIDMap2_add_with_ids` line in the profile, for "
        "10 vectors). Since `index_articles` opens a fresh store each run, every incremental update "
        "pays a full read, a full copy and a full write of the FAISS file."
    )
    w(
        "- IVF uses nprobe=32 whatever nlist is (`4·√n`: 1,264 lists at 100k chunks, 4,000 at 1M), "
        "so the share of the index searched falls as the store grows (2.5% of the lists at 100k, "
        "0.8% at 1M). On this well-clustered data recall stayed at 1.000; on real embeddings, "
        "whose neighbourhoods spread over more lists, it may not."
    )
    w(
        "- Not in `faiss_store.py` itself, but on the query path: `rag` leaves FAISS's OpenMP "
        "thread count at its default (all cores). For one query at a time, the FAISS-alone table "
        "compares that with a single thread; on a busy 2-core machine a multi-threaded search "
        "also waits for the second thread to be scheduled."
    )
    w("")
    w("## Not measured")
    w("")
    if res["skipped"]:
        for s in res["skipped"]:
            w(f"- {s}.")
    w("- Query embedding (excluded by design), process start-up, filtered search, article removal.")
    if (large, "flat") in res["build"]:
        w(
            f"- At {large:,} chunks the ANN indexes were not put into the store (a store commit would "
            "rebuild them from SQLite, training IVF on all vectors): their latency is FAISS alone, "
            "without the SQLite lookup of the hits (compare the flat rows of both tables for that "
            "overhead), and bm25/hybrid at that size were measured with the flat store only (BM25 "
            "does not depend on the FAISS kind)."
        )
    w("")
    out.write_text("\n".join(L) + "\n", encoding="utf-8")


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

    # SQLite statements, attributed to the store method that ran them
    for (_file, _line, func), v in st.items():
        if "execute' of 'sqlite3.Connection" in func:
            by: dict[str, float] = {}
            for (cf, _cl, cfn), cv in v[4].items():
                name = f"{Path(cf).name}:{cfn}"
                by[name] = by.get(name, 0.0) + cv[3]
            out.append(("SQLite statements, all", v[3]))
            for name, sec in sorted(by.items(), key=lambda kv: -kv[1])[:5]:
                out.append((f"  of which from `{name}`", sec))
    out += [
        (
            "FAISS `read_index` (fresh store: loads the whole file)",
            cum(lambda f, ln, fn: "read_index>" in fn),
        ),
        ("FAISS `add_with_ids` (10 vectors)", cum(lambda f, ln, fn: "add_with_ids>" in fn)),
        ("FAISS `write_index` (whole file)", cum(lambda f, ln, fn: "write_index>" in fn)),
        ("`fsync` (FAISS file, manifest, folder)", cum(lambda f, ln, fn: "posix.fsync" in fn)),
        (
            "`json.dumps` / `json.loads` (manifest lists every article)",
            cum(lambda f, ln, fn: f.endswith("json/__init__.py") and fn in ("dumps", "loads")),
        ),
        (
            "`Article.content_hash` + `Article.id` (hashing every article)",
            cum(lambda f, ln, fn: f.endswith("ingest.py") and fn in ("content_hash", "id")),
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
