"""Writing a generation into the Milvus collections: the writer's lock row on a server,
tombstones for removed article versions, article and chunk rows, and file records.

See `store.py` for the order these run in and why it makes a build atomic.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from rag.errors import RagError
from rag.records import FileRecord
from rag.stores.base import BATCH, Changes, Manifest, batched, crash_point
from rag.stores.milvus import schema
from rag.stores.milvus.client import Collections
from rag.stores.milvus.expr import in_list

_STALE_LOCK_SECONDS = 3600


LOCK_KEY = "lock"


def check_lock(db: Collections) -> None:
    """Raise RagError naming the live writer that holds the lock row, if one does; a lock left by
    a dead process on this host, or older than an hour, may be taken over."""
    host = socket.gethostname()
    if db.has(db.meta):
        for r in db.query(db.meta, 'kind == "lock"', ["body"]):
            held = json.loads(r["body"])
            dead = held.get("host") == host and not _pid_alive(int(held.get("pid", 0)))
            stale = time.time() - float(held.get("since", 0)) > _STALE_LOCK_SECONDS
            if not (dead or stale):
                raise RagError(
                    f"{db.where}: another `rag index` (pid {held.get('pid')} on "
                    f"{held.get('host')}) is writing this index; wait for it to finish and run again"
                )
    else:
        db.call("creating collections", schema.create_meta, db.client, db.meta)
        db.load(db.meta)


def insert_lock(db: Collections) -> None:
    """The lock row naming this writer (host, pid, since when)."""
    body = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})
    db.insert(db.meta, [schema.meta_row(LOCK_KEY, "lock", -1, body)])


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_tombstones(
    db: Collections, removed: list[str], gen: int, old: Manifest | None, visible: Callable[[], str]
) -> tuple[int, int]:
    """Name the stored article versions generation `gen` drops; returns (floor, tombstones).
    Dropping everything (a rebuild) raises the floor instead of listing every article."""
    keys: list[str] = []
    if old is not None and removed:
        vis = visible()
        for part in batched(sorted(set(removed))):
            expr = f"part == 0 and {vis} and {in_list('article_id', part)}"
            keys += [r["article_key"] for r in db.query(db.articles, expr, ["article_key"])]
    visible_articles = int((old or {}).get("counts", {}).get("articles", 0))
    floor = gen if old and keys and len(keys) >= visible_articles else int((old or {}).get("floor", 0))
    tombs = [] if floor == gen else keys
    db.insert(db.meta, [schema.meta_row(f"tomb@{gen}@{k}", "tombstone", gen, k) for k in tombs])
    crash_point("milvus-tombstones-written")
    return floor, len(tombs)


def write_rows(db: Collections, changes: Changes, gen: int) -> None:
    """The added articles' rows and their chunks' rows, under `gen`."""
    # Rows are sent in batches across articles: one insert per article was most of the time.
    rows: list[dict[str, Any]] = []
    crows: list[dict[str, Any]] = []
    for article, chunks, vecs in changes.added:
        rows += schema.article_rows(article, len(chunks), gen)
        crows += [schema.chunk_row(article, ch, v, gen) for ch, v in zip(chunks, vecs, strict=True)]
        if len(crows) >= BATCH:
            db.insert(db.articles, rows)
            db.insert(db.chunks, crows)
            rows, crows = [], []
    db.insert(db.articles, rows)
    db.insert(db.chunks, crows)


def write_files(db: Collections, files: dict[str, FileRecord], gen: int) -> None:
    """The bundle file records of generation `gen`, as meta rows of at most 64 KB."""
    bodies = schema.file_bodies(files)
    db.insert(db.meta, [schema.meta_row(f"files@{gen}@{i}", "files", gen, b) for i, b in enumerate(bodies)])


def wait_indexed(db: Collections, limit: float = 600.0) -> None:
    """Wait until the server has indexed the new vectors (it does so in the background), so
    that the first searches after `rag index` are not slowed by index building."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        info = db.call("describe index", db.client.describe_index, db.chunks, "vector")
        if not int(info.get("pending_index_rows", 0) or 0):
            return
        time.sleep(0.2)
