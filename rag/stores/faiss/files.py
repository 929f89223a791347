"""Files of an index folder: lock files and atomic writes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from rag.stores.base import crash_point

SHARED, EXCLUSIVE = fcntl.LOCK_SH, fcntl.LOCK_EX


@contextlib.contextmanager
def flock(lock_path: Path, mode: int, wait: float | None = None) -> Iterator[bool]:
    """Hold a lock file; yields False when `wait` seconds ran out without getting it."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        fd = os.open(lock_path, os.O_RDONLY)  # a read-only index folder: shared locks only
    try:
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.02)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old or the new content, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    crash_point(f"{path.name}-tmp-written")
    os.replace(tmp, path)
    fsync_dir(path.parent)
