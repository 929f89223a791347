"""Issue 33's figures, for one checkout of rag: tracebacks and batches cut short over the fixed
corpus of nasty inputs (tests/data/nasty/corpus.py), and `rag ask - --json`'s time a question.

Each input goes, in a fresh `rag` process as a user runs it, as the argument of `rag ask` and of
`rag search` (not the inputs holding a NUL or over 128 KiB, which no argument can), as the standard input of
`rag ask - --json` and `rag search - --json`, and as the only scrape of `rag index` over a copy of
an index (whose bytes must not change); a few config files go as `--config`; the whole corpus goes
as one batch to each command (a batch is cut short when it answers fewer lines than it holds).

    python bench/bad_input.py --root /tmp/before --index IDX --out bench/work/bad-before.json
    python bench/bad_input.py --root /tmp/after --index IDX --out bench/work/bad-after.json
    python bench/bad_input.py --time /tmp/before:IDX1 /tmp/after:IDX2 --questions 40 --runs 4
    python bench/bad_input.py --table bench/work/bad-before.json bench/work/bad-after.json

--root is a checkout (a git worktree) run through PYTHONPATH from its own folder; --time runs the
two checkouts' batches interleaved, run after run, on the shipped development questions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.data.nasty.corpus import inputs  # noqa: E402

TRACEBACK = b"Traceback (most recent call last)"
ARG_MAX = 131072  # Linux's longest single argument (MAX_ARG_STRLEN)
CONFIGS = {  # config files as editors save them: the same setting in five shapes
    "bom-utf8": "\ufeff[retrieve]\nk = 3\n".encode(),
    "utf16": "[retrieve]\nk = 3\n".encode("utf-16"),
    "latin1-comment": "[retrieve]\nk = 3 # caf\u00e9\n".encode("latin-1"),
    "binary": bytes(range(256)),
    "nul": b"[retrieve]\x00\nk = 3\n",
}


def _rag(
    root: Path, args: list[str | bytes], stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], input=stdin, capture_output=True, env=env, cwd=root, timeout=600
    )


def _nonblank(data: bytes) -> int:
    """Lines a batch must answer, counted as the old reader did where it could read them."""
    from rag.textio import decode_lines

    return sum(1 for _, text, _ in decode_lines(data) if text.strip())


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def corpus_run(root: Path, index: Path) -> dict:
    """Every way the corpus enters rag, each a row: kind, how, input, exit code, traceback."""
    rows = []

    def record(kind: str, how: str, name: str, res: subprocess.CompletedProcess[bytes], **more) -> None:
        tb = TRACEBACK in res.stderr
        last = res.stderr.strip().splitlines()[-1:] or [b""]
        rows.append(
            {"kind": kind, "how": how, "input": name, "rc": res.returncode, "traceback": tb,
             "last_stderr": last[0].decode("utf-8", "replace")[:200], **more}
        )  # fmt: skip

    idx = ["--index", str(index)]
    for name, data in inputs():
        kind = name.rsplit("-", 1)[0]
        if b"\x00" not in data and len(data) < ARG_MAX:
            for cmd in ("ask", "search"):
                record(kind, f"{cmd} ARG", name, _rag(root, [cmd, data, *idx, "--json"]))
        for cmd in ("ask", "search"):
            res = _rag(root, [cmd, "-", "--json", *idx], stdin=data)
            out = len(res.stdout.splitlines())
            record(kind, f"{cmd} - (stdin)", name, res, lines=_nonblank(data), out=out)
        with tempfile.TemporaryDirectory() as tmp:
            copy, scrapes = Path(tmp) / "idx", Path(tmp) / "scrapes"
            shutil.copytree(index, copy)
            scrapes.mkdir()
            (scrapes / f"{name}.md").write_bytes(data)
            before = _snapshot(copy)
            res = _rag(root, ["index", "--scrapes", str(scrapes), "--index", str(copy)])
            record(kind, "index --scrapes", name, res, index_unchanged=_snapshot(copy) == before)
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in CONFIGS.items():
            f = Path(tmp) / f"{name}.toml"
            f.write_bytes(data)
            record(
                "config", "search --config", name, _rag(root, ["search", "softmax", "--config", str(f), *idx])
            )
        record(
            "config", "search --config", "a folder", _rag(root, ["search", "softmax", "--config", tmp, *idx])
        )
    batch = b"\n".join([b"what is softmax", *(data for _, data in inputs()), b"what is p-hacking"]) + b"\n"
    for cmd in ("ask", "search"):
        res = _rag(root, [cmd, "-", "--json", *idx], stdin=batch)
        out = len(res.stdout.splitlines())
        record("whole corpus", f"{cmd} - (stdin)", "all 47 + 2 good", res, lines=_nonblank(batch), out=out)
    return {"root": str(root), "rows": rows}


def timing_run(pairs: list[tuple[Path, Path]], questions: int, runs: int) -> dict:
    """`rag ask - --json` over the first `questions` development questions, each checkout in turn,
    `runs` times: wall time a question (start-up included) and the answerer's own mean."""
    qs = [json.loads(line)["question"] for line in (ROOT / "eval" / "questions.jsonl").open()][:questions]
    data = ("\n".join(qs) + "\n").encode()
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"wall_per_q": [], "answer_mean": []})
    for _ in range(runs):
        for root, index in pairs:
            t0 = time.perf_counter()
            res = _rag(root, ["ask", "-", "--json", "--index", str(index)], stdin=data)
            wall = time.perf_counter() - t0
            answers = [json.loads(x) for x in res.stdout.splitlines()]
            assert res.returncode == 0 and len(answers) == len(qs), res.stderr[-500:]
            out[str(root)]["wall_per_q"].append(wall / len(qs))
            out[str(root)]["answer_mean"].append(statistics.mean(a["timings"]["total"] for a in answers))
    return {"questions": len(qs), "runs": runs, "by_root": dict(out)}


def table(paths: list[Path]) -> str:
    """Markdown: by kind, the inputs and the runs that ended in a traceback, per checkout."""
    runs = [json.loads(p.read_text()) for p in paths]
    kinds: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        for r in run["rows"]:
            kinds[r["kind"]].add(r["input"])
    head = "| kind | inputs | " + " | ".join(f"tracebacks {Path(r['root']).name} (runs)" for r in runs) + " |"
    lines = [head, "|" + "---|" * (2 + len(runs))]
    for kind in kinds:
        cells = []
        for run in runs:
            rows = [r for r in run["rows"] if r["kind"] == kind]
            tb = sum(r["traceback"] for r in rows)
            cells.append(f"{tb} ({len(rows)})")
        lines.append(f"| {kind} | {len(kinds[kind])} | " + " | ".join(cells) + " |")
    lines.append("")
    for run in runs:
        by_how = Counter(r["how"] for r in run["rows"] if r["traceback"])
        short = [r for r in run["rows"] if "lines" in r and r["out"] < r["lines"]]
        changed = [r["input"] for r in run["rows"] if r.get("index_unchanged") is False]
        lines.append(
            f"- {Path(run['root']).name}: {sum(r['traceback'] for r in run['rows'])} tracebacks in "
            f"{len(run['rows'])} runs ({dict(by_how)}); batches cut short: {len(short)} of "
            f"{sum('lines' in r for r in run['rows'])}; index changed by a failed build: {len(changed)}"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path)
    ap.add_argument("--index", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--time", nargs="+", metavar="ROOT:INDEX")
    ap.add_argument("--questions", type=int, default=40)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--table", nargs="+", type=Path)
    a = ap.parse_args()
    if a.table:
        print(table(a.table))
    elif a.time:
        pairs = [(Path(p.split(":")[0]), Path(p.split(":")[1])) for p in a.time]
        result = timing_run(pairs, a.questions, a.runs)
        text = json.dumps(result, indent=1)
        if a.out:
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.write_text(text)
        print(text)
    else:
        result = corpus_run(a.root, a.index)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1))
        print(f"{sum(r['traceback'] for r in result['rows'])} tracebacks in {len(result['rows'])} runs")


if __name__ == "__main__":
    main()
