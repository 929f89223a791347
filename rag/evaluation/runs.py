"""Evaluation runs kept on disk, and their export as TREC run and qrels files.

A run is one `rag eval`: for every retriever, level and metric the per-question scores (so two
runs can be compared with a paired test), the rankings that were scored, the resolved judgments
(qrels), the settings, the index fingerprint, the corpus and dataset hashes and the git commit.
It is one JSON file, `eval/runs/<name>.json`, written atomically.

TREC files follow trec_eval's formats: a run line is `qid Q0 docid rank score tag`, a qrels line
`qid 0 docid grade`. The run files hold the top 10 of each ranking, which is what `rag eval`
scores, so trec_eval, ranx or pytrec_eval reproduce its numbers from them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag.errors import RagError
from rag.evaluation.metrics import MEASURES

FORMAT = "rag-eval-run/1"
SCORED_DEPTH = 10  # metrics.trec_metrics scores the top 10 of every ranking
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def default_name(now: datetime | None = None) -> str:
    """A run's name when none is given: the UTC time, to the second."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


def git_commit() -> str:
    """The short hash of the code's checkout, or "unknown" outside git."""
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).resolve().parent,
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def file_hash(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _ranked(run: dict[str, float]) -> list[str]:
    return [d for d, _ in sorted(run.items(), key=lambda kv: (-kv[1], kv[0]))]


def slim(result: dict[str, Any]) -> dict[str, Any]:
    """A suite result without its per-question tables, rankings and judgments."""
    drop = ("per_query", "run", "deep_run")
    return {
        **{k: v for k, v in result.items() if k not in ("qrels", "judgments")},
        "retrievers": {
            n: {k: v for k, v in r.items() if k not in drop} for n, r in result["retrievers"].items()
        },
    }


def record_from(
    result: dict[str, Any],
    name: str,
    settings: dict[str, Any],
    questions: dict[str, dict[str, Any]],
    dataset: dict[str, Any],
) -> dict[str, Any]:
    """The run record of a `run_dev_suite` or `run_beir_suite` result.

    `questions` maps each question id to {"question", "type"}; `dataset` names what was
    evaluated ({"path", "hash"}).
    """
    kind = result["kind"]
    levels = ["evidence", "article"] if kind == "dev" else ["document"]
    retrievers: dict[str, Any] = {}
    rankings: dict[str, Any] = {}
    deep: dict[str, Any] = {}
    details: dict[str, Any] = {}
    for rname, r in result["retrievers"].items():
        per_query = r.get("per_query", {})
        retrievers[rname] = {
            "mean": {lv: r[lv] for lv in levels},
            "per_query": {lv: {qid: pq[lv] for qid, pq in per_query.items() if pq.get(lv)} for lv in levels},
            "seconds_per_query": r.get("seconds_per_query"),
            "mean_chunk_words": r.get("mean_chunk_words"),
        }
        rankings[rname] = {lv: {qid: _ranked(run) for qid, run in r["run"][lv].items()} for lv in levels}
        if r.get("deep_run"):
            deep[rname] = {lv: {qid: _ranked(run) for qid, run in r["deep_run"][lv].items()} for lv in levels}
        if kind == "dev":
            details[rname] = {
                qid: {k: pq[k] for k in ("retrieved", "expected", "missing_evidence") if k in pq}
                for qid, pq in per_query.items()
            }
    return {
        "format": FORMAT,
        "name": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "kind": kind,
        "levels": levels,
        "metrics": list(MEASURES),
        "k": result.get("k"),
        "word_budget": result.get("word_budget"),
        "dataset": dataset,
        "settings": settings,
        "index_fingerprint": result.get("index_fingerprint"),
        "corpus_hash": result.get("corpus_hash"),
        "index_generation": result.get("index_generation"),
        "git_commit": result.get("git_commit"),
        "questions": questions,
        "judgments": result.get("judgments", {}),
        "qrels": result["qrels"],
        "retrievers": retrievers,
        "rankings": rankings,
        "deep_rankings": deep,
        "details": details,
    }


def save_run(record: dict[str, Any], runs_dir: Path, name: str | None = None) -> Path:
    """Write the run as runs_dir/<name>.json (or to `name` itself when it is a path), atomically."""
    path = run_path(name or record["name"], runs_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, path)
    return path


def run_path(ref: str, runs_dir: Path) -> Path:
    """A run's file: `ref` itself when it looks like a path, else runs_dir/<ref>.json."""
    if "/" in ref or os.sep in ref or ref.endswith(".json"):
        return Path(ref)
    if not _NAME.match(ref):
        raise RagError(
            f"run name '{ref}': use letters, digits, '.', '_' or '-' (or give a path ending .json)"
        )
    return runs_dir / f"{ref}.json"


def load_run(ref: str, runs_dir: Path) -> dict[str, Any]:
    """A saved run by name (in runs_dir) or path; a missing or foreign file is a clear error."""
    path = run_path(ref, runs_dir)
    if not path.exists():
        saved = sorted(p.stem for p in runs_dir.glob("*.json")) if runs_dir.is_dir() else []
        hint = f" (saved: {', '.join(saved[-8:])})" if saved else " (none saved yet: run `rag eval` first)"
        raise RagError(f"{path}: no such run{hint}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RagError(f"{path}: not a readable run file ({e})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise RagError(f"{path}: not a run saved by `rag eval` (expected format {FORMAT})")
    return record


def write_trec(record: dict[str, Any], folder: Path) -> list[Path]:
    """TREC run files (one per retriever and level) and qrels files (one per level).

    Names: `<run>.<retriever>.<level>.run` and `qrels.<level>.txt`; the run tag is
    `<run>.<retriever>`. A question with nothing retrieved has no run lines (trec_eval -c
    counts it as 0, as `rag eval` does).
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for level in record["levels"]:
        path = folder / f"qrels.{level}.txt"
        lines = [
            f"{qid} 0 {doc} {grade}"
            for qid, docs in sorted(record["qrels"][level].items())
            for doc, grade in sorted(docs.items())
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        written.append(path)
    for rname, levels in record["rankings"].items():
        tag = f"{record['name']}.{rname}"
        for level, ranking in levels.items():
            path = folder / f"{record['name']}.{rname}.{level}.run"
            lines = []
            for qid in sorted(ranking):
                docs = ranking[qid][:SCORED_DEPTH]
                for rank, doc in enumerate(docs, start=1):
                    lines.append(f"{qid} Q0 {doc} {rank} {len(docs) - rank + 1} {tag}")
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            written.append(path)
    return written


def recall_curve(record: dict[str, Any], retriever: str, level: str, depth: int = 20) -> list[float]:
    """Mean recall@k for k = 1..depth over the judged questions (trec_eval's recall: relevant
    means grade >= 1), from the saved rankings (the deep ones when the run kept them); a
    ranking shorter than k counts what it has."""
    qrels = record["qrels"][level]
    ranking = record["rankings"][retriever][level]
    ranking = (record.get("deep_rankings") or {}).get(retriever, {}).get(level, ranking)
    judged = {q: {d for d, g in docs.items() if g > 0} for q, docs in qrels.items()}
    judged = {q: rel for q, rel in judged.items() if rel}
    if not judged:
        return [0.0] * depth
    out = []
    for k in range(1, depth + 1):
        total = 0.0
        for q, rel in judged.items():
            top = ranking.get(q, [])[:k]
            total += sum(d in rel for d in top) / len(rel)
        out.append(total / len(judged))
    return out


def ranking_depth(record: dict[str, Any]) -> int:
    """The longest ranking kept, deep rankings (kept for recall curves) included."""
    kept = [record["rankings"], record.get("deep_rankings") or {}]
    return max(
        (len(r) for rk in kept for levels in rk.values() for lv in levels.values() for r in lv.values()),
        default=0,
    )
