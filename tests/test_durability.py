"""Kill `rag index` at every commit step: the index must stay whole, old or new, never a mix."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rag.index import build_index
from rag.store import open_store

from .conftest import ROOT, FakeEmbedder

POINTS = [
    "ingested",
    "embedded",
    "sqlite-uncommitted",
    "sqlite-committed",
    "faiss-tmp-written",
    "faiss-written",
    "manifest.json-tmp-written",
    "manifest-written",
    "cleaned-up",
]

BUILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from rag.config import load_settings
    from rag.index import build_index
    from tests.conftest import FakeEmbedder
    build_index(load_settings(environ={{}}), Path(sys.argv[1]), Path(sys.argv[2]), embedder=FakeEmbedder())
""").format(root=str(ROOT))


def _state(index: Path) -> tuple[set[str], int]:
    store = open_store(index)
    urls = {a.url for a in store.articles()}
    assert store.search_lexical("data science python", 5)
    n = store.chunk_count()
    assert n == sum(a.chunks for a in store.articles())
    store.close()
    return urls, n


@pytest.fixture(scope="module")
def base(tmp_path_factory, bundles, settings):
    d = tmp_path_factory.mktemp("base")
    (d / "scrapes").mkdir()
    (d / "scrapes" / "001.md").write_text(bundles[0])
    (d / "scrapes" / "002.md").write_text(bundles[1])
    build_index(settings, d / "scrapes", d / "index", embedder=FakeEmbedder())
    old = _state(d / "index")
    (d / "scrapes" / "002.md").unlink()  # the new state drops bundle 2 and adds bundles 3 and 4
    (d / "scrapes" / "003.md").write_text(bundles[2])
    (d / "scrapes" / "004.md").write_text(bundles[3])
    return d, old


@pytest.mark.parametrize("point", POINTS)
def test_kill_at_each_step_leaves_old_or_new_index(base, point, tmp_path, settings):
    d, old = base
    index = tmp_path / "index"
    shutil.copytree(d / "index", index)
    env = {**os.environ, "RAG_CRASH_AT": point}
    res = subprocess.run(
        [sys.executable, "-c", BUILD, str(d / "scrapes"), str(index)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == -9, res.stderr
    urls, n = _state(index)
    committed = point in ("manifest-written", "cleaned-up")
    if committed:
        assert urls != old[0] and len(urls) == 8
    else:
        assert (urls, n) == old
    # the next run finishes the job and leaves no stray rows or files behind
    report = build_index(settings, d / "scrapes", index, embedder=FakeEmbedder())
    urls, n = _state(index)
    assert len(urls) == 8 and urls != old[0]
    db = sqlite3.connect(index / "chunks.sqlite")
    assert db.execute("SELECT count(*) FROM chunks").fetchone()[0] == n == report.chunks
    assert db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0] == n
    assert len(list(index.glob("vectors-*.faiss"))) == 1 and not list(index.glob(".*.tmp"))


def test_readers_see_a_complete_index_while_it_is_rebuilt(base, tmp_path, settings):
    import threading

    d, old = base
    index = tmp_path / "index"
    shutil.copytree(d / "index", index)
    new_scrapes = d / "scrapes"
    old_scrapes = tmp_path / "old"
    old_scrapes.mkdir()
    from .conftest import split_bundles

    bundles = split_bundles((ROOT / "data" / "scrapes" / "000_6d7d6aa2d5092b1c.txt").read_text())
    (old_scrapes / "001.md").write_text(bundles[0])
    (old_scrapes / "002.md").write_text(bundles[1])

    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        store = open_store(index)
        while not stop.is_set():
            try:
                arts = store.articles()
                hits = store.search_lexical("data science python statistics", 50)
                assert hits
                seen.append(len(arts))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(6):
            build_index(settings, new_scrapes if i % 2 == 0 else old_scrapes, index, embedder=FakeEmbedder())
    finally:
        stop.set()
        t.join()
    assert not errors, errors
    assert seen and set(seen) <= {len(old[0]), 8}
