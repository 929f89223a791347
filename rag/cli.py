"""The `rag` command: a thin layer that parses flags, calls the library and prints.

This is the only module that prints, colours or exits. Expected failures arrive as `RagError`
and become one line on stderr and exit code 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

import rag
from rag.config import Settings, load_settings
from rag.errors import RagError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Ask questions of your scraped articles, locally and offline.",
    pretty_exceptions_enable=False,
)

IndexOpt = Annotated[
    Path | None, typer.Option("--index", help="Index folder (default: paths.index in the config).")
]
StoreOpt = Annotated[
    str | None, typer.Option("--store", help="Where the index lives: faiss (default) or milvus.")
]
UriOpt = Annotated[
    str | None,
    typer.Option(
        "--uri",
        help="milvus: a Milvus Lite file ending in .db, or http(s)://host:port of a Milvus server "
        "(token from RAG_MILVUS_TOKEN). faiss: the index folder.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output, one JSON object a line.")]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Settings file (default: config/default.toml).")
]


def _err(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)


def _settings(
    config: Path | None,
    overrides: dict[str, dict[str, Any]] | None = None,
    store: str | None = None,
    uri: str | None = None,
) -> Settings:
    overrides = {**(overrides or {}), "store": {"kind": store, "uri": uri}}
    clean = {sec: {k: v for k, v in vals.items() if v is not None} for sec, vals in (overrides or {}).items()}
    return load_settings(config, {sec: vals for sec, vals in clean.items() if vals})


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rag {rag.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """rag: index scrapes, search them, ask questions, evaluate retrieval."""


# --------------------------------------------------------------------------------- index


@app.command()
def index(
    scrapes: Annotated[
        Path | None, typer.Option("--scrapes", help="Bundle file or folder (default: paths.scrapes).")
    ] = None,
    index_dir: IndexOpt = None,
    store: StoreOpt = None,
    uri: UriOpt = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Re-embed everything.")] = False,
    from_index: Annotated[
        Path | None,
        typer.Option(
            "--from-index",
            help="Copy this FAISS index folder's chunks and vectors into the store, without re-embedding.",
        ),
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Build or update the index from scrape bundles; only new or changed articles are embedded."""
    settings = _settings(config, store=store, uri=uri)
    if from_index is not None:
        report = _copy(settings, from_index, index_dir)
    else:
        report = _build(settings, scrapes, index_dir, rebuild, show_progress=not as_json)
    for w in report.warnings:
        typer.secho(f"warning: {w}", fg=typer.colors.YELLOW, err=True)
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
        return
    if report.rebuild_reason:
        typer.echo(f"rebuilt: {report.rebuild_reason}")
    typer.echo(
        f"{report.articles} articles, {report.chunks} chunks "
        f"({report.added} added, {report.updated} updated, {report.removed} removed, "
        f"{report.unchanged} unchanged; {report.embedded_chunks} chunks embedded) "
        f"in {report.seconds:.1f}s -> {_where(settings, index_dir)}"
    )


def _where(settings: Settings, index_dir: Path | None) -> str:
    s = settings.store
    path = index_dir or settings.paths.index
    if s.kind == "milvus":
        from rag.milvus_store import redact

        return f"milvus {redact(s.uri) if s.uri else f'{path}-milvus/milvus.db'}"
    return str(s.uri or path)


def _copy(settings: Settings, source_dir: Path, index_dir: Path | None) -> Any:
    from rag.index import copy_index
    from rag.store import open_store

    source = open_store(source_dir)
    target = open_store(index_dir or settings.paths.index, create=True, settings=settings.store)
    if Path(getattr(target, "path", "")).resolve() == source_dir.resolve():
        raise RagError(f"--from-index: {source_dir} is the index being written")
    try:
        return copy_index(source, target)
    finally:
        target.close()
        source.close()


def _build(
    settings: Settings, scrapes: Path | None, index_dir: Path | None, rebuild: bool, show_progress: bool
) -> Any:
    """Run a build, with a progress bar on stderr for people."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from rag.index import build_index

    progress = (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
            transient=True,
            console=_stderr_console(),
        )
        if show_progress and sys.stderr.isatty()  # a bar in a log file is noise
        else None
    )
    tasks: dict[str, Any] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if progress is None:
            return
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done)

    if progress:
        progress.start()
    try:
        return build_index(settings, scrapes, index_dir, rebuild=rebuild, progress=on_progress)
    finally:
        if progress:
            progress.stop()


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@app.command()
def sources(
    index_dir: IndexOpt = None,
    store: StoreOpt = None,
    uri: UriOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List the indexed articles."""
    from rag.store import open_store

    settings = _settings(config, store=store, uri=uri)
    arts = open_store(index_dir or settings.paths.index, settings=settings.store).articles()
    if as_json:
        for a in arts:
            typer.echo(json.dumps(a.__dict__ | {"aliases": list(a.aliases)}))
        return
    from rich.table import Table

    t = Table("title", "url", "published", "fetched", "chunks", "member-only")
    for a in arts:
        t.add_row(
            a.title,
            a.url,
            (a.published or "")[:10],
            (a.fetched or "")[:10],
            str(a.chunks),
            "yes" if a.member_only else "",
        )
    _console().print(t)


def _console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False)


# --------------------------------------------------------------------------------- search


def _filters(url: str | None, publication: str | None, since: str | None, until: str | None) -> Any:
    from datetime import date

    from rag.store import Filters

    for flag, value in (("--since", since), ("--until", until)):
        if value:
            try:
                date.fromisoformat(value[:10])
            except ValueError:
                raise RagError(f"{flag}: '{value}' is not a date (use YYYY-MM-DD)") from None
    return Filters(url=url, publication=publication, since=since, until=until)


def _queries(query: str) -> list[str]:
    if query == "-":
        return [line.strip() for line in sys.stdin if line.strip()]
    if not query.strip():
        raise RagError("empty query: give some words to search for")
    return [query]


def _open_retriever(settings: Settings, index_dir: Path | None) -> Any:
    from rag.retrieve import Retriever
    from rag.store import open_store

    return Retriever(
        open_store(index_dir or settings.paths.index, settings=settings.store), settings.retrieve
    )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to search for; '-' reads one query a line from stdin.")],
    k: Annotated[int | None, typer.Option("--k", min=1, max=1000, help="Hits to return.")] = None,
    retriever: Annotated[
        str | None, typer.Option("--retriever", help="dense, bm25 or hybrid (default: hybrid).")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="Only articles whose URL contains this.")] = None,
    publication: Annotated[
        str | None, typer.Option("--publication", help="Only articles whose publication contains this.")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="Published on or after (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Published on or before (YYYY-MM-DD).")] = None,
    max_per_article: Annotated[
        int | None, typer.Option("--max-per-article", min=0, help="Cap hits per article (0 = none).")
    ] = None,
    index_dir: IndexOpt = None,
    store: StoreOpt = None,
    uri: UriOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Rank the indexed chunks for a query."""
    settings = _settings(config, {"retrieve": {"k": k, "retriever": retriever}}, store, uri)
    filters = _filters(url, publication, since, until)
    queries = _queries(query)
    r = _open_retriever(settings, index_dir)
    for q in queries:
        if not q.strip():
            continue
        hits = r.search(q, filters=filters, max_per_article=max_per_article)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "query": q,
                        "retriever": settings.retrieve.retriever,
                        "results": [
                            {
                                "rank": h.rank,
                                "score": round(h.score, 6),
                                "chunk_id": h.chunk.chunk_id,
                                "url": h.chunk.url,
                                "title": h.chunk.title,
                                "heading": h.chunk.heading,
                                "published": h.chunk.published,
                                "text": h.chunk.text,
                            }
                            for h in hits
                        ],
                    },
                    ensure_ascii=False,
                )
            )
            continue
        _print_hits(q, hits, settings.retrieve.retriever)


def _print_hits(query: str, hits: list[Any], retriever: str) -> None:
    from rich.table import Table

    t = Table(title=f"{query}  [{retriever}]", show_lines=False, expand=True)
    t.add_column("#", justify="right", no_wrap=True)
    t.add_column("score", justify="right", no_wrap=True)
    t.add_column("article / heading", ratio=2)
    t.add_column("text", ratio=5)
    for h in hits:
        c = h.chunk
        snippet = " ".join(c.text.split())
        snippet = snippet[:220] + ("…" if len(snippet) > 220 else "")
        where = f"[bold]{c.title}[/bold]\n{c.heading}\n[dim]{c.url}[/dim]"
        t.add_row(str(h.rank), f"{h.score:.3f}", where, snippet)
    if not hits:
        typer.echo(f"{query}: no matches")
        return
    from rich.console import Console

    Console().print(t)


# --------------------------------------------------------------------------------- ask


def _open_answerer(settings: Settings, index_dir: Path | None, model: Path | None, quiet: bool) -> Any:
    """The answerer; builds the index first when there is none yet."""
    from rag.answer import Answerer
    from rag.errors import IndexMissing
    from rag.retrieve import Retriever
    from rag.store import open_store

    path = index_dir or settings.paths.index
    try:
        store = open_store(path, settings=settings.store)
        if store.manifest() is None:
            raise IndexMissing(str(path))
    except IndexMissing:
        if not quiet:
            typer.secho(
                f"no index at {_where(settings, path)} yet: building it from {settings.paths.scrapes} …",
                fg=typer.colors.CYAN,
                err=True,
            )
        report = _build(settings, None, path, rebuild=False, show_progress=not quiet)
        if not quiet:
            typer.secho(
                f"indexed {report.articles} articles, {report.chunks} chunks in {report.seconds:.1f}s",
                fg=typer.colors.CYAN,
                err=True,
            )
        store = open_store(path, settings=settings.store)
    llm = settings.llm
    if model is not None:
        llm = llm.model_copy(update={"model_path": str(model)})
    return Answerer(Retriever(store, settings.retrieve), settings.answer, llm, settings.paths.abstention)


def _print_answer(ans: Any, streamed: bool) -> None:
    from rich.console import Console
    from rich.markup import escape

    con = Console()
    if streamed:
        typer.echo("", err=True)
    if ans.abstained:
        con.print(f"[yellow]{ans.answer}[/yellow]")
        if ans.abstain_reason:
            con.print(f"[dim]why: {escape(ans.abstain_reason)}[/dim]", highlight=False)
        if ans.closest:
            con.print("Closest sources:")
            articles = {h.chunk.url: h.chunk.title for h in ans.closest}  # one line per article
            for url, title in list(articles.items())[:3]:
                con.print(f"  - {title} — {url}", highlight=False)
        return
    label = "answer" if ans.mode == "llm" else "answer (extractive: quoted from the sources)"
    if streamed and ans.dropped:
        label += f"; {len(ans.dropped)} unsupported sentence(s) removed"
    con.print(f"[bold]{label}[/bold]")
    con.print(ans.answer, highlight=False)
    con.print("\n[bold]Sources[/bold]")
    by_url: dict[str, list[Any]] = {}
    for c in ans.citations:  # two chunks of one article are one source to a reader
        by_url.setdefault(c.url, []).append(c)
    for url, cs in by_url.items():
        date = f" ({cs[0].published[:10]})" if cs[0].published else ""
        nums = "".join(f"[{c.n}]" for c in cs)
        con.print(f"{nums} {cs[0].title} — {url}{date}", highlight=False, markup=False)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question; '-' reads one question a line from stdin.")],
    k: Annotated[
        int | None, typer.Option("--k", min=1, max=20, help="Sources given to the answerer.")
    ] = None,
    model: Annotated[Path | None, typer.Option("--model", help="A GGUF model file to answer with.")] = None,
    extractive: Annotated[
        bool, typer.Option("--extractive", help="Quote the best source sentences; no LLM.")
    ] = False,
    llm_mode: Annotated[bool, typer.Option("--llm", help="Answer with the LLM (verified).")] = False,
    index_dir: IndexOpt = None,
    store: StoreOpt = None,
    uri: UriOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Answer a question from the indexed articles, with checked citations."""
    settings = _settings(config, {"answer": {"sources": k}}, store, uri)
    if extractive and llm_mode:
        raise RagError("--extractive and --llm: choose one")
    # Naming a model asks for the LLM, whatever the configured default mode.
    mode = "extractive" if extractive else ("llm" if llm_mode or model else None)
    questions = _queries(question)
    answerer = _open_answerer(settings, index_dir, model, quiet=as_json)
    if (mode or settings.answer.mode) == "llm":
        answerer.preload()  # the model loads while the first question is retrieved
    for q in questions:
        streamed = False

        def stream(token: str) -> None:
            nonlocal streamed
            if not streamed:
                typer.secho("draft: ", dim=True, nl=False, err=True)
            streamed = True
            typer.secho(token, dim=True, nl=False, err=True)

        ans = answerer.ask(q, mode=mode, stream=None if as_json else stream)
        if as_json:
            typer.echo(json.dumps(ans.as_dict(), ensure_ascii=False))
        else:
            _print_answer(ans, streamed)


@app.command()
def chat(
    model: Annotated[Path | None, typer.Option("--model", help="A GGUF model file to answer with.")] = None,
    extractive: Annotated[bool, typer.Option("--extractive", help="Quote sources; no LLM.")] = False,
    index_dir: IndexOpt = None,
    store: StoreOpt = None,
    uri: UriOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Interactive questions with models loaded once. :sources lists the last sources, :quit ends."""
    settings = _settings(config, store=store, uri=uri)
    answerer = _open_answerer(settings, index_dir, model, quiet=False)
    mode = "extractive" if extractive else ("llm" if model else None)
    if (mode or settings.answer.mode) == "llm":
        answerer.preload()  # loads while the user types the first question
    last: Any = None
    history: list[str] = []
    typer.echo("Ask a question (:sources, :quit).")
    while True:
        try:
            line = input("> ").strip()
        except EOFError:
            break
        if not line:
            continue
        if line in (":quit", ":q", ":exit"):
            break
        if line == ":sources":
            if last is None:
                typer.echo("no question asked yet")
            else:
                for h in last.closest:
                    typer.echo(f"  {h.rank}. {h.chunk.title} — {h.chunk.url}")
            continue
        # A short follow-up ("and why?") is read together with the previous question.
        q = line
        if history and len(line.split()) <= 4:
            q = f"{history[-1]} {line}"
        history.append(line)
        try:
            streamed = False

            def stream(token: str) -> None:
                nonlocal streamed
                streamed = True
                typer.secho(token, dim=True, nl=False, err=True)

            last = answerer.ask(q, mode=mode, stream=stream)
            _print_answer(last, streamed)
        except RagError as e:
            _err(str(e))


# --------------------------------------------------------------------------------- eval


@app.command("eval")
def eval_(
    questions: Annotated[
        Path | None, typer.Option("--questions", help="Development set (default: eval/questions.jsonl).")
    ] = None,
    retriever: Annotated[
        str, typer.Option("--retriever", help="Comma-separated retrievers to compare.")
    ] = "dense,bm25,hybrid",
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="Ranking depth.")] = 10,
    beir: Annotated[
        Path | None, typer.Option("--beir", help="Evaluate on a BEIR dataset folder instead.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write report.json and report.md here.")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if nDCG@10 fell below eval/baseline.json.")
    ] = False,
    write_baseline: Annotated[
        bool, typer.Option("--write-baseline", help="Save this run as eval/baseline.json.")
    ] = False,
    answers: Annotated[
        bool, typer.Option("--answers", help="Evaluate answers (llm and extractive) instead.")
    ] = False,
    modes: Annotated[str, typer.Option("--modes", help="Answer modes to compare.")] = "llm,extractive",
    fit: Annotated[
        bool, typer.Option("--fit", help="With --answers: refit the abstention model and save it.")
    ] = False,
    index_dir: IndexOpt = None,
    store: StoreOpt = None,
    uri: UriOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Measure retrieval: nDCG@10 and friends, side by side for each retriever."""
    from rag import evaluate as ev
    from rag.config import PROJECT_ROOT
    from rag.retrieve import RETRIEVERS, Retriever
    from rag.store import open_store

    settings = _settings(config, store=store, uri=uri)
    names = [n.strip() for n in retriever.split(",") if n.strip()]
    for n in names:
        if n not in RETRIEVERS:
            raise RagError(f"--retriever: unknown retriever '{n}' (use {', '.join(RETRIEVERS)})")
    if answers:
        _eval_answers(settings, index_dir, questions, modes, report, as_json, fit, check, write_baseline)
        return
    if beir is not None:
        data = ev.load_beir(beir)
        typer.echo(f"BEIR {beir}: {len(data.corpus)} documents, {len(data.queries)} queries", err=True)
        path = ev.beir_index(data, settings, PROJECT_ROOT / "eval" / "cache")
        r = Retriever(
            _beir_store(settings, path), settings.retrieve.model_copy(update={"max_per_article": 0})
        )
        result = ev.run_beir_suite(r, data, names, k=k)
    else:
        qs = ev.load_questions(questions or PROJECT_ROOT / "eval" / "questions.jsonl")
        r = Retriever(
            open_store(index_dir or settings.paths.index, settings=settings.store), settings.retrieve
        )
        result = ev.run_dev_suite(r, qs, names, k=k)
    if report:
        ev.write_report(result, report)
    if as_json:
        slim = {
            **result,
            "retrievers": {
                n: {kk: vv for kk, vv in v.items() if kk != "per_query"}
                for n, v in result["retrievers"].items()
            },
        }
        typer.echo(json.dumps(slim, ensure_ascii=False))
    else:
        typer.echo(result["table"])
        for w in result.get("unresolved_evidence", []):
            typer.secho(
                f"warning: {w['id']}: evidence not found in {w['url']}: {w['evidence'][:60]}…",
                fg=typer.colors.YELLOW,
                err=True,
            )
        for name, rr in result["retrievers"].items():
            if "mean_chunk_words" in rr:
                typer.echo(
                    f"{name}: mean chunk {rr['mean_chunk_words']} words, "
                    f"{rr['seconds_per_query'] * 1000:.1f} ms/query"
                )
    baseline = PROJECT_ROOT / "eval" / ("baseline-beir.json" if beir else "baseline.json")
    if write_baseline:
        baseline.write_text(json.dumps(ev.baseline_from(result) if not beir else result, indent=1) + "\n")
        typer.echo(f"baseline written to {baseline}", err=True)
    if check:
        problems = ev.check_baseline(result, baseline)
        for p in problems:
            _err(p)
        if problems:
            raise typer.Exit(1)
        typer.echo("check passed: no headline metric fell beyond the tolerance", err=True)


def _beir_store(settings: Settings, faiss_dir: Path) -> Any:
    """The BEIR index in the configured store; a Milvus copy is made once from the FAISS one."""
    from rag.index import copy_index
    from rag.store import open_store

    if settings.store.kind == "faiss":
        return open_store(faiss_dir)
    # Collections of their own, named after the cached index: never the user's own index.
    beir = settings.store.model_copy(update={"collection": faiss_dir.name.replace("-", "_")})
    store = open_store(faiss_dir, create=True, settings=beir)
    if store.manifest() is None:
        typer.echo(f"copying {faiss_dir.name} into {_where(settings, faiss_dir)} …", err=True)
        copy_index(open_store(faiss_dir), store)
    return store


def _eval_answers(
    settings: Settings,
    index_dir: Path | None,
    questions: Path | None,
    modes: str,
    report: Path | None,
    as_json: bool,
    fit: bool = False,
    check: bool = False,
    write_baseline: bool = False,
) -> None:
    """Answer quality by question type, with the abstention model's cross-validated figures;
    `fit` refits the model on these questions and saves it."""
    import hashlib

    from rag import evaluate as ev
    from rag.config import PROJECT_ROOT

    names = [m.strip() for m in modes.split(",") if m.strip()]
    for m in names:
        if m not in ("llm", "extractive"):
            raise RagError(f"--modes: unknown mode '{m}' (use llm, extractive)")
    path = questions or PROJECT_ROOT / "eval" / "questions.jsonl"
    qs = ev.load_questions(path)
    answerer = _open_answerer(settings, index_dir, None, quiet=True)
    study = ev.abstention_study(answerer, qs)
    model = study["model"]
    if fit:
        model.provenance["questions_file"] = str(path.name)
        model.provenance["questions_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        model.save(settings.paths.abstention)
        answerer.abstention = model
        typer.echo(f"abstention model written to {settings.paths.abstention}", err=True)
    result = ev.run_answer_suite(answerer, qs, names)
    result["cross_validated"] = ev.cv_by_type(qs, study["cv_answered"])
    result["abstention_variants"] = study["variants"]
    result["abstention_model"] = {
        "path": str(settings.paths.abstention),
        "loaded": answerer.abstention is not None,
        "provenance": answerer.abstention.provenance if answerer.abstention else None,
    }
    result["table"] = ev.answer_table(result)
    first = names[-1]
    curve, curve_md = ev.coverage_table(result["modes"][first]["rows"], study["cv_probability"])
    result["precision_coverage"] = {"mode": first, "curve": curve}
    variants_md = "\n".join(
        ["| abstention model | cv answer rate | cv abstention |", "|---|---:|---:|"]
        + [
            f"| {n} | {v['answer_rate']:.3f} ± {v['answer_rate_sd']:.3f} | "
            f"{v['abstain_rate']:.3f} ± {v['abstain_rate_sd']:.3f} |"
            for n, v in study["variants"].items()
        ]
    )
    if report:
        report.mkdir(parents=True, exist_ok=True)
        (report / "answers.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
        (report / "answers.md").write_text(
            f"# Answer evaluation\n\n{result['table']}\n\n## Abstention models (cross-validated)\n\n"
            f"{variants_md}\n\n## Precision and coverage of the abstention score ({first}, out of fold)"
            f"\n\n{curve_md}\n"
        )
    if as_json:
        slim = {
            **result,
            "modes": {m: {k: v for k, v in d.items() if k != "rows"} for m, d in result["modes"].items()},
        }
        typer.echo(json.dumps(slim, ensure_ascii=False))
    else:
        typer.echo(result["table"])
        typer.echo("")
        typer.echo(variants_md)
        typer.echo("")
        typer.echo(f"precision and coverage of the abstention score ({first}, out of fold):")
        typer.echo(curve_md)
    baseline = PROJECT_ROOT / "eval" / "baseline-answers.json"
    if write_baseline:
        baseline.write_text(json.dumps(ev.answer_baseline_from(result), indent=1) + "\n")
        typer.echo(f"baseline written to {baseline}", err=True)
    if check:
        problems = ev.check_answer_baseline(result, baseline)
        for p in problems:
            _err(p)
        if problems:
            raise typer.Exit(1)
        typer.echo("check passed: no answer figure fell beyond the tolerance", err=True)


def main() -> None:
    """Entry point: one error boundary for every command."""
    try:
        app()
    except RagError as e:
        _err(str(e))
        sys.exit(1)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
