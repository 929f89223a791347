"""What the benchmarks share: the repository's paths, the `rag` command, the shipped queries, one
way to write repeated timings, and a whole-process timer that reads the child's own peak RSS."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RAG = [sys.executable, "-m", "rag"]
SCRAPES = ROOT / "data" / "scrapes"
QUERIES = [
    "what is p-hacking",
    "how does self-attention work",
    "python libraries that are overrated",
    "what does a data scientist do",
    "knowledge graph nodes and edges",
]


def fmt(values: list[float], unit: str = "", digits: int = 2) -> str:
    """median (min–max), or the single value when there is one."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}{unit}"
    med = statistics.median(values)
    return f"{med:.{digits}f}{unit} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def home(env: dict[str, str] | None) -> Path:
    """Where to run a child: `python -m rag` imports rag from the working folder before
    PYTHONPATH, so code named by PYTHONPATH runs from its own folder."""
    return Path(env["PYTHONPATH"]) if env and "PYTHONPATH" in env else ROOT


def timed(
    args: list[str], stdin: str | None = None, env: dict[str, str] | None = None
) -> tuple[float, float, str]:
    """Wall time and this child's own peak RSS (MB), via a wrapper that reports it."""
    wrapper = (
        "import resource, subprocess, sys, time, json;"
        "t=time.perf_counter();"
        "p=subprocess.run(sys.argv[1:], stdin=sys.stdin, capture_output=True, text=True);"
        "w=time.perf_counter()-t;"
        "sys.stderr.write(p.stderr);"
        "print(json.dumps({'wall': w, 'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024,"
        "'rc': p.returncode, 'out': p.stdout}))"
    )
    p = subprocess.run(
        [sys.executable, "-c", wrapper, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=home(env),
        env=env,
    )
    d = json.loads(p.stdout.strip().splitlines()[-1])
    if d["rc"] != 0:
        raise SystemExit(f"{' '.join(args)} failed: {p.stderr[-800:]}")
    return d["wall"], d["rss"], d["out"]
