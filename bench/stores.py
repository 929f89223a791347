"""The two stores side by side: FAISS + SQLite against Milvus Lite (a local file).

Run alone (`python -m bench.stores`) it replaces the "Stores" section of bench/RESULTS.md;
`python -m bench.run` includes it too. Measured:
- the shipped corpus: `rag index` whole process (build throughput), cold `rag search` (wall and
  peak RSS), warm in-process latency of each retriever, query embedding included;
- SciFact (the cached BEIR index `rag eval --beir` builds): writing its chunks and vectors into
  each store (embedding excluded: it costs the same for both), and warm latency;
- 50,000 synthetic chunks: the same, with random vectors and made-up text.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import QUERIES, RAG, ROOT, SCRAPES, fmt, timed
from rag.config import StoreSettings, load_settings

RETRIEVERS = ("dense", "bm25", "hybrid")


def _store(kind: str, where: Path) -> StoreSettings:
    if kind == "faiss":
        return StoreSettings(kind="faiss", uri=str(where / "faiss"))
    return StoreSettings(kind="milvus", uri=str(where / "milvus.db"))


def _flags(s: StoreSettings, where: Path) -> list[str]:
    return ["--store", s.kind, "--uri", s.uri, "--index", str(where / "local")]


def _latency(retriever: Any, queries: list[str], vectors: dict[str, np.ndarray] | None, rounds: int) -> dict:
    """p50/p95 in ms per retriever; with `vectors`, query embedding is excluded."""
    for q in queries[:5]:
        retriever.search(q, query_vector=None if vectors is None else vectors[q])
    out = {}
    for name in RETRIEVERS:
        lat = []
        for _ in range(rounds):
            for q in queries:
                if vectors is None:
                    retriever.forget_queries()  # measure the query embedding too
                t0 = time.perf_counter()
                retriever.search(q, retriever=name, query_vector=None if vectors is None else vectors[q])
                lat.append((time.perf_counter() - t0) * 1000)
        lat.sort()
        out[name] = (lat[len(lat) // 2], lat[int(len(lat) * 0.95)])
    return out


def shipped(repeats: int) -> dict:
    from rag.assembly import open_retriever
    from rag.stores import open_store

    settings = load_settings(environ={})
    res: dict[str, dict] = {}
    for kind in ("faiss", "milvus"):
        walls, rss, secs, chunks = [], [], [], 0
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as d:
                s = _store(kind, Path(d))
                w, r, out = timed([*RAG, "index", "--scrapes", str(SCRAPES), *_flags(s, Path(d)), "--json"])
                rep = json.loads(out)
                walls.append(w)
                rss.append(r)
                secs.append(rep["seconds"])
                chunks = rep["chunks"]
        with tempfile.TemporaryDirectory() as d:
            s = _store(kind, Path(d))
            timed([*RAG, "index", "--scrapes", str(SCRAPES), *_flags(s, Path(d)), "--json"])
            cw, cr = [], []
            for _ in range(repeats):
                w, r, _out = timed([*RAG, "search", "what is p-hacking", *_flags(s, Path(d)), "--json"])
                cw.append(w)
                cr.append(r)
            store = open_store(Path(d) / "local", settings=s)
            warm = _latency(open_retriever(settings, store=store), QUERIES, None, 20)
            store.close()
        res[kind] = {
            "build_wall": walls,
            "build_rss": rss,
            "chunks_per_s": [chunks / x for x in secs],
            "chunks": chunks,
            "cold_wall": cw,
            "cold_rss": cr,
            "warm": warm,
        }
    return res


def _write_and_time(make: Any, kind: str, where: Path) -> tuple[Any, float]:
    from rag.stores import open_store

    s = _store(kind, where)
    store = open_store(where / "local", create=True, settings=s)
    t0 = time.perf_counter()
    make(store)
    return store, time.perf_counter() - t0


def scifact() -> dict | None:
    """Copy the cached SciFact index into fresh stores of each kind; time the writes and queries."""
    from rag.assembly import open_retriever
    from rag.evaluation.beir import load_beir
    from rag.index import copy_index
    from rag.stores import open_store

    cache = sorted((ROOT / "eval" / "cache").glob("beir-*[0-9a-f]"), key=lambda p: p.stat().st_mtime)
    cache = [p for p in cache if (p / "manifest.json").exists()]
    data_dir = ROOT.parent / "shared" / "benchmarks" / "scifact"
    if not cache or not data_dir.exists():
        return None
    source = open_store(cache[-1])
    data = load_beir(data_dir)
    queries = list(data.queries.values())[:100]
    settings = load_settings(environ={})
    probe = open_retriever(settings, store=source)
    vectors = {q: probe.embed_query(q) for q in queries}
    out: dict[str, Any] = {"chunks": source.chunk_count(), "queries": len(queries)}
    for kind in ("faiss", "milvus"):
        with tempfile.TemporaryDirectory() as d:
            store, sec = _write_and_time(lambda st: copy_index(source, st), kind, Path(d))
            r = open_retriever(settings, store=store, embedder=probe.embedder)
            out[kind] = {"write_s": sec, "warm": _latency(r, queries, vectors, 2)}
            store.close()
    return out


def synthetic(n_chunks: int = 50_000, per_article: int = 10, seed: int = 7) -> dict:
    """`n_chunks` made-up chunks (Zipf words, clustered unit vectors) written into each store."""
    from rag.assembly import open_retriever
    from rag.chunk import Chunk
    from rag.index import identity
    from rag.ingest import Article
    from rag.stores import Changes

    rng = np.random.default_rng(seed)
    pyrng = random.Random(seed)
    vocab = [f"w{i}" for i in range(5000)]
    weights = [1 / (i + 1) for i in range(len(vocab))]
    centres = rng.normal(size=(500, 384)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def vecs(k: int) -> np.ndarray:
        v = centres[rng.integers(0, len(centres), k)] + rng.normal(0, 0.05, (k, 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    changes = Changes()
    for a in range(n_chunks // per_article):
        bodies = [" ".join(pyrng.choices(vocab, weights, k=60)) for _ in range(per_article)]
        text = "\n\n".join(f"## Section {i}\n\n{b}" for i, b in enumerate(bodies))
        art = Article(
            url=f"https://example.org/a{a}",
            title=" ".join(pyrng.choices(vocab, weights, k=3)),
            publication=f"Pub {a % 7}",
            published=f"2024-{a % 12 + 1:02d}-01",
            fetched=None,
            text=text,
            member_only=False,
            source_file="synthetic",
            source_line=0,
        )
        chunks, pos = [], 0
        for i, b in enumerate(bodies):
            start = text.index(b, pos)
            pos = start + len(b)
            chunks.append(
                Chunk(f"{a:06d}{i:04d}", art.id, art.url, art.title, f"Section {i}", start, pos, b, i)
            )
        changes.added.append((art, chunks, vecs(per_article)))
    settings = load_settings(environ={})
    manifest = {**identity(settings), "index_kind": "flat", "counts": {"chunks": n_chunks}}
    queries = [" ".join(pyrng.choices(vocab[100:2000], k=4)) for _ in range(100)]
    qv = dict(zip(queries, vecs(len(queries)), strict=True))
    out: dict[str, Any] = {"chunks": n_chunks, "queries": len(queries)}
    for kind in ("faiss", "milvus"):
        with tempfile.TemporaryDirectory() as d:

            def write(st: Any) -> None:
                with st.writing():
                    st.commit(changes, manifest)

            store, sec = _write_and_time(write, kind, Path(d))
            r = open_retriever(settings, store=store, embedder=object())
            out[kind] = {"write_s": sec, "warm": _latency(r, queries, qv, 2)}
            store.close()
    return out


def main(repeats: int = 3) -> list[str]:
    load = os.getloadavg()[0]
    lines = [
        f"Milvus Lite 3.2.2 file mode (in-process) against FAISS + SQLite; load average {load:.1f} at "
        "the start. Warm latencies: p50 / p95 in ms over every query and round.",
        "",
    ]
    sh = shipped(repeats)
    lines += [
        "### Shipped corpus (11 articles)",
        "",
        "| store | `rag index` wall | build chunks/s (in process) | peak RSS | cold `rag search` | "
        "its peak RSS | dense | bm25 | hybrid |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, r in sh.items():
        warm = " | ".join(f"{p50:.1f} / {p95:.1f}" for p50, p95 in r["warm"].values())
        lines.append(
            f"| {kind} | {fmt(r['build_wall'], ' s')} | {fmt(r['chunks_per_s'], '', 1)} | "
            f"{fmt(r['build_rss'], ' MB', 0)} | {fmt(r['cold_wall'], ' s')} | "
            f"{fmt(r['cold_rss'], ' MB', 0)} | {warm} |"
        )
    lines += ["", "Warm latencies include embedding the query (ONNX, about 3 ms).", ""]
    for title, res in (("SciFact", scifact()), ("50,000 synthetic chunks", synthetic())):
        if res is None:
            lines += [f"### {title}", "", "not measured: no cached SciFact index (run `make eval-beir`)", ""]
            continue
        lines += [
            f"### {title} ({res['chunks']:,} chunks, {res['queries']} queries, query embedding excluded)",
            "",
            "| store | write all chunks | chunks/s | dense | bm25 | hybrid |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for kind in ("faiss", "milvus"):
            r = res[kind]
            warm = " | ".join(f"{p50:.1f} / {p95:.1f}" for p50, p95 in r["warm"].values())
            lines.append(f"| {kind} | {r['write_s']:.1f} s | {res['chunks'] / r['write_s']:.0f} | {warm} |")
        lines.append("")
    return lines


def splice(lines: list[str]) -> None:
    """Put the section into bench/RESULTS.md, replacing an older one."""
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = "## Stores: FAISS + SQLite and Milvus Lite\n\n" + "\n".join(lines) + "\n"
    pattern = re.compile(r"## Stores: FAISS \+ SQLite and Milvus Lite\n.*?(?=\n## |\Z)", re.S)
    text = (
        pattern.sub(lambda _m: section.rstrip("\n"), text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section
    )
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    out = main(int(os.environ.get("BENCH_REPEATS", "3")))
    print("\n".join(out))
    splice(out)
