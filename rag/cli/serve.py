"""`rag serve`: the page and the HTTP API over one index, models loaded once (rag/serve/)."""

from __future__ import annotations

import ipaddress
import socket
import time
from pathlib import Path
from typing import Annotated

import typer

from rag.cli.core import ConfigOpt, IndexOpt, StoreOpt, UriOpt, settings_from
from rag.errors import RagError

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound and listening, so that the address printed next is already
    accepting connections (they wait in the backlog while the server starts its loop)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise RagError(f"cannot listen on {host}:{port}: {e.strerror} (try another --port)") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(
    index_dir: IndexOpt = None,
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to listen on; anything but loopback needs --token (or RAG_SERVE_TOKEN)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="RAG_SERVE_TOKEN",
            help="Every request must then send 'Authorization: Bearer TOKEN' "
            "(a browser: open /?token=TOKEN once).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, max=64, help="Questions answered at once (default 2 a core)."),
    ] = None,
    threads: Annotated[
        int,
        typer.Option(
            "--threads",
            min=0,
            max=64,
            help="onnxruntime threads a question (default 1: questions run side by side; 0: one a core).",
        ),
    ] = 1,
    store: StoreOpt = None,
    uri: UriOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the answers in a browser and over HTTP (JSON API, OpenAI-style chat), models kept warm."""
    t0 = time.perf_counter()
    try:
        import uvicorn

        from rag.serve.app import create_app
        from rag.serve.service import Service
    except ImportError as e:
        raise RagError(
            f"rag serve needs the serve extra ({e.name} is missing): pip install -e '.[serve]'"
        ) from None
    from rag.assembly import open_index
    from rag.cli.index import build_when_missing

    if not is_loopback(host) and not token:
        raise RagError(
            f"--host {host} is reachable from other machines: give --token TOKEN (or set RAG_SERVE_TOKEN)"
        )
    settings = settings_from(config, store=store, uri=uri)
    index_path = Path(index_dir or settings.paths.index)
    open_index(settings, index_path, build_when_missing(settings, quiet=False))  # as `rag ask` does
    service = Service(settings, index_path, workers, threads=threads)
    service.warm()
    # A browser on this machine names the server by a loopback name; another Host is a page
    # elsewhere reaching it through DNS rebinding. With a token, the token decides.
    hosts = None if token else {"localhost", "127.0.0.1", "[::1]", host}
    app = create_app(service, token, hosts)
    sock = listening_socket(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    generation = service.health()["generation"]
    typer.secho(f"rag serve: http://{shown}:{bound}/", bold=True)
    typer.echo(
        f"  index {index_path} (generation {generation}), ready in {time.perf_counter() - t0:.1f} s; "
        f"API at /api/ask, /v1/chat/completions, /openapi.json; Ctrl-C stops"
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", access_log=False, timeout_graceful_shutdown=2, lifespan="off"
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        service.close()
        sock.close()
