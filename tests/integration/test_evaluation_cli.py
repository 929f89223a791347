"""`rag eval` through the real command on the shipped corpus: a saved run, TREC files that
pytrec_eval reads back to the same numbers, a comparison, and the HTML report."""

import html
import json
import re
import subprocess
import sys

import pytest

from rag.evaluation.metrics import MEASURES
from rag.evaluation.report import SECTIONS
from tests.conftest import ROOT, run_rag

# Questions with judgments (unanswerable ones have none and are left out of retrieval metrics).
JUDGED = sum(
    1
    for line in (ROOT / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    if line.strip() and json.loads(line)["relevant"]
)


def _table_value(stdout: str, retriever: str, level: str, metric: str) -> float:
    head = next(line for line in stdout.splitlines() if line.startswith("| retriever | level |"))
    col = [c.strip() for c in head.strip("|").split("|")].index(metric)
    row = next(line for line in stdout.splitlines() if line.startswith(f"| {retriever} | {level} |"))
    return float(row.strip("|").split("|")[col])


def test_rag_eval_saves_compares_exports_and_reports(real_index, tmp_path):
    import pytrec_eval

    first = tmp_path / "runs" / "first.json"
    trec = tmp_path / "trec"
    # -X importtime lists every module imported: plain `rag eval` must not load matplotlib
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "rag",
            "eval",
            "--index",
            str(real_index),
            "--name",
            str(first),
            "--trec-out",
            str(trec),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "matplotlib" not in proc.stderr
    record = json.loads(first.read_text())
    assert record["kind"] == "dev" and record["git_commit"] and record["corpus_hash"]
    assert set(record["retrievers"]) == {"dense", "bm25", "hybrid"}
    assert len(record["retrievers"]["hybrid"]["per_query"]["evidence"]) == JUDGED
    # significance letters under the means table
    assert "| level | metric | dense (a) | bm25 (b) | hybrid (c) |" in proc.stdout

    for level in ("evidence", "article"):
        with open(trec / f"qrels.{level}.txt") as f:
            qrels = pytrec_eval.parse_qrel(f)
        for name in ("dense", "bm25", "hybrid"):
            with open(trec / f"first.{name}.{level}.run") as f:
                run = pytrec_eval.parse_run(f)
            per_q = pytrec_eval.RelevanceEvaluator(qrels, set(MEASURES.values())).evaluate(run)
            assert len(per_q) == JUDGED
            for metric, trec_name in MEASURES.items():
                mean = sum(v[trec_name] for v in per_q.values()) / len(per_q)
                assert mean == pytest.approx(record["retrievers"][name]["mean"][level][metric], abs=1e-12)
                assert mean == pytest.approx(_table_value(proc.stdout, name, level, metric), abs=5e-4)

    page = tmp_path / "report.html"
    res = run_rag(
        "eval",
        "--index",
        str(real_index),
        "--name",
        str(tmp_path / "runs" / "second.json"),
        "--compare",
        str(first),
        "--test",
        "ttest",
        "--report",
        str(page),
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    # the same index and settings twice: identical rankings, no difference is significant
    assert "| hybrid | evidence | ndcg@10 |" in res.stdout and "▲ better" not in res.stdout
    assert "▼ worse" not in res.stdout and "+0.000" in res.stdout
    text = page.read_text(encoding="utf-8")
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in text
    assert '<figure id="fig-abstention"><svg' in text and re.search(r"configured threshold 0\.\d\d", text)
    second = json.loads((tmp_path / "runs" / "second.json").read_text())
    urls = set(re.findall(r"https?://[^\s\"']+", json.dumps([second["qrels"], second["details"]])))
    rest = text
    for url in sorted(urls, key=len, reverse=True):
        rest = rest.replace(html.escape(url, quote=True), "")
    assert "http" not in rest

    res = run_rag("eval", "--compare", str(first), str(tmp_path / "runs" / "second.json"))
    assert res.returncode == 0, res.stderr
    assert "| retriever | level | metric | first | run |" in res.stdout
    res = run_rag("eval", "--compare")
    assert res.returncode == 1 and res.stderr.strip() == (
        "error: --compare: name at least one saved run (a name in eval/runs, or a path)"
    )
    res = run_rag("eval", "--compare", str(tmp_path / "none.json"))
    assert res.returncode == 1 and "none.json: no such run" in res.stderr and "Traceback" not in res.stderr
