"""What `rag eval` does, composed for the CLI: check the options, decide what to run and run it,
keep the run, compare it, check it against the baseline, write the reports. Silent: it returns
what the CLI prints, and says what it is about to do through the callbacks it is given."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.config import PROJECT_ROOT
from rag.errors import RagError
from rag.evaluation import baselines, compare, runs
from rag.evaluation.metrics import HEADLINE
from rag.evaluation.stats import TESTS

ANSWER_MODES = ("llm", "extractive")
EVAL_DIR = PROJECT_ROOT / "eval"  # the development set, the baselines, the BEIR cache
RUNS_DIR = EVAL_DIR / "runs"  # saved runs, which --compare and --check name


def names_of(text: str) -> list[str]:
    """The names in a comma-separated option, blanks dropped."""
    return [n.strip() for n in text.split(",") if n.strip()]


def _known(text: str, flag: str, what: str, known: tuple[str, ...]) -> list[str]:
    """The comma-separated names of option `flag`; one not in `known` is an error listing them."""
    names = names_of(text)
    for n in names:
        if n not in known:
            raise RagError(f"{flag}: unknown {what} '{n}' (use {', '.join(known)})")
    return names


def retriever_names(text: str) -> list[str]:
    """The retrievers `--retriever` names; an unknown one is an error listing the known ones."""
    from rag.retrieve import RETRIEVERS

    return _known(text, "--retriever", "retriever", RETRIEVERS)


def answer_modes(text: str) -> list[str]:
    """The answer modes `--modes` names; an unknown one is an error."""
    return _known(text, "--modes", "mode", ANSWER_MODES)


def check_options(refs: list[str], compare_runs: bool, test: str, name: str | None, runs_dir: Path) -> None:
    """Refuse a bad combination of options, a bad run name or a missing saved run before any
    evaluation runs, not after it."""
    if test not in TESTS:
        raise RagError(f"--test: unknown test '{test}' (use {', '.join(TESTS)})")
    if refs and not compare_runs:
        raise RagError(
            f"unexpected argument '{refs[0]}': to compare saved runs, use rag eval --compare RUN ..."
        )
    if compare_runs and not refs:
        raise RagError("--compare: name at least one saved run (a name in eval/runs, or a path)")
    if name:
        runs.run_path(name, runs_dir)
    for ref in refs:
        if ref != "current":
            runs.load_run(ref, runs_dir)


def html_path(report: Path | None) -> Path | None:
    """The report's path when it is to be one HTML page (it ends in .html or .htm)."""
    return report if report is not None and report.suffix.lower() in (".html", ".htm") else None


def saved_only(refs: list[str], compare_runs: bool) -> bool:
    """Whether `--compare` compares saved runs alone, so that nothing is evaluated."""
    return compare_runs and len(refs) > 1 and "current" not in refs


@dataclass
class Evaluation:
    """A retrieval evaluation as run: the suite's result and its run record; on the development
    set also the retriever and questions, which the HTML report asks again for its abstention
    curve."""

    result: dict[str, Any]
    record: dict[str, Any]
    retriever: Any = None
    questions: Any = None


def evaluate(
    settings: Any,
    names: list[str],
    k: int,
    questions_path: Path,
    index_dir: Path | None,
    name: str | None,
    depth: int = 0,
    beir: Path | None = None,
    loaded: Callable[[Any], None] | None = None,
    before_copy: Callable[[Path], None] | None = None,
) -> Evaluation:
    """The development set, or the BEIR dataset at `beir`: `loaded` is called with the BEIR data
    once it is read, `before_copy` with the cached FAISS folder before it is copied into Milvus."""
    if beir is None:
        return evaluate_dev(settings, names, k, questions_path, index_dir, name, depth)
    from rag.evaluation.beir import load_beir

    data = load_beir(beir)
    if loaded is not None:
        loaded(data)
    return evaluate_beir(settings, names, k, data, beir, EVAL_DIR / "cache", name, before_copy)


def evaluate_dev(
    settings: Any,
    names: list[str],
    k: int,
    questions_path: Path,
    index_dir: Path | None,
    name: str | None,
    depth: int = 0,
) -> Evaluation:
    """The development set against the index (`index_dir`, else the configured one)."""
    from rag.assembly import open_retriever
    from rag.evaluation.dev import run_dev_suite
    from rag.evaluation.questions import load_questions

    qs = load_questions(questions_path)
    r = open_retriever(settings, index_dir)
    result = run_dev_suite(r, qs, names, k=k, depth=depth)
    return Evaluation(result, make_record(result, settings, name, qs, questions_path, False), r, qs)


def evaluate_beir(
    settings: Any,
    names: list[str],
    k: int,
    data: Any,
    data_path: Path,
    cache_dir: Path,
    name: str | None,
    before_copy: Callable[[Path], None] | None = None,
) -> Evaluation:
    """A loaded BEIR dataset, indexed once into `cache_dir` (and copied into Milvus when that is
    the configured store); documents are not capped per article."""
    from rag.assembly import open_retriever
    from rag.evaluation.beir import beir_index, beir_store, run_beir_suite

    path = beir_index(data, settings, cache_dir)
    r = open_retriever(settings, store=beir_store(settings, path, before_copy), uncapped=True)
    result = run_beir_suite(r, data, names, k=k)
    return Evaluation(result, make_record(result, settings, name, data, data_path, True))


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


def keep(
    ev: Evaluation, runs_dir: Path, name: str | None, trec_out: Path | None, folder: Path | None
) -> tuple[Path, list[Path]]:
    """Save the run; write the TREC files and the report folder when asked for. Returns the run's
    file and the TREC files written."""
    saved = runs.save_run(ev.record, runs_dir, name)
    trec = runs.write_trec(ev.record, trec_out) if trec_out else []
    if folder:
        write_report(ev.result, folder)
    return saved, trec


def write_baseline(ev: Evaluation, runs_dir: Path) -> tuple[Path, Path]:
    """Save this run as the baseline: (baseline.json, its run in `runs_dir`)."""
    return baselines.write(ev.result, ev.record, runs_dir.parent, runs_dir)


def check_baseline(ev: Evaluation, runs_dir: Path, test: str) -> tuple[list[str], str, str | None]:
    """This run against the baseline (the BEIR one for a BEIR run): (problems, the line to print
    when there are none, a warning or None)."""
    baseline, baseline_run = baselines.paths(runs_dir.parent, runs_dir, ev.result["kind"] == "beir")
    return baselines.check(ev.result, ev.record, baseline, baseline_run, test)


def evaluate_answer_suite(
    settings: Any,
    index_dir: Path | None,
    questions_path: Path,
    modes: str,
    fit: bool = False,
    build_missing: Callable[[Path], Any] | None = None,
) -> dict[str, Any]:
    """Answer quality by question type for the `modes` named, with the development-set
    abstention study's cross-validated figures. A missing index is built first through
    `build_missing`. The shipped decision is fitted across corpora, not on these questions alone,
    so `fit` is refused with the command that fits it."""
    from rag.assembly import open_answerer
    from rag.evaluation.answers import evaluate_answers
    from rag.evaluation.questions import load_questions

    if fit:
        raise RagError(
            "--fit: the answer decision is fitted on the development questions and SQuAD 2.0 "
            "together and checked on other corpora; run `python -m eval.fit_decision --write NAME` "
            "(eval/README.md)"
        )

    names = answer_modes(modes)
    qs = load_questions(questions_path)
    answerer = open_answerer(settings, index_dir, build_missing=build_missing)
    return evaluate_answers(answerer, qs, names, questions_path, settings.paths.abstention, fit)


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
        from rag.assembly import open_answerer
        from rag.evaluation.abstention import answerer_scores, describe

        answerer = open_answerer(settings, retriever=retriever)
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


def write_report(report: dict[str, Any], folder: Path) -> None:
    """report.json (the whole report) and report.md (the table and the worst questions)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    lines = [f"# Retrieval evaluation ({report['kind']})", ""]
    for key in ("questions", "queries", "index_fingerprint", "corpus_hash", "fingerprint", "git_commit"):
        if key in report:
            lines.append(f"- {key}: {report[key]}")
    lines += ["", report["table"], ""]
    for name, r in report["retrievers"].items():
        if "worst" not in r:
            continue
        lines += [f"## Worst questions: {name} (mean chunk {r['mean_chunk_words']} words)", ""]
        for w in r["worst"]:
            lines.append(
                f"- {w['id']} ({w['type']}) {w['question']} — evidence nDCG@10 "
                f"{w['evidence'].get(HEADLINE, 0):.3f}; expected {', '.join(sorted(set(w['expected'])))}; "
                f"got {', '.join(x['title'] for x in w['retrieved'])}"
            )
        lines.append("")
    (folder / "report.md").write_text("\n".join(lines), encoding="utf-8")


def evaluate_answerability(
    settings: Any,
    squad: Path | None,
    beir: Path | None,
    name: str | None,
    progress: Callable[[int, int], None] | None = None,
    mode: str = "extractive",
) -> tuple[dict[str, Any], Path]:
    """An external answerability benchmark: a SQuAD 2.0 file as a corpus, or a BEIR dataset by
    removal (its full index is built first, then copied without the removed documents). The run
    is saved like the others (eval/runs/NAME.json); returns it and where it went."""
    from rag.evaluation import answerability as ab

    cache = EVAL_DIR / "cache"
    if squad is not None:
        bench = ab.load_squad(squad)
        record = ab.run_benchmark(settings, bench, cache, progress=progress, mode=mode)
    else:
        from rag.evaluation.beir import beir_index, load_beir

        assert beir is not None
        data = load_beir(beir)
        full = beir_index(data, settings, cache)
        bench = ab.removal_benchmark(data)
        record = ab.run_benchmark(settings, bench, cache, start_from=full, progress=progress, mode=mode)
    record["name"] = name or runs.default_name()
    record["dataset"] = str(squad or beir)
    return record, runs.save_run(record, RUNS_DIR, name)
