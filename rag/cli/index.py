"""`rag index`, `rag sources` and `rag doctor`: building the index, listing what it holds, and
checking the installation."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
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
    quick_exit_after,
    settings_from,
    warn,
)
from rag.cli.render import console, print_sources, stderr_console
from rag.config import Settings
from rag.errors import RagError


def index(
    ctx: typer.Context,
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
    settings = settings_from(config, store=store, uri=uri)
    if from_index is not None:
        report = _copy(settings, from_index, index_dir)
    else:
        report = build(settings, scrapes, index_dir, rebuild, show_progress=not as_json)
    quick_exit_after(ctx, settings)  # the store is committed and closed
    for w in report.warnings:
        warn(w)
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
        return
    if report.rebuild_reason:
        typer.echo(f"rebuilt: {report.rebuild_reason}")
    typer.echo(
        f"{report.articles} articles, {report.chunks} chunks "
        f"({report.added} added, {report.updated} updated, {report.removed} removed, "
        f"{report.unchanged} unchanged; {report.embedded_chunks} chunks embedded) "
        f"in {report.seconds:.1f}s -> {where(settings, index_dir)}"
    )


def where(settings: Settings, index_dir: Path | None) -> str:
    """The index as a user names it: its folder, or the Milvus collection and URI."""
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


def build(
    settings: Settings, scrapes: Path | None, index_dir: Path | None, rebuild: bool, show_progress: bool
) -> Any:
    """Run a build, with a progress bar on stderr for people."""
    from rag.index import build_index

    if not (show_progress and sys.stderr.isatty()):  # a bar in a log file is noise
        return build_index(settings, scrapes, index_dir, rebuild=rebuild)
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        transient=True,
        console=stderr_console(),
    )
    tasks: dict[str, Any] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done)

    with progress:
        return build_index(settings, scrapes, index_dir, rebuild=rebuild, progress=on_progress)


def build_when_missing(settings: Settings, quiet: bool) -> Callable[[Path], None]:
    """What `rag ask` and `rag chat` do when there is no index yet: say so, and build it from the
    configured scrapes (silently when `quiet`)."""

    def build_missing(path: Path) -> None:
        if not quiet:
            typer.secho(
                f"no index at {where(settings, path)} yet: building it from {settings.paths.scrapes} …",
                fg=typer.colors.CYAN,
                err=True,
            )
        report = build(settings, None, path, rebuild=False, show_progress=not quiet)
        if not quiet:
            typer.secho(
                f"indexed {report.articles} articles, {report.chunks} chunks in {report.seconds:.1f}s",
                fg=typer.colors.CYAN,
                err=True,
            )

    return build_missing


def sources(
    ctx: typer.Context,
    author: AuthorOpt = None,
    index_dir: IndexOpt = None,
    store: StoreOpt = None,
    uri: UriOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List the indexed articles (full values with --json)."""
    from rag.assembly import open_index

    settings = settings_from(config, store=store, uri=uri)
    quick_exit_after(ctx, settings)
    arts = open_index(settings, index_dir).articles()
    if author:
        arts = [a for a in arts if author.lower() in (a.author or "").lower()]
    if as_json:
        for a in arts:
            typer.echo(json.dumps(a.__dict__ | {"aliases": list(a.aliases)}, ensure_ascii=False))
        return
    print_sources(arts, console())


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

    settings = settings_from(config, store=store, uri=uri)
    checks = run_checks(settings, index_dir, only_llm=llm_only)
    for c in checks:
        if c.ok:
            typer.echo(f"ok       {c.name}: {c.detail}")
        else:
            fix = f" -> {c.fix}" if c.fix else ""
            typer.secho(f"problem  {c.name}: {c.detail}{fix}", fg=typer.colors.RED)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)
