"""The typer app, the options the commands share, and the one error boundary (`main`).

Expected failures arrive as `RagError` and become one line on stderr and exit code 1; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
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
AuthorOpt = Annotated[
    str | None, typer.Option("--author", help="Only articles whose author's name contains this.")
]


def err(message: str) -> None:
    """An error line on stderr, in red on a terminal."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)


def warn(message: str) -> None:
    """A warning line on stderr, in yellow on a terminal."""
    typer.secho(f"warning: {message}", fg=typer.colors.YELLOW, err=True)


def settings_from(
    config: Path | None,
    overrides: dict[str, dict[str, Any]] | None = None,
    store: str | None = None,
    uri: str | None = None,
) -> Settings:
    """The settings file with the options given on the command line (those left out are None)."""
    sections = {**(overrides or {}), "store": {"kind": store, "uri": uri}}
    given = {sec: {k: v for k, v in vals.items() if v is not None} for sec, vals in sections.items()}
    return load_settings(config, {sec: vals for sec, vals in given.items() if vals})


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


@dataclass
class Ending:
    """How this process ends, which the command decides while it runs: `main` hands it down as
    the click context's `obj` and reads it back when the command is over."""

    quick: bool = False  # end without the interpreter's clean-up


def quick_exit_after(ctx: typer.Context, settings: Settings) -> None:
    """Say that this command only reads the index, or has committed and closed it, so the process
    may end without the interpreter's clean-up, which unloads numpy, faiss and onnxruntime for
    about 0.25 s after the output is printed. Not with Milvus, whose Lite server that clean-up
    stops. A no-op when the app runs without `main` (a test's runner)."""
    if isinstance(ctx.obj, Ending):
        ctx.obj.quick = settings.store.kind == "faiss"


def main(quick_exit: bool = True) -> None:
    """Entry point: one error boundary for every command. `quick_exit=False` always ends the
    process normally (for a caller that looks around after the command)."""
    ending = Ending()
    code: int | str | None = 0
    try:
        app(obj=ending)
    except SystemExit as e:
        code = e.code
    except RagError as e:
        err(str(e))
        code = 1
    except KeyboardInterrupt:
        err("interrupted")
        code = 130
    if quick_exit and ending.quick and isinstance(code, int | None):
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # a closed pipe: nothing more can be said
            pass
        os._exit(code or 0)
    sys.exit(code)
