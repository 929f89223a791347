"""The answer line's cost (issue 31): `rag ask --llm` against `rag ask` on the shipped index.

- warm: one process, the models loaded, each question asked `--repeats` times in both modes;
  the whole `Answerer.ask`, and the line's own share (`timings["generate"]`);
- cold: `rag ask --llm Q --json` from starting the process to its exit, as a user runs it (the
  base model's sha256 already in the user cache, as after the first run on a machine);
- the adapter's size and the process's peak memory.

    python -m bench.line [--repeats 5] [--cold 3]     # writes bench/LINE.md
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from bench.common import RAG, ROOT, fmt, timed

# Questions a line answers (facts: what/which/who/when/how many), about the shipped articles
QUESTIONS = [
    "When did CERN announce that neutrinos travelled faster than light?",
    "Which HTTP library tops the list of overrated Python libraries?",
    "How many bytes does the hash_file function read at a time?",
    "What fraction of STEM PhD students become professors?",
    "Which companies are using Graph RAG?",
]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def warm(index: Path, repeats: int) -> dict:
    from rag.assembly import open_answerer
    from rag.config import load_settings

    s = load_settings(environ={})
    a = open_answerer(s, index)
    _ = a.llm  # loaded before timing
    for q in QUESTIONS:
        a.ask(q, mode="llm")
    out: dict = {"llm": [], "extractive": [], "line": [], "lines": []}
    for _ in range(repeats):
        for q in QUESTIONS:
            for mode in ("llm", "extractive"):
                t0 = time.perf_counter()
                ans = a.ask(q, mode=mode)
                out[mode].append(time.perf_counter() - t0)
                if mode == "llm":
                    out["line"].append(ans.timings.get("generate", 0.0))
                    out["lines"].append((q, ans.line or f"(none stood: {ans.draft!r})"))
    return out


def cold(index: Path, n: int) -> dict:
    walls, rss = [], []
    for i in range(n):
        q = QUESTIONS[i % len(QUESTIONS)]
        w, r, _ = timed([*RAG, "ask", "--llm", q, "--index", str(index), "--json"])
        walls.append(w)
        rss.append(r)
    return {"wall": walls, "rss": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, default=ROOT / "indexes" / "default")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cold", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "LINE.md")
    args = ap.parse_args()

    from rag.answer.line import ADAPTER_DIR, ADAPTER_FILE

    w = warm(args.index, args.repeats)
    c = cold(args.index, args.cold)
    ms = [1000 * x for x in w["llm"]]
    ex = [1000 * x for x in w["extractive"]]
    line = [1000 * x for x in w["line"]]
    size = (ADAPTER_DIR / ADAPTER_FILE).stat().st_size / 1e6
    lines = dict(w["lines"])
    text = "\n".join(
        [
            "# The answer line's cost (`python -m bench.line`)",
            "",
            f"{platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}; the shipped index; "
            f"{len(QUESTIONS)} questions x {args.repeats} in each mode (warm), {args.cold} cold runs.",
            "",
            "| | p50 | p95 |",
            "|---|---:|---:|",
            f"| `rag ask --llm`, warm (whole ask) | {statistics.median(ms):.0f} ms "
            f"| {pct(ms, 0.95):.0f} ms |",
            f"| of which the line (prompt + greedy line) | {statistics.median(line):.0f} ms "
            f"| {pct(line, 0.95):.0f} ms |",
            f"| `rag ask` (extractive), warm | {statistics.median(ex):.0f} ms | {pct(ex, 0.95):.0f} ms |",
            f"| `rag ask --llm --json`, cold (process start to exit) | {fmt(c['wall'], ' s')} | |",
            "",
            f"Peak memory of the cold process: {fmt(c['rss'], ' MB', 0)}. Adapter: {size:.1f} MB.",
            "",
            "The lines written (warm):",
            "",
            *(f"- {q} → {line_}" for q, line_ in lines.items()),
            "",
        ]
    )
    args.out.write_text(text, encoding="utf-8")
    print(text)
    print(json.dumps({"warm_ms": ms, "line_ms": line, "cold_s": c["wall"]}))


if __name__ == "__main__":
    main()
