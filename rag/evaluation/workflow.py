"""What `rag eval` does with runs, composed for the CLI: keep the run, compare it, check it
against the baseline, draw the report. Silent: it returns what the CLI prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rag.evaluation import compare, runs


def slim(result: dict[str, Any]) -> dict[str, Any]:
    """A suite result without its per-question tables, rankings and judgments."""
    drop = ("per_query", "run", "deep_run")
    return {
        **{k: v for k, v in result.items() if k not in ("qrels", "judgments")},
        "retrievers": {
            n: {k: v for k, v in r.items() if k not in drop} for n, r in result["retrievers"].items()
        },
    }


def make_record(
    result: dict[str, Any],
    settings: Any,
    name: str | None,
    questions: Any,
    dataset_path: Path,
    beir: bool,
) -> dict[str, Any]:
    """The run record: `questions` is the list of Question (dev) or the BeirData (BEIR)."""
    if beir:
        qmap = {qid: {"question": text, "type": None} for qid, text in questions.queries.items()}
        dataset = {"path": str(dataset_path), "hash": questions.fingerprint}
    else:
        qmap = {q.id: {"question": q.question, "type": q.type} for q in questions}
        dataset = {"path": str(dataset_path), "hash": runs.file_hash(dataset_path)}
    kept = {
        "retrieve": settings.retrieve.model_dump(mode="json"),
        "chunk": settings.chunk.model_dump(mode="json"),
        "embed": settings.embed.model_dump(mode="json"),
        "store": {"kind": settings.store.kind},  # never the URI: it may name a server
        "answer": {"abstain_below": settings.answer.abstain_below},
    }
    # a run saved under a path is named by its file name (TREC tags and file names use it)
    label = runs.run_path(name, Path(".")).stem if name else runs.default_name()
    return runs.record_from(result, label, kept, qmap, dataset)


def compare_saved(refs: list[str], runs_dir: Path, test: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Saved runs against the first of them: (the runs, the comparison)."""
    loaded = [runs.load_run(x, runs_dir) for x in refs]
    return loaded, compare.compare_runs(loaded[0], loaded[1:], test)


def compare_current(record: dict[str, Any], refs: list[str], runs_dir: Path, test: str) -> dict[str, Any]:
    """This run against saved ones: one RUN is the reference; with several, the first is, and
    'current' places this run among them (else it comes last)."""
    order = [record if x == "current" else runs.load_run(x, runs_dir) for x in refs]
    if all(x is not record for x in order):
        order.append(record)
    return compare.compare_runs(order[0], order[1:], test)


def html_report(
    record: dict[str, Any],
    path: Path,
    settings: Any,
    test: str,
    comparison: dict[str, Any] | None,
    retriever: Any = None,
    questions: Any = None,
) -> dict[str, int]:
    """The HTML report; with a retriever and the development questions, the abstention curve
    of the answerer's own score is drawn too. Returns each section's size in bytes."""
    from rag.evaluation import report

    pairs = None
    threshold: float | None = settings.answer.abstain_below
    source = "cosine similarity of the best retrieved sentence (answer.abstain_below)"
    if retriever is not None and questions is not None:
        from rag.answer import Answerer
        from rag.evaluation.abstention import answerer_scores, describe

        answerer = Answerer(retriever, settings.answer, settings.llm, settings.paths.abstention)
        pairs = answerer_scores(answerer, questions)
        threshold, source = describe(answerer, settings.answer.abstain_below)
    names = list(record["retrievers"])
    return report.write_html(
        record,
        path,
        test=test,
        worst_retriever=settings.retrieve.retriever,
        scatter_pair=("dense", "bm25") if {"dense", "bm25"} <= set(names) else None,
        abstention_pairs=pairs,
        threshold=threshold,
        abstention_source=source,
        comparison=comparison,
    )


def check(
    result: dict[str, Any], record: dict[str, Any], baseline: Path, baseline_run: Path, test: str
) -> tuple[list[str], str, str | None]:
    """(problems, the line to print when there are none, a warning or None).

    With a baseline run (per-question scores) a guarded metric fails only when it is both
    significantly worse and lower by more than the tolerance of baseline.json; without one, the
    tolerance alone decides, as before.
    """
    from rag import evaluate as ev

    tolerance = 0.02
    if baseline.exists():
        tolerance = float(json.loads(baseline.read_text(encoding="utf-8")).get("tolerance", tolerance))
    if baseline_run.exists():
        base = runs.load_run(str(baseline_run), baseline_run.parent)
        problems = compare.significant_drops(record, base, tolerance, ev.HEADLINE, test)
        passed = (
            f"check passed: no {ev.HEADLINE} significantly worse than {baseline_run.name} "
            f"by more than {tolerance}"
        )
        return problems, passed, None
    warning = f"no {baseline_run}: checking means against the tolerance only"
    return (
        ev.check_baseline(result, baseline),
        "check passed: no headline metric fell beyond the tolerance",
        warning,
    )
