"""Benchmarks (not tests): run with `make bench` (`python -m bench.run`); writes bench/RESULTS.md.

Every figure is the median (min-max) of repeated runs. Whole-process figures run the real `rag`
command in a fresh process and read its peak RSS from the kernel (ru_maxrss of the child).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.common import QUERIES, RAG, ROOT, SCRAPES, fmt, home, timed

PAUSE_S = 2.0  # between timed embedding runs of different libraries (see bench_embed)


def bench_build(repeats: int, env: dict[str, str] | None = None) -> dict:
    from rag.config import load_settings

    settings = load_settings(environ={})
    walls, rss, reports = [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            w, r, out = timed(
                [*RAG, "index", "--scrapes", str(SCRAPES), "--index", f"{d}/i", "--json"], env=env
            )
            walls.append(w)
            rss.append(r)
            reports.append(json.loads(out))
    # chunk lengths in embedder tokens
    from rag.chunk import SPECIAL_TOKENS
    from rag.embed import count_tokens
    from rag.index import chunk_articles
    from rag.ingest import ingest

    arts = ingest(SCRAPES).articles
    chunks = [c for cs in chunk_articles(arts, settings) for c in cs]
    toks = [count_tokens(c.embed_text) + SPECIAL_TOKENS for c in chunks]
    return {
        "wall": walls,
        "rss": rss,
        "chunks": reports[0]["chunks"],
        "in_process_seconds": [r["seconds"] for r in reports],
        "mean_tokens": statistics.mean(toks),
        "max_tokens": max(toks),
    }


def bench_embed(repeats: int) -> dict:
    """`rag index`'s embedder (ONNX, length-bucketed) against the raw sentence-transformers model
    on the same chunk texts, in the same run; int8 alongside (not the default: see RESULTS.md)."""
    from sentence_transformers import SentenceTransformer

    from rag.config import load_settings
    from rag.embed import model_dir, onnx_embedder
    from rag.index import chunk_articles
    from rag.ingest import ingest

    settings = load_settings(environ={})
    texts = [c.embed_text for cs in chunk_articles(ingest(SCRAPES).articles, settings) for c in cs]
    e = settings.embed
    ours = onnx_embedder(e.precision, batch_size=e.batch_size, threads=e.threads)
    int8 = onnx_embedder("int8", batch_size=e.batch_size, threads=e.threads)
    raw = SentenceTransformer(str(model_dir()), device="cpu")  # called the way its documentation shows
    ours.embed(texts[:32]), int8.embed(texts[:32]), raw.encode(texts[:32])  # warm-up

    def encode(batch: list[str]) -> None:
        raw.encode(batch, batch_size=e.batch_size, normalize_embeddings=True)

    ours_s, int8_s, raw_s = [], [], []
    for _ in range(repeats):
        for fn, out in ((ours.embed, ours_s), (int8.embed, int8_s), (encode, raw_s)):
            # Both libraries keep their worker threads spinning for a while after a call; measured
            # back to back, whichever runs next shares the two cores with them (onnxruntime ran at
            # 16-20 chunks/s right after torch, 24-25 alone). The pause lets them sleep.
            time.sleep(PAUSE_S)
            t0 = time.perf_counter()
            fn(texts)
            out.append(len(texts) / (time.perf_counter() - t0))
    return {"ours": ours_s, "int8": int8_s, "raw": raw_s, "texts": len(texts)}


def bench_nothing_to_do(repeats: int) -> dict:
    """`rag index` over an unchanged folder, and over an empty one (which must say so)."""
    walls, rss, empty = [], [], []
    with tempfile.TemporaryDirectory() as d:
        idx = f"{d}/i"
        (Path(d) / "empty").mkdir()
        timed([*RAG, "index", "--scrapes", str(SCRAPES), "--index", idx, "--json"])
        for _ in range(repeats):
            w, r, out = timed([*RAG, "index", "--scrapes", str(SCRAPES), "--index", idx, "--json"])
            assert json.loads(out)["embedded_chunks"] == 0
            walls.append(w)
            rss.append(r)
            t0 = time.perf_counter()
            p = subprocess.run(
                [*RAG, "index", "--scrapes", f"{d}/empty", "--index", idx], capture_output=True, text=True
            )
            empty.append(time.perf_counter() - t0)
            assert p.returncode == 1 and "no articles found in" in p.stderr, p.stderr
    return {"wall": walls, "rss": rss, "empty": empty}


SCIFACT = """
import json, sys, time, tempfile
from pathlib import Path
from {evaluation} import beir_index, load_beir, run_beir_suite
from rag.config import load_settings
from rag.retrieve import Retriever
from {stores} import open_store
settings = load_settings(environ={{}})
data = load_beir(Path(sys.argv[1]))
with tempfile.TemporaryDirectory() as d:
    t0 = time.perf_counter()
    path = beir_index(data, settings, Path(d))
    seconds = time.perf_counter() - t0
    store = open_store(path)
    r = Retriever(store, settings.retrieve.model_copy(update={{"max_per_article": 0}}))
    result = run_beir_suite(r, data, ["dense", "bm25", "hybrid"], k=10)
    ndcg = {{n: v["document"]["ndcg@10"] for n, v in result["retrievers"].items()}}
    out = {{"seconds": seconds, "chunks": store.chunk_count(), "docs": len(data.corpus), "ndcg": ndcg}}
print(json.dumps(out))
"""


def bench_before(repeats: int, before: Path) -> dict:
    """The build-path targets measured with the code from before this round (a checkout named by
    BENCH_BEFORE, whose `rag index` embeds with sentence-transformers on torch), in this run."""
    env = {**os.environ, "PYTHONPATH": str(before)}
    out: dict = {"build": bench_build(repeats, env), "incremental": bench_incremental(repeats, env)}
    with tempfile.TemporaryDirectory() as d:
        idx = Path(d) / "i"
        timed([*RAG, "index", "--scrapes", str(SCRAPES), "--index", str(idx), "--json"], env=env)
        search = [
            timed([*RAG, "search", "what is p-hacking", "--index", str(idx), "--json"], env=env)
            for _ in range(repeats)
        ]
        out["search"] = {"wall": [w for w, _, _ in search], "rss": [r for _, r, _ in search]}
    sci = bench_scifact(env, old_layout=True)
    if sci:
        out["scifact"] = sci
    return out


def bench_llamaindex(repeats: int) -> dict | None:
    """The same corpus built by a LlamaIndex pipeline (its FAISS store, the HuggingFace
    embedding of the packaged model), whole process; needs the separate venv named by
    BENCH_LLAMAINDEX_PYTHON (default /work/venv-llamaindex/bin/python): see llamaindex_build.py."""
    python = Path(os.environ.get("BENCH_LLAMAINDEX_PYTHON", "/work/venv-llamaindex/bin/python"))
    if not python.exists():
        return None
    from rag.ingest import ingest

    walls, rss, chunks = [], [], 0
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "articles"
        folder.mkdir()
        for n, a in enumerate(ingest(SCRAPES).articles):  # the same cleaned articles rag indexes
            (folder / f"{n:03d}.txt").write_text(f"{a.title}\n\n{a.text}", encoding="utf-8")
        for i in range(repeats):
            script = str(ROOT / "bench" / "llamaindex_build.py")
            w, r, out = timed([str(python), script, "--articles", str(folder), "--out", f"{d}/out-{i}"])
            walls.append(w)
            rss.append(r)
            chunks = json.loads(out.strip().splitlines()[-1])["chunks"]
    return {"wall": walls, "rss": rss, "chunks": chunks}


def targets(
    b: dict,
    inc: dict,
    emb: dict,
    sci: dict | None,
    cold: dict,
    bare: list,
    first: list,
    pre: dict | None,
    li: dict | None,
) -> list[str]:
    """Issue 14's targets, before (the code named by BENCH_BEFORE) and now, from this run."""
    med = statistics.median

    def was(key: str, field: str = "wall", unit: str = " s", digits: int = 2) -> str:
        return fmt(pre[key][field], unit, digits) if pre else "not measured"

    search_now = med(cold["search"]["wall"])
    rows = [
        ("one new article, whole process", "≤ 1.5 s", was("incremental"), fmt(inc["wall"], " s")),
        ("full build of the shipped corpus, wall", "≤ 5 s", was("build"), fmt(b["wall"], " s")),
        ("full build, peak RSS", "≤ 400 MB", was("build", "rss", " MB", 0), fmt(b["rss"], " MB", 0)),
        (
            "embedding throughput / raw sentence-transformers",
            "≥ 2x",
            "93% (RESULTS.md before this round)",
            f"{med(emb['ours']) / med(emb['raw']):.2f}x",
        ),
        (
            "cold `rag search` / bare import",
            "≤ 2x",
            f"{med(pre['search']['wall']) / med(bare):.1f}x" if pre else "not measured",
            f"{search_now / med(bare):.1f}x",
        ),
        (
            "cold `rag search`, peak RSS",
            "≤ 250 MB",
            was("search", "rss", " MB", 0),
            fmt(cold["search"]["rss"], " MB", 0),
        ),
        (
            "cold `rag ask --llm`, first token from process start",
            "≤ 1.5 s",
            "2.03 s (issue 14)",
            fmt(first, " s"),
        ),
    ]
    if sci:
        rows.append(
            (
                "SciFact build (5,183 abstracts), in process",
                "half of before",
                f"{pre['scifact']['seconds']:.1f} s" if pre and "scifact" in pre else "not measured",
                f"{sci['seconds']:.1f} s",
            )
        )
        for n, v in sci["ndcg"].items():
            old = pre["scifact"]["ndcg"][n] if pre and "scifact" in pre else None
            rows.append(
                (
                    f"SciFact nDCG@10, {n}",
                    "within 0.002",
                    f"{old:.4f}" if old is not None else "–",
                    f"{v:.4f}",
                )
            )
    if li:
        rows.append(
            (
                "LlamaIndex pipeline, full build of the same articles",
                "ratio",
                f"{fmt(li['wall'], ' s')}, {fmt(li['rss'], ' MB', 0)} ({li['chunks']} chunks)",
                f"rag {med(b['wall']) / med(li['wall']):.2f}x its time, "
                f"{med(b['rss']) / med(li['rss']):.2f}x its memory",
            )
        )
    out = [
        "## Build-path targets (issue 14), before and now, this run",
        "",
        "| target | goal | before | now |",
        "|---|---|---:|---:|",
    ]
    out += [f"| {a} | {g} | {x} | {y} |" for a, g, x, y in rows]
    return [*out, ""]


def bench_bare_import(repeats: int) -> list[float]:
    """The libraries a search needs, imported and nothing else: the floor for a cold search."""
    out = []
    for _ in range(repeats):
        w, _, _ = timed([sys.executable, "-c", "import onnxruntime, tokenizers, faiss, numpy, sqlite3"])
        out.append(w)
    return out


def bench_scifact(env: dict[str, str] | None = None, old_layout: bool = False) -> dict | None:
    """SciFact's corpus indexed as `rag eval --beir` does (fresh cache), then nDCG@10 of each
    retriever; in its own process, with the code `env` names (`old_layout`: rag.evaluate)."""
    folder = Path(os.environ.get("RAG_SCIFACT", "/work/shared/benchmarks/scifact"))
    if not (folder / "corpus.jsonl").exists() or os.environ.get("BENCH_SCIFACT", "1") == "0":
        return None
    code = SCIFACT.format(
        evaluation="rag.evaluate" if old_layout else "rag.evaluation.beir",
        stores="rag.store" if old_layout else "rag.stores",
    )
    p = subprocess.run(
        [sys.executable, "-c", code, str(folder)], capture_output=True, text=True, env=env, cwd=home(env)
    )
    if p.returncode != 0:
        raise SystemExit(f"SciFact failed: {p.stderr[-800:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def bench_incremental(repeats: int, env: dict[str, str] | None = None) -> dict:
    """Add one new article to an up-to-date index of the shipped corpus."""
    new = ROOT / "tests" / "data" / "one_article.md"
    walls, rss = [], []
    with tempfile.TemporaryDirectory() as d:
        scr = Path(d) / "scrapes"
        shutil.copytree(SCRAPES, scr)
        idx = f"{d}/i"
        timed([*RAG, "index", "--scrapes", str(scr), "--index", idx, "--json"], env=env)
        for i in range(repeats):
            text = new.read_text(encoding="utf-8").replace("one-article-1", f"one-article-{i + 2}")
            text = text.replace("A vector index answers", f"In part {i + 2}: a vector index answers")
            (scr / f"new-{i}.md").write_text(text, encoding="utf-8")
            w, r, out = timed([*RAG, "index", "--scrapes", str(scr), "--index", idx, "--json"], env=env)
            rep = json.loads(out)
            assert rep["added"] == 1, rep
            walls.append(w)
            rss.append(r)
    return {"wall": walls, "rss": rss}


def bench_cold(repeats: int, index: Path) -> dict:
    out = {}
    for name, args in {
        "search": [*RAG, "search", "what is p-hacking", "--index", str(index), "--json"],
        "ask --extractive": [
            *RAG,
            "ask",
            "What is p-hacking?",
            "--index",
            str(index),
            "--json",
            "--extractive",
        ],
        "ask (llm)": [*RAG, "ask", "What is p-hacking?", "--index", str(index), "--json", "--llm"],
    }.items():
        walls, rss, firsts = [], [], []
        for _ in range(repeats):
            w, r, o = timed(args)
            walls.append(w)
            rss.append(r)
            t = json.loads(o.splitlines()[0]).get("timings", {})
            if "first_token" in t:
                firsts.append(t["first_token"])
        out[name] = {"wall": walls, "rss": rss, "first_token_in_process": firsts}
    return out


def cold_first_token(index: Path, repeats: int) -> list[float]:
    """Seconds from starting `rag ask --llm` to its first streamed token, as a user sees it."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = subprocess.Popen(
            [*RAG, "ask", "--llm", "What is p-hacking?", "--index", str(index)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert p.stderr is not None
        seen, first = "", None
        while ch := p.stderr.read(1):
            seen += ch
            if first is None and "draft: " in seen and not seen.endswith("draft: "):
                first = time.perf_counter() - t0
        p.wait()
        if p.returncode != 0 or first is None:
            raise SystemExit(f"rag ask --llm streamed nothing: {seen[-500:]}")
        out.append(first)
    return out


def bench_warm(index: Path, repeats: int = 20) -> dict:
    from rag.assembly import open_retriever
    from rag.config import load_settings

    s = load_settings(environ={})
    r = open_retriever(s, index)
    for q in QUERIES:
        r.search(q)  # load models and caches
    out = {}
    for name in ("dense", "bm25", "hybrid"):
        lat = []
        for _ in range(repeats):
            for q in QUERIES:
                r.forget_queries()  # measure the query embedding too
                t0 = time.perf_counter()
                r.search(q, retriever=name)
                lat.append((time.perf_counter() - t0) * 1000)
        lat.sort()
        out[name] = {"p50": lat[len(lat) // 2], "p95": lat[int(len(lat) * 0.95)]}
    return out


def bench_llm(index: Path, repeats: int) -> dict:
    from rag.answer import generate
    from rag.assembly import open_answerer
    from rag.config import load_settings

    s = load_settings(environ={})
    a = open_answerer(s, index, fitted=False)
    _ = a.llm  # load before timing
    firsts, tps = [], []
    for _ in range(repeats):
        for q in ["What is p-hacking?", "What does softmax do?"]:
            toks = 0
            first = None
            hits = a.retriever.search(q, k=s.answer.sources)
            msgs = a.prompt(q, a.sources(hits), a.retriever.embed_query(q))

            t1 = time.perf_counter()
            for _tok in generate(a.llm, msgs, s.llm):
                if first is None:
                    first = time.perf_counter() - t1
                toks += 1
            gen = time.perf_counter() - t1 - (first or 0)
            firsts.append(first or 0)
            if toks > 1 and gen > 0:
                tps.append((toks - 1) / gen)
    # The bindings' own speed for the same model and threads: plain completion of a fixed
    # prompt, no chat template, no streaming wrapper, no stop strings.
    raw = []
    for _ in range(repeats):
        t1 = time.perf_counter()
        out = a.llm.create_completion("The history of statistics", max_tokens=128, temperature=0.0)
        n = out["usage"]["completion_tokens"]
        raw.append(n / (time.perf_counter() - t1))
    return {"first_token": firsts, "tokens_per_second": tps, "raw_tokens_per_second": raw}


def main() -> None:
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    # A fresh per-user model cache: the first build writes the ONNX graph, as a new user's does.
    cache = tempfile.mkdtemp(prefix="rag-bench-cache-")
    os.environ["XDG_CACHE_HOME"] = cache
    try:
        _main(repeats)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _main(repeats: int) -> None:
    lines = [
        "# Benchmarks",
        "",
        f"- date: {date.today()}; machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; no GPU",
        f"- figures: median (min–max) over {repeats} runs unless said otherwise; "
        "`make bench` regenerates this file",
        "",
    ]
    head = len(lines)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        timed([*RAG, "index", "--scrapes", str(SCRAPES), "--index", f"{d}/i", "--json"])
        first = time.perf_counter() - t0
    b = bench_build(repeats)
    lines += [
        "## Index build, shipped corpus (11 articles)",
        "",
        f"- `rag index` whole process, fresh index: {fmt(b['wall'], ' s')}, "
        f"peak RSS {fmt(b['rss'], ' MB', 0)}",
        f"- the very first build on a machine also writes the ONNX graph to the model cache: {first:.2f} s",
        f"- in-process build time (as reported by `--json`): {fmt(b['in_process_seconds'], ' s')}",
        f"- chunks: {b['chunks']}; mean chunk length {b['mean_tokens']:.0f} tokens (max {b['max_tokens']}, "
        "embedder window 256, prefix included)",
        "",
    ]
    emb = bench_embed(repeats)
    ratio = statistics.median(emb["ours"]) / statistics.median(emb["raw"])
    lines += [
        "## Embedding throughput during `rag index` against the raw model",
        "",
        "- `rag`'s embedding step (ONNX graph written from the weights, fp32, length-bucketed "
        f"batches of at most 1,024 padded tokens): {fmt(emb['ours'], ' chunks/s', 1)}",
        "- the same with dynamic int8 weights (per output channel, 7 bits; an option, not the "
        "default: dense nDCG@10 +0.005 on the dev set, −0.005 on SciFact, beyond the 0.002 allowed): "
        f"{fmt(emb['int8'], ' chunks/s', 1)}",
        f"- sentence-transformers `encode` on the same {emb['texts']} texts, batch 32: "
        f"{fmt(emb['raw'], ' chunks/s', 1)}",
        f"- ratio of the medians: **{ratio:.0%}** of the raw model's throughput",
        f"- each timing follows a {PAUSE_S:.0f} s pause: both libraries' worker threads keep spinning "
        "for a while after a call and slowed whichever ran next",
        "",
    ]
    inc = bench_incremental(repeats)
    lines += [
        "## Incremental update: one new article added to the shipped corpus index",
        "",
        f"- `rag index` whole process: {fmt(inc['wall'], ' s')}, peak RSS {fmt(inc['rss'], ' MB', 0)}",
        "",
    ]
    nothing = bench_nothing_to_do(repeats)
    lines += [
        "## Nothing to do",
        "",
        f"- `rag index` over the unchanged folder (no file read, no embedder loaded): "
        f"{fmt(nothing['wall'], ' s')}, peak RSS {fmt(nothing['rss'], ' MB', 0)}",
        f'- `rag index` over an empty folder ("no articles found in DIR"): {fmt(nothing["empty"], " s")}',
        "",
    ]
    sci = bench_scifact()
    if sci:
        lines += [
            "## SciFact build through `rag eval --beir`'s index step",
            "",
            f"- {sci['docs']} abstracts, {sci['chunks']} chunks, fresh cache: "
            f"{sci['seconds']:.1f} s in process",
            "- nDCG@10: " + ", ".join(f"{n} {v:.4f}" for n, v in sci["ndcg"].items()),
            "",
        ]
    before = os.environ.get("BENCH_BEFORE")
    pre = bench_before(repeats, Path(before)) if before else None
    li = bench_llamaindex(repeats)
    with tempfile.TemporaryDirectory() as d:
        idx = Path(d) / "i"
        timed([*RAG, "index", "--scrapes", str(SCRAPES), "--index", str(idx), "--json"])
        cold = bench_cold(repeats, idx)
        lines += [
            "## Cold whole-process runs, shipped corpus",
            "",
            "| command | wall | peak RSS | first token (in process) |",
            "|---|---:|---:|---:|",
        ]
        for name, c in cold.items():
            ft = fmt(c["first_token_in_process"], " s") if c["first_token_in_process"] else "–"
            lines.append(f"| `rag {name}` | {fmt(c['wall'], ' s')} | {fmt(c['rss'], ' MB', 0)} | {ft} |")
        bare = bench_bare_import(repeats)
        ratio = statistics.median(cold["search"]["wall"]) / statistics.median(bare)
        lines += [
            "",
            f'- bare `python -c "import onnxruntime, tokenizers, faiss, numpy, sqlite3"`: {fmt(bare, " s")}; '
            f"cold `rag search` is **{ratio:.1f}x** that",
        ]
        first_token = cold_first_token(idx, repeats)
        lines += [
            "",
            "- `rag ask --llm`, from starting the process to the first streamed token: "
            f"{fmt(first_token, ' s')} (the system prompt's evaluated context comes from the "
            "per-user cache, written by the first `rag ask --llm` of this run, in the rows above)",
        ]
        warm = bench_warm(idx)
        lines += [
            "",
            "## Warm query latency in process, shipped corpus (query embedding included)",
            "",
            "| retriever | p50 | p95 |",
            "|---|---:|---:|",
        ]
        for name, w in warm.items():
            lines.append(f"| {name} | {w['p50']:.1f} ms | {w['p95']:.1f} ms |")
        llm = bench_llm(idx, repeats)
        lines += [
            "",
            "## LLM (SmolLM2-135M-Instruct Q4_1, llama.cpp, 2 threads)",
            "",
            f"- first token after the prompt is sent (the prompt holds the extractive answer's "
            f"passages from at most answer.prompt_sources sources): {fmt(llm['first_token'], ' s')}",
            f"- generation speed: {fmt(llm['tokens_per_second'], ' tok/s', 1)}",
            "- llama.cpp's own speed, same model and threads (plain completion of 128 tokens, "
            f"prompt included): {fmt(llm['raw_tokens_per_second'], ' tok/s', 1)}",
            "",
        ]
    # Portable against native llama.cpp needs a second, native build (minutes): `make bench-llm-build`.
    llm_build = ROOT / "bench" / "LLM_BUILD.md"
    if llm_build.exists():
        lines += [llm_build.read_text(encoding="utf-8").rstrip(), ""]
    from bench import size, stores

    lines += [
        "## Size runs (fake embedder: parsing, cleaning, chunking and the store only)",
        "",
        *size.main(),
        "",
    ]
    lines += ["## Stores: FAISS + SQLite and Milvus Lite", "", *stores.main(repeats), ""]
    lines += [
        "## Scale (100,000 and 1,000,000 chunks, approximate indexes, incremental updates)",
        "",
        "Measured by `make bench-scale` (about an hour on 2 cores) and written to `bench/SCALE.md`.",
        "",
    ]
    lines[head:head] = targets(b, inc, emb, sci, cold, bare, first_token, pre, li)
    out = ROOT / "bench" / "RESULTS.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
