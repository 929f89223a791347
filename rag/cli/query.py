"""`rag search`, `rag ask` and `rag chat`: the query path.

Library modules are imported inside the commands, so that `rag --help` or a search never loads
the answerer's LLM, and the query path never loads torch (see tests/unit/test_architecture.py).
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from rag.cli.core import (
    AuthorOpt,
    ConfigOpt,
    IndexOpt,
    JsonOpt,
    StoreOpt,
    UriOpt,
    err,
    quick_exit_after,
    settings_from,
    warn,
)
from rag.cli.index import build_when_missing
from rag.cli.render import answer_json, print_answer, print_answer_head, print_closest, print_hits, wrapped
from rag.config import Settings
from rag.errors import RagError
from rag.textio import FALLBACK, clean_question, decode_lines, from_argv

ModelOpt = Annotated[Path | None, typer.Option("--model", help="A GGUF model file to answer with.")]


BATCH_FAILED = 3  # the exit code of a batch ('-') in which some lines could not be answered


def _batch_help(what: str) -> str:
    return (
        f"; '-' reads one {what} a line from stdin: a line that cannot be answered gets its own "
        "error (with --json a JSON object with 'line' and 'error') and the others are answered; "
        f"exit code {BATCH_FAILED} when some lines failed."
    )


@dataclass(frozen=True)
class _Line:
    """One query: its line on stdin (0: the argument), cleaned, or why it cannot be asked."""

    number: int
    text: str = ""
    error: str | None = None


def _queries(query: str) -> list[_Line]:
    """The query, cleaned (a bad one raises RagError), or with '-' each non-blank line of stdin,
    decoded and cleaned (rag.textio), or holding the one-line reason it cannot be asked."""
    if query != "-":
        return [_Line(0, clean_question(query))]
    if sys.stdin is None:
        raise RagError("no standard input to read queries from")
    lines = []
    for n, text, not_utf8 in decode_lines(sys.stdin.buffer.read()):
        if not text.strip():
            continue
        if not_utf8:
            warn(f"line {n}: not UTF-8; read as {FALLBACK}")
        try:
            lines.append(_Line(n, clean_question(text)))
        except RagError as e:
            lines.append(_Line(n, error=str(e)))
    return lines


def _arg(value: str | None) -> str | None:
    """An option's text, its bytes that were not in the locale's encoding decoded (rag.textio)."""
    return None if value is None else from_argv(value)


def _line_failed(line: _Line, message: str, as_json: bool) -> None:
    """A batch line that could not be answered: its own JSON object, or one line on stderr."""
    if as_json:
        typer.echo(json.dumps({"line": line.number, "error": message}, ensure_ascii=False))
    else:
        err(f"line {line.number}: {message}")


def _asked(line: _Line) -> str:
    """The line's query; its error, raised, when it has none."""
    if line.error is not None:
        raise RagError(line.error)
    return line.text


def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to search for" + _batch_help("query"))],
    k: Annotated[int | None, typer.Option("--k", min=1, max=1000, help="Hits to return.")] = None,
    retriever: Annotated[
        str | None,
        typer.Option(
            "--retriever",
            help="dense, bm25, hybrid or reader (hybrid reordered by the reader); default hybrid.",
        ),
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
    from rag.assembly import open_retriever
    from rag.retrieve import hit_dict, search_filters

    settings = settings_from(config, {"retrieve": {"k": k, "retriever": retriever}}, store, uri)
    quick_exit_after(ctx, settings)
    filters = search_filters(*(_arg(v) for v in (url, publication, author, since, until)))
    queries = _queries(query)
    r = open_retriever(settings, index_dir)
    name = settings.retrieve.retriever
    failed = 0
    for line in queries:
        try:
            q = _asked(line)
            hits = r.search(q, filters=filters, max_per_article=max_per_article)
        except RagError as e:
            if not line.number:
                raise
            failed += 1
            _line_failed(line, str(e), as_json)
            continue
        if as_json:
            row = {"query": q, "retriever": name, "results": [hit_dict(h) for h in hits]}
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            print_hits(q, hits, name)
    if failed:
        raise typer.Exit(BATCH_FAILED)


def _answerer(settings: Settings, index_dir: Path | None, model: Path | None, quiet: bool) -> Any:
    """The answerer; the index is built first when there is none yet."""
    from rag.assembly import open_answerer

    return open_answerer(settings, index_dir, model=model, build_missing=build_when_missing(settings, quiet))


@dataclass
class _Streamed:
    """Prints each sentence of an LLM answer as soon as it is verified (a dropped one never
    shows); `shown` says whether any came, so that the answer is not printed twice."""

    follows: str | None = None
    shown: bool = False

    def __call__(self, sentence: str) -> None:
        if not self.shown:
            print_answer_head("llm", self.follows)
        self.shown = True
        typer.echo(wrapped(sentence))


def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="Your question" + _batch_help("question"))],
    k: Annotated[
        int | None, typer.Option("--k", min=1, max=20, help="Sources given to the answerer.")
    ] = None,
    model: ModelOpt = None,
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

    settings = settings_from(config, {"answer": {"sources": k}}, store, uri)
    quick_exit_after(ctx, settings)
    if extractive and llm_mode:
        raise RagError("--extractive and --llm: choose one")
    # Naming a model asks for the LLM, whatever the configured default mode.
    mode = "extractive" if extractive else ("llm" if llm_mode or model else None)
    questions = _queries(question)
    answerer = _answerer(settings, index_dir, model, quiet=as_json)
    if (mode or settings.answer.mode) == "llm":
        answerer.preload()  # the model loads while the first question is retrieved
    failed = 0
    for line in questions:
        try:
            turn = resolve(_asked(line), _arg(after))
            streamed = _Streamed(turn.follows)
            ans = answerer.ask(turn.query, mode=mode, stream=None if as_json else streamed)
        except RagError as e:
            if not line.number:
                raise
            failed += 1
            _line_failed(line, str(e), as_json)
            continue
        if as_json:
            typer.echo(json.dumps(answer_json(ans, turn), ensure_ascii=False))
        else:
            print_answer(ans, streamed.shown, turn.follows)
    if failed:
        raise typer.Exit(BATCH_FAILED)


def chat(
    ctx: typer.Context,
    model: ModelOpt = None,
    extractive: Annotated[bool, typer.Option("--extractive", help="Quote sources; no LLM.")] = False,
    index_dir: IndexOpt = None,
    store: StoreOpt = None,
    uri: UriOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Interactive questions with models loaded once. :sources lists the last sources, :quit ends."""
    settings = settings_from(config, store=store, uri=uri)
    quick_exit_after(ctx, settings)
    answerer = _answerer(settings, index_dir, model, quiet=False)
    if isinstance(sys.stdin, io.TextIOWrapper):
        # Bytes that are not UTF-8 reach clean_question as escapes, which it decodes (rag.textio).
        sys.stdin.reconfigure(errors="surrogateescape")
    mode = "extractive" if extractive else ("llm" if model else None)
    if (mode or settings.answer.mode) == "llm":
        answerer.preload()  # loads while the user types the first question
    _converse(answerer, mode)


QUIT = (":quit", ":q", ":exit")


def _converse(answerer: Any, mode: str | None) -> None:
    """Read questions until end of input or :quit; a follow-up ("why is it a scam?", "and
    NDCG?") is read with the previous turn's topic."""
    from rag.followup import resolve

    last: Any = None
    turn: Any = None
    typer.echo("Ask a question (:sources, :quit).")
    while True:
        try:
            line = input("> ").strip()
        except EOFError:
            break
        if line in QUIT:
            break
        if line == ":sources":
            if last is None:
                typer.echo("no question asked yet")
            else:
                print_closest(last)
        elif line:
            try:
                line = clean_question(line)
            except RagError as e:
                err(str(e))
                continue
            turn = resolve(line, turn)
            ans = _reply(answerer, turn, mode, last)
            last = ans if ans is not None else last


def cited_by(answer: Any) -> list[str]:
    """The articles an answer is about: those it cited, else (a refusal) the closest one."""
    if answer is None:
        return []
    return [c.url for c in answer.citations] or [h.chunk.url for h in answer.closest[:1]]


def _reply(answerer: Any, turn: Any, mode: str | None, last: Any = None) -> Any:
    """One chat turn answered and printed; an expected failure is said and the chat goes on
    (then None). "Who wrote it?" asks about the articles the previous answer cited."""
    streamed = _Streamed(turn.follows)
    cited = cited_by(last)
    try:
        ans = answerer.ask(turn.query, mode=mode, stream=streamed, typed=turn.question, cited=cited)
    except RagError as e:
        err(str(e))
        return None
    print_answer(ans, streamed.shown, turn.follows)
    return ans
