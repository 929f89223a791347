"""The per-user cache (`$XDG_CACHE_HOME/rag`, or `~/.cache/rag`): files that every index and
checkout on the machine share (the embedder's ONNX graphs, the LLM's evaluated system prompt),
each written whole or not at all. Anything in it can be deleted; it is written again when needed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_dir(name: str) -> Path:
    """The cache's folder for one kind of file."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "rag" / name


def write_atomic(path: Path, data: bytes) -> None:
    """Write `path` through a temp file beside it, so that a reader sees the old file or the new
    one, never a part; raises OSError (and leaves no temp file) when it cannot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
