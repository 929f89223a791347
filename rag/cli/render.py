"""How results look on a terminal: hits, answers, the sources table, text wrapped at words.

Plain `typer.echo` for hits and answers: importing rich took a tenth of a cold search, so only
the sources table (and the build's progress bar) load it, inside the function that uses it.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

SNIPPET = 220  # characters of a chunk shown under a hit


def wrapped(text: str, indent: str = "") -> str:
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


def print_hits(query: str, hits: list[Any], retriever: str) -> None:
    """One block a hit: rank, score and the article on the first line, then its heading, URL
    and the start of the chunk, indented. Wrapped at words on a terminal, one line a field into
    a pipe."""
    if not hits:
        typer.echo(f"{query}: no matches")
        return
    typer.secho(f"{query}  [{retriever}]", bold=True)
    for h in hits:
        c = h.chunk
        snippet = " ".join(c.text.split())
        snippet = snippet[:SNIPPET] + ("…" if len(snippet) > SNIPPET else "")
        lead = f"{h.rank:>2}  {h.score:.3f}  "
        by = f", by {c.author}" if c.author else ""
        typer.echo("")
        typer.echo(lead + typer.style(f"{c.title}{by}", bold=True))
        pad = " " * len(lead)
        if c.heading:
            typer.echo(wrapped(c.heading, pad))
        typer.echo(pad + typer.style(c.url, dim=True))  # a URL is never broken
        typer.echo(wrapped(snippet, pad))


UNSURE_HEAD = "not sure: the sources come closest to this, but may not answer it (quoted)"


def print_answer_head(mode: str, follows: str | None = None, outcome: str = "answered") -> None:
    """What a reader sees first: the follow-up note, then what kind of answer this is."""
    if follows:
        typer.secho(f"(following up on: {follows})", dim=True)
    if outcome == "unsure":
        typer.secho(UNSURE_HEAD, bold=True, fg=typer.colors.YELLOW)
    else:
        labels = {"llm": "answer", "metadata": "answer (from the articles' titles, authors and dates)"}
        typer.secho(labels.get(mode, "answer (extractive: quoted from the sources)"), bold=True)


def print_answer(ans: Any, streamed: bool, follows: str | None = None) -> None:
    """The answer and its sources, one line a cited article; when unsure, the closest passages
    under a heading that says so; when it abstained, why and the closest articles. A streamed
    answer's sentences are already on screen."""
    authors = {h.chunk.url: h.chunk.author for h in ans.closest}
    if ans.abstained:
        if follows:
            typer.secho(f"(following up on: {follows})", dim=True)
        _print_abstention(ans, authors)
        return
    if not streamed:
        print_answer_head(ans.mode, follows, ans.outcome)
        for paragraph in ans.answer.split("\n"):
            typer.echo(wrapped(paragraph))
    if ans.dropped and ans.draft:
        whole = "; the answer quotes the sources instead" if ans.mode != "llm" else ""
        typer.secho(
            f"({len(ans.dropped)} unsupported sentence(s) of the model's draft removed{whole})", dim=True
        )
    if ans.outcome == "unsure" and ans.abstain_reason:
        typer.secho(f"why not sure: {ans.abstain_reason}", dim=True)
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


def _print_abstention(ans: Any, authors: dict[str, str | None]) -> None:
    typer.secho(ans.answer, fg=typer.colors.YELLOW)
    if ans.abstain_reason:
        typer.secho(f"why: {ans.abstain_reason}", dim=True)
    if ans.closest:
        typer.echo("Closest sources:")
        articles = {h.chunk.url: h.chunk.title for h in ans.closest}  # one line per article
        for url, title in list(articles.items())[:3]:
            by = f", by {authors[url]}" if authors.get(url) else ""
            typer.echo(f"  - {title}{by} — {url}")


def print_closest(ans: Any) -> None:
    """The chunks the last answer was drawn from, one line each (`:sources` in `rag chat`)."""
    for h in ans.closest:
        typer.echo(f"  {h.rank}. {h.chunk.title} — {h.chunk.url}")


def answer_json(ans: Any, turn: Any) -> dict[str, Any]:
    """The answer's JSON (rag.answer.types.answer_json, which `rag serve` returns too)."""
    from rag.answer.types import answer_json as as_json

    return as_json(ans, turn)


def fit_columns(title: int, others: list[int], extras: list[int], total: int) -> tuple[list[int], int]:
    """Which optional columns a table `total` characters wide shows, and the title's width.

    `title` is the title column's natural width, `others` the widths of the columns always
    shown, `extras` those of the optional ones in order of use to a reader; two spaces separate
    columns. An optional column is shown, whole, only when the title keeps min(title, 60)
    characters beside it. Returns (the indexes of the extras shown, the title's width, at least 10).
    """
    narrow = sum(others) + 2 * len(others)
    keep = min(title, 60)  # title characters an extra column may not take away
    shown = []
    for i, width in enumerate(extras):
        if total - narrow - (width + 2) - 2 >= keep:
            shown.append(i)
            narrow += width + 2
    return shown, max(10, min(title, total - narrow - 2))


def print_sources(arts: list[Any], con: Any) -> None:
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
    most = {"author": 20}  # at most; the title takes what is left
    shown, title_width = fit_columns(
        _width(cols[1]),
        [_width(c, most.get(c[0], 10_000)) for c in cols if c[0] != "title"],
        [_width(c) for c in extra],
        con.width,
    )
    cols += [extra[i] for i in shown]
    t = Table(pad_edge=False, box=None, header_style="bold")
    for name, _, justify in cols:
        t.add_column(
            name,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=True,
            overflow="ellipsis",
            width=title_width if name == "title" else None,
            max_width=most.get(name),
        )
    for i in range(len(arts)):
        t.add_row(*(Text(values[i]) for _, values, _ in cols))  # Text: brackets in titles are not markup
    con.print(t, highlight=False)
    if len(shown) < len(extra) and arts:
        con.print("All columns in full: rag sources --json, or a wider terminal.", style="dim")


def _width(col: tuple[str, list[str], str], cap: int = 10_000) -> int:
    """A column's width: its widest value or header, at most `cap`."""
    return min(cap, max(len(v) for v in [col[0], *col[1]]))


def console() -> Any:
    """A rich console on stdout that leaves long lines to the table's own layout."""
    from rich.console import Console

    return Console(soft_wrap=False)


def stderr_console() -> Any:
    """A rich console on stderr, for progress bars."""
    from rich.console import Console

    return Console(stderr=True)
