"""One connection to Milvus and the three collections of an index: connecting to a server or a
Milvus Lite file, loading collections, and client calls that fail as one line naming the store.

A token comes only from the environment variable RAG_MILVUS_TOKEN and is never written anywhere.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from rag.errors import IndexMissing, RagError
from rag.stores.base import batched
from rag.stores.milvus import schema
from rag.stores.milvus.expr import in_list, is_server, reason, redact

TOKEN_ENV = "RAG_MILVUS_TOKEN"

_QUERY_PAGE = 4096
_LITE_USERS: dict[str, int] = {}  # open stores per Milvus Lite file in this process


def _quiet_milvus_logs() -> None:
    # pymilvus logs every failed call at ERROR before raising it; we turn the raise into one line.
    # Milvus Lite's in-process gRPC server logs calls it does not implement (the iterator's
    # timestamp probe, which pymilvus then does without).
    for name in ("pymilvus", "milvus_lite", "grpc._server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


class Collections:
    """The client and the `<collection>_chunks`, `_articles` and `_meta` collections."""

    def __init__(self, uri: str, collection: str, create: bool) -> None:
        self.uri = uri
        self.chunks = f"{collection}_chunks"
        self.articles = f"{collection}_articles"
        self.meta = f"{collection}_meta"
        self.client = self._connect(create)
        self.authors = True  # whether the collections have the author fields (older ones do not)

    @property
    def where(self) -> str:
        """The store as messages name it (no credentials)."""
        return f"milvus {redact(self.uri)} ({self.meta.removesuffix('_meta')})"

    @property
    def server(self) -> bool:
        """Whether this is a Milvus server (other processes may read it), not a Lite file."""
        return is_server(self.uri)

    def _connect(self, create: bool) -> Any:
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise RagError("the Milvus store needs the milvus extra: pip install -e '.[milvus]'") from None
        _quiet_milvus_logs()  # after the import: pymilvus sets its loggers up as it loads
        token = os.environ.get(TOKEN_ENV, "")
        if not self.server:
            self._check_lite_file(create)
        try:
            client = MilvusClient(uri=self.uri, token=token) if token else MilvusClient(uri=self.uri)
        except Exception as e:  # pymilvus raises many kinds; every one is "cannot connect" here
            if not self.server:
                raise RagError(
                    f"{self.uri}: cannot open Milvus Lite (another process may be using it: "
                    "a Lite file serves one process; run `milvus-lite server` for several)"
                ) from None
            raise RagError(f"{redact(self.uri)}: cannot connect to Milvus ({reason(e)})") from None
        if not self.server:
            key = os.path.abspath(self.uri)
            _LITE_USERS[key] = _LITE_USERS.get(key, 0) + 1
        return client

    def _check_lite_file(self, create: bool) -> None:
        if not self.uri.endswith(".db"):
            raise RagError(
                f"--uri: '{self.uri}' must be a Milvus Lite file ending in .db or http(s)://host:port"
            )
        if not create and not Path(self.uri).exists():
            raise IndexMissing(f"{self.uri}: no index here yet; run `rag index --store milvus` first")
        try:
            Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RagError(f"{self.uri}: cannot create the folder: {e.strerror}") from None

    def open_existing(self) -> None:
        """Load the collections there are, and note whether they have the author fields."""
        # A reopened collection serves searches only once loaded.
        for name in (self.meta, self.chunks, self.articles):
            if self.has(name):
                self.load(name)
        if self.has(self.chunks):
            desc = self.call("describing", self.client.describe_collection, self.chunks)
            self.authors = "author" in {f.get("name") for f in desc.get("fields", [])}

    def create(self, dim: int, index_type: str) -> None:
        """Create the three collections (those missing) and load them."""
        schema.create_meta(self.client, self.meta)
        schema.create_chunks(self.client, self.chunks, dim, index_type)
        schema.create_articles(self.client, self.articles)
        for name in (self.meta, self.chunks, self.articles):
            self.load(name)

    # ----------------------------------------------------------------------------- client calls

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one client call; a failure is one line naming the store, never a traceback."""
        try:
            return fn(*args, **kwargs)
        except RagError:
            raise
        except Exception as e:
            raise RagError(f"{self.where}: {what} failed ({reason(e)})") from None

    def fields(self, fields: list[str]) -> list[str]:
        """`fields` less the author, when the collections predate it."""
        return fields if self.authors else [f for f in fields if f != "author"]

    def has(self, name: str) -> bool:
        return bool(self.call("listing collections", self.client.has_collection, name))

    def load(self, name: str) -> None:
        """Load a collection unless it is loaded: an operator may have loaded it with replicas."""
        state = self.call("loading", self.client.get_load_state, name).get("state")
        if getattr(state, "name", str(state)) != "Loaded":
            self.call("loading", self.client.load_collection, name)

    def query(self, collection: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row matching `expr`, however many (Milvus caps one query at 16,384)."""
        c = self.client
        it = self.call(
            "query", c.query_iterator, collection, batch_size=_QUERY_PAGE, filter=expr, output_fields=fields
        )
        rows: list[dict[str, Any]] = []
        try:
            while True:
                page = self.call("query", it.next)
                if not page:
                    break
                rows.extend(dict(r) for r in page)
        finally:
            it.close()
        return rows

    def insert(self, collection: str, rows: list[dict[str, Any]]) -> None:
        for part in batched(rows):
            self.call("insert", self.client.insert, collection, list(part))

    def delete(self, collection: str, expr: str) -> None:
        self.call("delete", self.client.delete, collection, filter=expr)

    def delete_keys(self, collection: str, field: str, values: list[str]) -> None:
        for part in batched(values):
            self.delete(collection, in_list(field, part))

    def close(self) -> None:
        if self.client is None:
            return
        with contextlib.suppress(Exception):
            self.client.close()
        self.client = None
        if not self.server:
            # Milvus Lite keeps a file's in-process server (and its lock) until the process
            # exits; stop it once no store here uses it, so another process may open the file.
            key = os.path.abspath(self.uri)
            _LITE_USERS[key] = _LITE_USERS.get(key, 1) - 1
            if _LITE_USERS[key] <= 0:
                del _LITE_USERS[key]
                with contextlib.suppress(Exception):
                    from milvus_lite.server_manager import server_manager_instance

                    server_manager_instance.release_server(self.uri)
