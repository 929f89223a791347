"""Where an index lives: `open_store` opens the backend the store settings name (FAISS + SQLite
by default, or Milvus; an if per name in `BACKENDS`, not a registry), and `describe` says where
that index is, as messages show it.

    base.py     the Store protocol, the manifest, the shared commit sequence, rows -> records
    faiss/      FAISS files + SQLite (FTS5): the default, one folder on one machine
    milvus/     Milvus server or cluster, or Milvus Lite: scale-out

The records a store returns are defined in `rag.records` and importable from here. Nothing above
this package knows which backend is in use; a backend is imported only when opened, so the query
path of one never loads the other's client.
"""

from __future__ import annotations

from pathlib import Path

from rag.config import StoreSettings
from rag.errors import RagError
from rag.stores.base import (
    ArticleInfo,
    Changes,
    FileRecord,
    Filters,
    Manifest,
    Store,
    StoredChunk,
    crash_point,
)

BACKENDS = ("faiss", "milvus")

__all__ = [
    "BACKENDS",
    "ArticleInfo",
    "Changes",
    "FileRecord",
    "Filters",
    "Manifest",
    "Store",
    "StoredChunk",
    "crash_point",
    "describe",
    "open_store",
]


def milvus_local_dir(path: Path) -> Path:
    """The local folder of a Milvus index named by `path` (and its default Milvus Lite file)."""
    return Path(f"{path}-milvus")


def open_store(path: Path, create: bool = False, settings: StoreSettings | None = None) -> Store:
    """Open the index: FAISS + SQLite in folder `path` by default, or what `settings` names.

    With `create`, an empty index is made if none exists. A Milvus index keeps its local files
    in `<path>-milvus`, and by default its Milvus Lite data there too.
    """
    kind = settings.kind if settings is not None else "faiss"
    if kind == "faiss":
        from rag.stores.faiss import FaissStore

        return FaissStore(Path(settings.uri) if settings and settings.uri else path, create=create)
    if kind == "milvus" and settings is not None:
        from rag.stores.milvus import MilvusStore

        local = milvus_local_dir(path)
        return MilvusStore(
            settings.uri or str(local / "milvus.db"),
            local,
            collection=settings.collection,
            index_type=settings.index_type,
            create=create,
        )
    raise RagError(f"unknown store '{kind}' (use {' or '.join(BACKENDS)})")


def describe(path: Path, settings: StoreSettings) -> str:
    """Where the index named by `path` and `settings` lives, as messages show it (no password)."""
    if settings.kind == "milvus":
        from rag.stores.milvus.expr import redact

        return f"milvus {redact(settings.uri) if settings.uri else milvus_local_dir(path) / 'milvus.db'}"
    return str(settings.uri or path)
