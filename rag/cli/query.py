"""`rag search`, `rag ask` and `rag chat`: the query path.

Library modules are imported inside the commands, so that `rag --help` or a search never loads
the answerer's LLM, and the query path never loads torch (see tests/unit/test_architecture.py).
"""

from __future__ import annotations

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
)
from rag.cli.index import build_when_missing
from rag.cli.render import answer_json, print_answer, print_answer_head, print_closest, print_hits, wrapped
from rag.config import Settings
from rag.errors import RagError

ModelOpt = Annotated[Path | None, typer.Option("--model", help="A GGUF model file to answer with.")]


def _queries(query: str) -> list[str]:
    """The query, or with '-' the non-blank lines of stdin."""
    if query == "-":
        return [line.strip() for line in sys.stdin if line.strip()]
    if not query.strip():
        raise RagError("empty query: give some words to search for")
    return [query]


def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to search for; '-' reads one query a line from stdin.")],
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
    filters = search_filters(url, publication, author, since, until)
    queries = _queries(query)
    r = open_retriever(settings, index_dir)
    name = settings.retrieve.retriever
    for q in queries:
        hits = r.search(q, filters=filters, max_per_article=max_per_article)
        if as_json:
            line = {"query": q, "retriever": name, "results": [hit_dict(h) for h in hits]}
            typer.echo(json.dumps(line, ensure_ascii=False))
        else:
            print_hits(q, hits, name)


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
    question: Annotated[str, typer.Argument(help="Your question; '-' reads one question a line from stdin.")],
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
    for q in questions:
        turn = resolve(q, after)
        streamed = _Streamed(turn.follows)
        ans = answerer.ask(turn.query, mode=mode, stream=None if as_json else streamed)
        if as_json:
            typer.echo(json.dumps(answer_json(ans, turn), ensure_ascii=False))
        else:
            print_answer(ans, streamed.shown, turn.follows)


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
