"""The `rag` command: a thin layer that parses flags, calls the library and prints.

This is the only module that prints, colours or exits. Expected failures arrive as `RagError`
and become one line on stderr and exit code 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import os
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
    _quick_exit_after(settings)  # the store is committed and closed
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
    from rag.stores import describe

    return describe(index_dir or settings.paths.index, settings.store)


def _copy(settings: Settings, source_dir: Path, index_dir: Path | None) -> Any:
    from rag.index import copy_index
    from rag.stores import open_store

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


AuthorOpt = Annotated[
    str | None, typer.Option("--author", help="Only articles whose author's name contains this.")
]


@app.command()
def sources(
    author: AuthorOpt = None,
    index_dir: IndexOpt = None,
    store: StoreOpt = None,
    uri: UriOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List the indexed articles (full values with --json)."""
    from rag.stores import open_store

    settings = _settings(config, store=store, uri=uri)
    _quick_exit_after(settings)
    arts = open_store(index_dir or settings.paths.index, settings=settings.store).articles()
    if author:
        arts = [a for a in arts if author.lower() in (a.author or "").lower()]
    if as_json:
        for a in arts:
            typer.echo(json.dumps(a.__dict__ | {"aliases": list(a.aliases)}, ensure_ascii=False))
        return
    _print_sources(arts, _console())


def _print_sources(arts: list[Any], con: Any) -> None:
    """A table that fits the terminal: a title or author that does not fit ends in an ellipsis;
    publication, member-only and the URL (never cut) are shown only when the terminal is wide
    enough for them, whole. `--json` has every value in full."""
    from rich.table import Table
    from rich.text import Text

    cols: list[tuple[str, list[str], str]] = [  # header, values, justify
        ("#", [str(n) for n in range(1, len(arts) + 1)], "right"),
        ("title", [a.title for a in arts], "left"),
        ("author", [a.author or "-" for a in arts], "left"),
        ("published", [(a.published or "")[:10] or "-" for a in arts], "left"),
        ("chunks", [str(a.chunks) for a in arts], "right"),
    ]
    extra = [  # in order of use to a reader, each only when it fits whole
        ("url", [a.url for a in arts], "left"),
        ("publication", [a.publication or "-" for a in arts], "left"),
        ("member-only", ["yes" if a.member_only else "" for a in arts], "left"),
    ]

    def width(col: tuple[str, list[str], str], cap: int = 10_000) -> int:
        return min(cap, max(len(v) for v in [col[0], *col[1]]))

    fixed = {"author": 20}  # at most; the title takes what is left
    narrow = sum(width(c, fixed.get(c[0], 10_000)) for c in cols if c[0] != "title") + 2 * (len(cols) - 1)
    keep = min(width(cols[1]), 60)  # title characters an extra column may not take away
    for col in extra:
        if con.width - narrow - (width(col) + 2) - 2 >= keep:
            cols, narrow = [*cols, col], narrow + width(col) + 2
    title_width = max(10, min(width(cols[1]), con.width - narrow - 2))
    t = Table(pad_edge=False, box=None, header_style="bold")
    for name, _, justify in cols:
        t.add_column(
            name,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=True,
            overflow="ellipsis",
            width=title_width if name == "title" else None,
            max_width=fixed.get(name),
        )
    for i in range(len(arts)):
        t.add_row(*(Text(values[i]) for _, values, _ in cols))  # Text: brackets in titles are not markup
    con.print(t, highlight=False)
    if len(cols) < 8 and arts:
        con.print("All columns in full: rag sources --json, or a wider terminal.", style="dim")


def _console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False)


# --------------------------------------------------------------------------------- search


def _filters(
    url: str | None, publication: str | None, since: str | None, until: str | None, author: str | None = None
) -> Any:
    from datetime import date

    from rag.stores import Filters

    for flag, value in (("--since", since), ("--until", until)):
        if value:
            try:
                date.fromisoformat(value[:10])
            except ValueError:
                raise RagError(f"{flag}: '{value}' is not a date (use YYYY-MM-DD)") from None
    return Filters(url=url, publication=publication, author=author, since=since, until=until)


def _queries(query: str) -> list[str]:
    if query == "-":
        return [line.strip() for line in sys.stdin if line.strip()]
    if not query.strip():
        raise RagError("empty query: give some words to search for")
    return [query]


def _open_retriever(settings: Settings, index_dir: Path | None) -> Any:
    from rag.retrieve import Retriever
    from rag.stores import open_store

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
    author: AuthorOpt = None,
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
    _quick_exit_after(settings)
    filters = _filters(url, publication, since, until, author)
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
                                "author": h.chunk.author,
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
    """One block a hit: rank, score and the article on the first line, then its heading, URL
    and the start of the chunk, indented. Wrapped at words on a terminal, one line a field into
    a pipe. Plain text rather than a rich table: importing rich took a tenth of a cold search."""
    if not hits:
        typer.echo(f"{query}: no matches")
        return
    typer.secho(f"{query}  [{retriever}]", bold=True)
    for h in hits:
        c = h.chunk
        snippet = " ".join(c.text.split())
        snippet = snippet[:220] + ("…" if len(snippet) > 220 else "")
        lead = f"{h.rank:>2}  {h.score:.3f}  "
        by = f", by {c.author}" if c.author else ""
        typer.echo("")
        typer.echo(lead + typer.style(f"{c.title}{by}", bold=True))
        pad = " " * len(lead)
        if c.heading:
            typer.echo(_wrapped(c.heading, pad))
        typer.echo(pad + typer.style(c.url, dim=True))  # a URL is never broken
        typer.echo(_wrapped(snippet, pad))


def _wrapped(text: str, indent: str = "") -> str:
    """`text` folded at words to the terminal's width (at most 100 columns) on a terminal; one
    line into a pipe, so that a "[n]" is never cut off its sentence for a program reading it."""
    if not sys.stdout.isatty():
        return indent + text
    import shutil
    import textwrap

    width = min(100, shutil.get_terminal_size().columns)
    return textwrap.fill(
        text,
        width,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


# --------------------------------------------------------------------------------- doctor


@app.command()
def doctor(
    llm_only: Annotated[
        bool, typer.Option("--llm", help="Only the LLM: load it and answer a 300-token prompt.")
    ] = False,
    index_dir: IndexOpt = None,
    store: StoreOpt = None,
    uri: UriOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Check this installation: Python, packages, models, the LLM build on this CPU, the index."""
    from rag.doctor import run_checks

    settings = _settings(config, store=store, uri=uri)
    checks = run_checks(settings, index_dir, only_llm=llm_only)
    for c in checks:
        if c.ok:
            typer.echo(f"ok       {c.name}: {c.detail}")
        else:
            fix = f" -> {c.fix}" if c.fix else ""
            typer.secho(f"problem  {c.name}: {c.detail}{fix}", fg=typer.colors.RED)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


# --------------------------------------------------------------------------------- ask


def _open_answerer(settings: Settings, index_dir: Path | None, model: Path | None, quiet: bool) -> Any:
    """The answerer; builds the index first when there is none yet."""
    from rag.answer import Answerer
    from rag.errors import IndexMissing
    from rag.retrieve import Retriever
    from rag.stores import open_store

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


def _print_answer(ans: Any, streamed: bool, follows: str | None = None) -> None:
    if streamed:
        typer.echo("", err=True)
    if follows:
        typer.secho(f"(following up on: {follows})", dim=True)
    authors = {h.chunk.url: h.chunk.author for h in ans.closest}
    if ans.abstained:
        typer.secho(ans.answer, fg=typer.colors.YELLOW)
        if ans.abstain_reason:
            typer.secho(f"why: {ans.abstain_reason}", dim=True)
        if ans.closest:
            typer.echo("Closest sources:")
            articles = {h.chunk.url: h.chunk.title for h in ans.closest}  # one line per article
            for url, title in list(articles.items())[:3]:
                by = f", by {authors[url]}" if authors.get(url) else ""
                typer.echo(f"  - {title}{by} — {url}")
        return
    label = "answer" if ans.mode == "llm" else "answer (extractive: quoted from the sources)"
    if streamed and ans.dropped:
        label += f"; {len(ans.dropped)} unsupported sentence(s) removed"
    typer.secho(label, bold=True)
    for paragraph in ans.answer.split("\n"):
        typer.echo(_wrapped(paragraph))
    typer.echo("")
    typer.secho("Sources", bold=True)
    by_url: dict[str, list[Any]] = {}
    for c in ans.citations:  # two chunks of one article are one source to a reader
        by_url.setdefault(c.url, []).append(c)
    for url, cs in by_url.items():
        date = f" ({cs[0].published[:10]})" if cs[0].published else ""
        nums = "".join(f"[{c.n}]" for c in cs)
        by = f", by {authors[url]}" if authors.get(url) else ""
        # one line: the terminal folds it; the URL itself is never broken by us
        typer.echo(f"{nums} {cs[0].title}{by} — {url}{date}")


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
    after: Annotated[
        str | None,
        typer.Option(
            "--after",
            help="The question asked before this one: a follow-up ('why is it a scam?') is read with "
            "its topic, as `rag chat` does.",
        ),
    ] = None,
    index_dir: IndexOpt = None,
    store: StoreOpt = None,
    uri: UriOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Answer a question from the indexed articles, with checked citations."""
    from rag.followup import resolve

    settings = _settings(config, {"answer": {"sources": k}}, store, uri)
    _quick_exit_after(settings)
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

        turn = resolve(q, after)
        ans = answerer.ask(turn.query, mode=mode, stream=None if as_json else stream)
        if as_json:
            typer.echo(json.dumps(_answer_json(ans, turn), ensure_ascii=False))
        else:
            _print_answer(ans, streamed, turn.follows)


def _answer_json(ans: Any, turn: Any) -> dict[str, Any]:
    """The answer's JSON, plus the follow-up fields when the question leaned on an earlier one."""
    d = ans.as_dict()
    if turn.follows:
        d["question"] = turn.question
        d["follows"] = turn.follows  # the earlier question whose topic was added
        d["query"] = turn.query  # what was retrieved and answered
    return d


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
    _quick_exit_after(settings)
    answerer = _open_answerer(settings, index_dir, model, quiet=False)
    mode = "extractive" if extractive else ("llm" if model else None)
    if (mode or settings.answer.mode) == "llm":
        answerer.preload()  # loads while the user types the first question
    from rag.followup import resolve

    last: Any = None
    turn: Any = None
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
        # A follow-up ("why is it a scam?", "and NDCG?") is read with the previous turn's topic.
        turn = resolve(line, turn)
        try:
            streamed = False

            def stream(token: str) -> None:
                nonlocal streamed
                streamed = True
                typer.secho(token, dim=True, nl=False, err=True)

            last = answerer.ask(turn.query, mode=mode, stream=stream)
            _print_answer(last, streamed, turn.follows)
        except RagError as e:
            _err(str(e))


# --------------------------------------------------------------------------------- eval

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
ModesOpt = Annotated[str, typer.Option("--modes", help="Answer modes to compare.")]
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
FitOpt = Annotated[
    bool, typer.Option("--fit", help="With --answers: refit the abstention model and save it.")
]


@app.command("eval")
def eval_(
    questions: QuestionsOpt = None,
    retriever: RetrieverOpt = "dense,bm25,hybrid",
    k: KOpt = 10,
    beir: BeirOpt = None,
    report: ReportOpt = None,
    check: CheckOpt = False,
    write_baseline: WriteBaselineOpt = False,
    answers: AnswersOpt = False,
    modes: ModesOpt = "llm,extractive",
    run_refs: RunsArg = None,
    name: NameOpt = None,
    trec_out: TrecOutOpt = None,
    compare_runs: CompareOpt = False,
    test: TestOpt = "randomization",
    fit: FitOpt = False,
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
    from rag.config import PROJECT_ROOT
    from rag.evaluation import compare, workflow

    settings = _settings(config, store=store, uri=uri)
    names = workflow.retriever_names(retriever)
    questions = questions or PROJECT_ROOT / "eval" / "questions.jsonl"
    if answers:
        _eval_answers(settings, index_dir, questions, modes, report, as_json, fit, check, write_baseline)
        return
    runs_dir = PROJECT_ROOT / "eval" / "runs"
    refs = list(run_refs or [])
    workflow.check_options(refs, compare_runs, test, name, runs_dir)
    html = workflow.html_path(report)
    if workflow.saved_only(refs, compare_runs):
        loaded, cmp = workflow.compare_saved(refs, runs_dir, test)
        typer.echo(json.dumps(cmp, ensure_ascii=False) if as_json else compare.runs_table(cmp))
        if html:
            workflow.html_report(loaded[-1], html, settings, test, cmp)
            typer.echo(f"report written to {html}", err=True)
        return
    ev = _evaluate(settings, names, k, beir, questions, index_dir, name, depth=20 if html else 0)
    _keep(ev, runs_dir, name, trec_out, report if not html else None)
    _print_retrieval(ev, names, test, as_json)
    comparison = workflow.compare_current(ev.record, refs, runs_dir, test) if compare_runs else None
    if comparison:
        typer.echo(
            json.dumps(comparison, ensure_ascii=False) if as_json else "\n" + compare.runs_table(comparison)
        )
    if html:
        workflow.html_report(ev.record, html, settings, test, comparison, ev.retriever, ev.questions)
        typer.echo(f"report written to {html}", err=True)
    _baseline(ev, runs_dir, test, write_baseline, check)


def _keep(ev: Any, runs_dir: Path, name: str | None, trec_out: Path | None, folder: Path | None) -> None:
    """Save the run; write the TREC files and the report folder when asked for."""
    from rag.evaluation import runs, workflow

    typer.echo(f"run saved to {runs.save_run(ev.record, runs_dir, name)}", err=True)
    if trec_out:
        written = runs.write_trec(ev.record, trec_out)
        typer.echo(f"TREC files: {len(written)} written to {trec_out}", err=True)
    if folder:
        workflow.write_report(ev.result, folder)


def _baseline(ev: Any, runs_dir: Path, test: str, write: bool, check: bool) -> None:
    """Save the run as the baseline, and check it against the baseline, when asked for."""
    from rag.evaluation import baselines

    eval_dir = runs_dir.parent
    if write:
        baseline, baseline_run = baselines.write(ev.result, ev.record, eval_dir, runs_dir)
        typer.echo(f"baseline written to {baseline} and {baseline_run}", err=True)
    if check:
        baseline, baseline_run = baselines.paths(eval_dir, runs_dir, ev.result["kind"] == "beir")
        _fail_on(*baselines.check(ev.result, ev.record, baseline, baseline_run, test))


def _evaluate(
    settings: Settings,
    names: list[str],
    k: int,
    beir: Path | None,
    questions: Path,
    index_dir: Path | None,
    name: str | None,
    depth: int,
) -> Any:
    """The development set, or the BEIR dataset at `beir`, saying what it loaded and copied."""
    from rag.config import PROJECT_ROOT
    from rag.evaluation import workflow
    from rag.evaluation.beir import load_beir

    if beir is None:
        return workflow.evaluate_dev(settings, names, k, questions, index_dir, name, depth)
    data = load_beir(beir)
    typer.echo(f"BEIR {beir}: {len(data.corpus)} documents, {len(data.queries)} queries", err=True)

    def copying(faiss_dir: Path) -> None:
        typer.echo(f"copying {faiss_dir.name} into {_where(settings, faiss_dir)} …", err=True)

    cache = PROJECT_ROOT / "eval" / "cache"
    return workflow.evaluate_beir(settings, names, k, data, beir, cache, name, copying)


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


def _fail_on(problems: list[str], passed: str, warning: str | None = None) -> None:
    """A baseline check's outcome: each problem as an error and exit 1, else the passed line."""
    if warning:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    for p in problems:
        _err(p)
    if problems:
        raise typer.Exit(1)
    typer.echo(passed, err=True)


def _eval_answers(
    settings: Settings,
    index_dir: Path | None,
    questions: Path,
    modes: str,
    report: Path | None,
    as_json: bool,
    fit: bool = False,
    check: bool = False,
    write_baseline: bool = False,
) -> None:
    """Answer quality by question type, with the abstention model's cross-validated figures;
    `fit` refits the model on these questions and saves it."""
    from rag.config import PROJECT_ROOT
    from rag.evaluation import answers, baselines, workflow
    from rag.evaluation.questions import load_questions

    names = workflow.answer_modes(modes)
    qs = load_questions(questions)
    answerer = _open_answerer(settings, index_dir, None, quiet=True)
    result = answers.evaluate_answers(answerer, qs, names, questions, settings.paths.abstention, fit)
    if fit:
        typer.echo(f"abstention model written to {settings.paths.abstention}", err=True)
    if report:
        answers.write_answer_report(result, report)
    if as_json:
        typer.echo(json.dumps(answers.slim_answers(result), ensure_ascii=False))
    else:
        table, variants, curve = answers.summary_sections(result)
        last = result["precision_coverage"]["mode"]
        typer.echo(f"{table}\n\n{variants}\n")
        typer.echo(f"precision and coverage of the abstention score ({last}, out of fold):")
        typer.echo(curve)
    if write_baseline:
        typer.echo(f"baseline written to {baselines.write_answers(result, PROJECT_ROOT / 'eval')}", err=True)
    if check:
        problems = baselines.check_answer_baseline(result, PROJECT_ROOT / "eval" / baselines.ANSWERS_FILE)
        _fail_on(problems, baselines.ANSWERS_PASSED)


_QUICK_EXIT = False


def _quick_exit_after(settings: Settings) -> None:
    """A command that only reads the index, or has committed and closed it, may end the process
    without the interpreter's clean-up, which unloads numpy, faiss and onnxruntime for about
    0.25 s after the output is printed. Not with Milvus, whose Lite server that clean-up stops."""
    global _QUICK_EXIT
    _QUICK_EXIT = settings.store.kind == "faiss"


def main() -> None:
    """Entry point: one error boundary for every command."""
    code: int | str | None = 0
    try:
        app()
    except SystemExit as e:
        code = e.code
    except RagError as e:
        _err(str(e))
        code = 1
    except KeyboardInterrupt:
        _err("interrupted")
        code = 130
    if _QUICK_EXIT and isinstance(code, int | None):
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # a closed pipe: nothing more can be said
            pass
        os._exit(code or 0)
    sys.exit(code)
