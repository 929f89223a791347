"""`rag eval`: retrieval on the development set or a BEIR dataset, or answers with --answers.

What runs, and in what order, is `rag.evaluation.workflow`; this module parses the flags and
prints what the workflow returns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from rag.cli.core import ConfigOpt, IndexOpt, JsonOpt, StoreOpt, UriOpt, err, settings_from, warn
from rag.cli.index import build_when_missing, where
from rag.config import Settings

QuestionsOpt = Annotated[
    Path | None, typer.Option("--questions", help="Development set (default: eval/questions.jsonl).")
]
RetrieverOpt = Annotated[str, typer.Option("--retriever", help="Comma-separated retrievers to compare.")]
KOpt = Annotated[int, typer.Option("--k", min=1, max=1000, help="Ranking depth.")]
BeirOpt = Annotated[Path | None, typer.Option("--beir", help="Evaluate on a BEIR dataset folder instead.")]
ReportOpt = Annotated[
    Path | None,
    typer.Option("--report", help="FILE.html: one page with figures; else a folder for report.json/.md."),
]
CheckOpt = Annotated[
    bool,
    typer.Option(
        "--check",
        help="Exit 1 if nDCG@10 is significantly worse than eval/runs/baseline.json "
        "by more than eval/baseline.json's tolerance.",
    ),
]
WriteBaselineOpt = Annotated[
    bool, typer.Option("--write-baseline", help="Save this run as eval/baseline.json.")
]
AnswersOpt = Annotated[bool, typer.Option("--answers", help="Evaluate answers (llm and extractive) instead.")]
ModesOpt = Annotated[
    str | None,
    typer.Option(
        "--modes",
        help="Answer modes: with --answers those to compare (default llm,extractive); with --squad "
        "or --removal the one to ask in (default extractive; llm adds the answer line's figures).",
    ),
]
RunsArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="RUN",
        help="With --compare: saved runs (names in eval/runs, or paths); 'current' is this run.",
        show_default=False,
    ),
]
NameOpt = Annotated[
    str | None, typer.Option("--name", help="Save this run as eval/runs/NAME.json (default: a timestamp).")
]
TrecOutOpt = Annotated[
    Path | None, typer.Option("--trec-out", help="Write TREC run and qrels files into this folder.")
]
CompareOpt = Annotated[
    bool,
    typer.Option(
        "--compare",
        help="Compare runs with paired tests: one RUN against this run, or several saved RUNs "
        "against the first.",
    ),
]
TestOpt = Annotated[
    str,
    typer.Option("--test", help="Paired test for --compare, --check and --report: randomization or ttest."),
]
SquadOpt = Annotated[
    Path | None,
    typer.Option(
        "--squad",
        help="Answerability on a SQuAD 2.0 file indexed as a corpus: answered, unsure and abstained "
        "for answerable and impossible questions.",
    ),
]
RemovalOpt = Annotated[
    bool,
    typer.Option(
        "--removal",
        help="With --beir: answerability by removal (half the queries lose their judged documents).",
    ),
]
FitOpt = Annotated[
    bool,
    typer.Option(
        "--fit",
        help="Refused: the answer decision is fitted across corpora by `python -m eval.fit_decision`.",
    ),
]


def eval_(
    questions: QuestionsOpt = None,
    retriever: RetrieverOpt = "dense,bm25,hybrid",
    k: KOpt = 10,
    beir: BeirOpt = None,
    report: ReportOpt = None,
    check: CheckOpt = False,
    write_baseline: WriteBaselineOpt = False,
    answers: AnswersOpt = False,
    modes: ModesOpt = None,
    run_refs: RunsArg = None,
    name: NameOpt = None,
    trec_out: TrecOutOpt = None,
    compare_runs: CompareOpt = False,
    test: TestOpt = "randomization",
    fit: FitOpt = False,
    squad: SquadOpt = None,
    removal: RemovalOpt = False,
    index_dir: IndexOpt = None,
    store: StoreOpt = None,
    uri: UriOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Measure retrieval: nDCG@10 and friends, side by side for each retriever.

    A report ending in .html is one self-contained page with figures; any other --report is a
    folder of report.json and report.md.
    """
    from rag.evaluation import workflow

    settings = settings_from(config, store=store, uri=uri)
    names = workflow.retriever_names(retriever)
    questions = questions or workflow.EVAL_DIR / "questions.jsonl"
    if removal and beir is None:
        raise typer.BadParameter("--removal needs --beir DATASET", param_hint="--removal")
    if squad is not None or removal:
        _answerability(settings, squad, beir if removal else None, name, as_json, benchmark_mode(modes))
        return
    if answers:
        modes = modes or "llm,extractive"
        _answers(settings, index_dir, questions, modes, report, as_json, fit, check, write_baseline)
        return
    refs = list(run_refs or [])
    workflow.check_options(refs, compare_runs, test, name, workflow.RUNS_DIR)
    html = workflow.html_path(report)
    if workflow.saved_only(refs, compare_runs):
        _compare_saved(settings, refs, test, html, as_json)
        return
    ev = _evaluate(settings, names, k, questions, index_dir, name, beir, depth=20 if html else 0)
    _keep(ev, name, trec_out, report if not html else None)
    _print_retrieval(ev, names, test, as_json)
    comparison = _compare_current(ev, refs, test, as_json) if compare_runs else None
    if html:
        workflow.html_report(ev.record, html, settings, test, comparison, ev.retriever, ev.questions)
        typer.echo(f"report written to {html}", err=True)
    _baseline(ev, test, write_baseline, check)


def benchmark_mode(modes: str | None) -> str:
    """The one answer mode --squad and --removal ask in."""
    mode = (modes or "extractive").strip()
    if mode not in ("extractive", "llm"):
        raise typer.BadParameter(
            f"{mode!r}: with --squad or --removal give one mode, extractive or llm", param_hint="--modes"
        )
    return mode


def _answerability(
    settings: Settings, squad: Path | None, beir: Path | None, name: str | None, as_json: bool, mode: str
) -> None:
    """`rag eval --squad FILE` or `rag eval --beir DIR --removal`: the answer decision on a corpus
    nobody tuned for, saved as a run."""
    from rag.evaluation import workflow

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            typer.echo(f"asked {done}/{total}", err=True)

    record, saved = workflow.evaluate_answerability(settings, squad, beir, name, progress, mode)
    typer.echo(f"run saved to {saved}", err=True)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in record.items() if k != "rows"}, ensure_ascii=False))
    else:
        typer.echo(record["table"])


def _evaluate(
    settings: Settings,
    names: list[str],
    k: int,
    questions: Path,
    index_dir: Path | None,
    name: str | None,
    beir: Path | None,
    depth: int,
) -> Any:
    """The development set, or the BEIR dataset at `beir`, saying what it loaded and copied."""
    from rag.evaluation import workflow

    def loaded(data: Any) -> None:
        typer.echo(f"BEIR {beir}: {len(data.corpus)} documents, {len(data.queries)} queries", err=True)

    def copying(faiss_dir: Path) -> None:
        typer.echo(f"copying {faiss_dir.name} into {where(settings, faiss_dir)} …", err=True)

    return workflow.evaluate(settings, names, k, questions, index_dir, name, depth, beir, loaded, copying)


def _compare_saved(settings: Settings, refs: list[str], test: str, html: Path | None, as_json: bool) -> None:
    """Saved runs against the first of them, as a table (and an HTML page of the last)."""
    from rag.evaluation import compare, workflow

    loaded, cmp = workflow.compare_saved(refs, workflow.RUNS_DIR, test)
    typer.echo(json.dumps(cmp, ensure_ascii=False) if as_json else compare.runs_table(cmp))
    if html:
        workflow.html_report(loaded[-1], html, settings, test, cmp)
        typer.echo(f"report written to {html}", err=True)


def _compare_current(ev: Any, refs: list[str], test: str, as_json: bool) -> dict[str, Any]:
    """This run against the saved runs named, printed; returns the comparison."""
    from rag.evaluation import compare, workflow

    comparison = workflow.compare_current(ev.record, refs, workflow.RUNS_DIR, test)
    typer.echo(
        json.dumps(comparison, ensure_ascii=False) if as_json else "\n" + compare.runs_table(comparison)
    )
    return comparison


def _keep(ev: Any, name: str | None, trec_out: Path | None, folder: Path | None) -> None:
    """Save the run, and the TREC files and report folder when asked for; say where."""
    from rag.evaluation import workflow

    saved, trec = workflow.keep(ev, workflow.RUNS_DIR, name, trec_out, folder)
    typer.echo(f"run saved to {saved}", err=True)
    if trec_out:
        typer.echo(f"TREC files: {len(trec)} written to {trec_out}", err=True)


def _baseline(ev: Any, test: str, write: bool, check: bool) -> None:
    """Save the run as the baseline, and check it against the baseline, when asked for."""
    from rag.evaluation import workflow

    if write:
        baseline, baseline_run = workflow.write_baseline(ev, workflow.RUNS_DIR)
        typer.echo(f"baseline written to {baseline} and {baseline_run}", err=True)
    if check:
        _fail_on(*workflow.check_baseline(ev, workflow.RUNS_DIR, test))


def _print_retrieval(ev: Any, names: list[str], test: str, as_json: bool) -> None:
    """The means table, the retrievers' significant differences, unresolved evidence, speed."""
    from rag.evaluation import compare
    from rag.evaluation.runs import slim

    result = ev.result
    if as_json:
        typer.echo(json.dumps(slim(result), ensure_ascii=False))
        return
    typer.echo(result["table"])
    if len(names) > 1:
        typer.echo("\n" + compare.retriever_table(compare.retriever_comparison(ev.record, test)))
    for w in result.get("unresolved_evidence", []):
        warn(f"{w['id']}: evidence not found in {w['url']}: {w['evidence'][:60]}…")
    for name, rr in result["retrievers"].items():
        if "mean_chunk_words" in rr:
            typer.echo(
                f"{name}: mean chunk {rr['mean_chunk_words']} words, "
                f"{rr['seconds_per_query'] * 1000:.1f} ms/query"
            )


def _fail_on(problems: list[str], passed: str, warning: str | None = None) -> None:
    """A baseline check's outcome: each problem as an error and exit 1, else the passed line."""
    if warning:
        warn(warning)
    for p in problems:
        err(p)
    if problems:
        raise typer.Exit(1)
    typer.echo(passed, err=True)


def _answers(
    settings: Settings,
    index_dir: Path | None,
    questions: Path,
    modes: str,
    report: Path | None,
    as_json: bool,
    fit: bool,
    check: bool,
    write_baseline: bool,
) -> None:
    """`rag eval --answers`: answer quality by question type, with the abstention model's
    cross-validated figures; `fit` refits the model on these questions and saves it."""
    from rag.evaluation import answers, baselines, workflow

    build_missing = build_when_missing(settings, quiet=True)
    result = workflow.evaluate_answer_suite(settings, index_dir, questions, modes, fit, build_missing)
    if report:
        answers.write_answer_report(result, report)
    if as_json:
        typer.echo(json.dumps(answers.slim_answers(result), ensure_ascii=False))
    else:
        table, variants, curve = answers.summary_sections(result)
        typer.echo(f"{table}\n\n{variants}\n")
        last = result["precision_coverage"]["mode"]
        typer.echo(f"precision and coverage of the abstention score ({last}, out of fold):")
        typer.echo(curve)
    if write_baseline:
        typer.echo(f"baseline written to {baselines.write_answers(result, workflow.EVAL_DIR)}", err=True)
    if check:
        problems = baselines.check_answer_baseline(result, workflow.EVAL_DIR / baselines.ANSWERS_FILE)
        _fail_on(problems, baselines.ANSWERS_PASSED)
