"""The `rag` command: thin typer commands that parse flags, call the library and print.

This package is the only part of `rag` that prints, colours or exits. `core` holds the app, the
shared options and the one error boundary (`main`); the commands live in `index` (index,
sources, doctor), `query` (search, ask, chat), `serve` and `eval`; `render` is how results look.
"""

from rag.cli import eval as evaluation
from rag.cli import index, query, serve
from rag.cli.core import app, main

# Every command, in the order `rag --help` lists them.
for _command in (index.index, index.sources, query.search, index.doctor, query.ask, query.chat, serve.serve):
    app.command()(_command)
app.command("eval")(evaluation.eval_)

__all__ = ["app", "main"]
