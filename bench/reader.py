"""What the reader costs (issue 26): reading the top passages of a question warm, `rag ask` warm
with and without it, the reader retriever's warm query, and cold `rag ask` whole-process. Run
alone on an idle machine; writes bench/READER.md.

    python -m bench.reader [--questions 60] [--repeats 3]

The development questions (eval/questions.jsonl, follow-ups left out, the first N) are asked of
the shipped index; "without the reader" is the similarity threshold (no fitted decision), since
the shipped decision needs the reader's signal.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

from bench.common import RAG, ROOT, fmt, timed

QUESTION = "What is statistical significance?"
MODEL = ROOT / "models" / "reader" / "reader.onnx"


def percentiles(ms: list[float]) -> str:
    ms = sorted(ms)
    return f"{ms[len(ms) // 2]:.0f} ms p50, {ms[int(len(ms) * 0.95)]:.0f} ms p95"


def warm(questions: list[str], reader: bool) -> dict[str, list[float]]:
    """Per question: the whole `ask` (extractive) and, with the reader, its `read` call."""
    from rag.assembly import open_answerer
    from rag.config import load_settings

    env = {} if reader else {"RAG_ANSWER__READER": "false", "RAG_PATHS__ABSTENTION": "/nonexistent"}
    settings = load_settings(environ=env)
    answerer = open_answerer(settings)
    read_ms: list[float] = []
    if answerer.reader is not None:
        inner = answerer.reader.read

        def timed_read(question, passages):
            t0 = time.perf_counter()
            out = inner(question, passages)
            read_ms.append((time.perf_counter() - t0) * 1000)
            return out

        answerer.reader.read = timed_read
    for q in questions[:3]:
        answerer.ask(q, mode="extractive")  # load the models
    read_ms.clear()
    total = []
    for q in questions:
        answerer.retriever.forget_queries()
        t0 = time.perf_counter()
        answerer.ask(q, mode="extractive")
        total.append((time.perf_counter() - t0) * 1000)
    return {"total": total, "read": read_ms}


def warm_retriever(questions: list[str]) -> dict[str, list[float]]:
    from rag.assembly import open_retriever
    from rag.config import load_settings

    r = open_retriever(load_settings(environ={}))
    out: dict[str, list[float]] = {}
    for name in ("hybrid", "reader"):
        r.search(questions[0], retriever=name)
        out[name] = []
        for q in questions:
            r.forget_queries()
            t0 = time.perf_counter()
            r.search(q, retriever=name)
            out[name].append((time.perf_counter() - t0) * 1000)
    return out


def cold(repeats: int) -> dict[str, tuple[list[float], list[float]]]:
    args = [*RAG, "ask", QUESTION, "--json", "--extractive"]
    off = {**os.environ, "RAG_ANSWER__READER": "false", "RAG_PATHS__ABSTENTION": "/nonexistent"}
    out = {}
    for name, env in (("with the reader (shipped)", None), ("without the reader", off)):
        walls, rss = [], []
        for _ in range(repeats):
            w, r, _ = timed(args, env=env)
            walls.append(w)
            rss.append(r)
        out[name] = (walls, rss)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "READER.md")
    args = ap.parse_args()
    from rag.evaluation.questions import load_questions

    qs = [q.question for q in load_questions(ROOT / "eval" / "questions.jsonl") if q.type != "followup"]
    qs = qs[: args.questions]
    with_reader, without = warm(qs, True), warm(qs, False)
    retrieval = warm_retriever(qs)
    runs = cold(args.repeats)
    lines = [
        "# What the reader costs",
        "",
        f"- date: {date.today()}; machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; no GPU; `python -m bench.reader` regenerates this file",
        f"- reader: `models/reader/reader.onnx`, {MODEL.stat().st_size / 1e6:.1f} MB",
        "",
        f"## Warm, in process: {len(qs)} development questions, shipped index, query embedding included",
        "",
        "| | latency |",
        "|---|---:|",
        f"| `ask`, extractive, with the reader (shipped) | {percentiles(with_reader['total'])} |",
        f"| of which the reader reading the top 3 chunks | {percentiles(with_reader['read'])} |",
        f"| `ask`, extractive, without the reader (similarity threshold) | {percentiles(without['total'])} |",
        f"| `search`, hybrid | {percentiles(retrieval['hybrid'])} |",
        f"| `search`, reader retriever (hybrid's first 10 reread) | {percentiles(retrieval['reader'])} |",
        "",
        f'## Cold whole-process `rag ask "{QUESTION}" --extractive`, {args.repeats} runs',
        "",
        "| | wall | peak RSS |",
        "|---|---:|---:|",
    ]
    for name, (walls, rss) in runs.items():
        lines.append(f"| {name} | {fmt(walls, ' s')} | {fmt(rss, ' MB', 0)} |")
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
