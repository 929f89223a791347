"""Kill `rag index` at every commit step: the index must stay whole, old or new, never a mix."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from rag.index import build_index
from rag.ingest import parse_bundle
from rag.stores import open_store
from tests.conftest import ROOT, FakeEmbedder, run_rag

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
    ids = [c.chunk_id for c in store.all_chunks()]
    hits = store.search_dense(store.vectors(ids[:1])[0], n + 5)
    assert sorted(c.chunk_id for c, _ in hits) == sorted(ids)  # each live chunk once, by its vector
    store.close()
    return urls, n


def _built_from_two_bundles(d: Path, bundles, settings) -> tuple[set[str], int]:
    """Index bundles 1 and 2 into `d/index`; returns the state a reader sees."""
    (d / "scrapes").mkdir()
    (d / "scrapes" / "001.md").write_text(bundles[0])
    (d / "scrapes" / "002.md").write_text(bundles[1])
    build_index(settings, d / "scrapes", d / "index", embedder=FakeEmbedder())
    return _state(d / "index")


@pytest.fixture(scope="module")
def base(tmp_path_factory, bundles, settings):
    d = tmp_path_factory.mktemp("base")
    old = _built_from_two_bundles(d, bundles, settings)
    (d / "scrapes" / "002.md").unlink()  # the new state drops bundle 2 and adds bundles 3 and 4
    (d / "scrapes" / "003.md").write_text(bundles[2])
    (d / "scrapes" / "004.md").write_text(bundles[3])
    return d, old


@pytest.fixture(scope="module")
def base_delta(tmp_path_factory, bundles, settings):
    """Like `base`, but the next build only adds one small article: its commit writes a new
    vector segment beside the old one instead of rewriting them as one."""
    d = tmp_path_factory.mktemp("base_delta")
    old = _built_from_two_bundles(d, bundles, settings)
    (d / "scrapes" / "005.md").write_text(GOOD.format(n=1))
    return d, old


@pytest.mark.parametrize("scenario", ["base", "base_delta"])
@pytest.mark.parametrize("point", POINTS)
def test_kill_at_each_step_leaves_old_or_new_index(scenario, point, tmp_path, settings, request):
    import json

    d, old = request.getfixturevalue(scenario)
    new_articles, new_segments = (8, 1) if scenario == "base" else (7, 2)
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
        assert urls != old[0] and len(urls) == new_articles
    else:
        assert (urls, n) == old
    # the next run finishes the job and leaves no stray rows or files behind
    report = build_index(settings, d / "scrapes", index, embedder=FakeEmbedder())
    urls, n = _state(index)
    assert len(urls) == new_articles and urls != old[0]
    db = sqlite3.connect(index / "chunks.sqlite")
    assert db.execute("SELECT count(*) FROM chunks").fetchone()[0] == n == report.chunks
    assert db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0] == n
    segments = json.loads((index / "manifest.json").read_text())["segments"]
    assert len(segments) == new_segments
    assert {p.name for p in index.glob("vectors-*.faiss")} == {s["file"] for s in segments}
    assert not list(index.glob(".*.tmp"))


def test_readers_see_a_complete_index_while_it_is_rebuilt(base, bundles, tmp_path, settings):
    import threading

    d, old = base
    index = tmp_path / "index"
    shutil.copytree(d / "index", index)
    new_scrapes = d / "scrapes"
    old_scrapes = tmp_path / "old"
    old_scrapes.mkdir()
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


# ------------------------------------------------------------------------------ corruption


def _dense(store):
    """A dense search: the first one loads the vectors and checks them against the chunk store."""
    return store.search_dense(np.ones(384, dtype=np.float32) / np.sqrt(384), 3)


def _corruptible(real_index_copy):
    import json

    return real_index_copy, json.loads((real_index_copy / "manifest.json").read_text())


def test_chunk_store_with_missing_rows_is_detected(real_index_copy):
    from rag.errors import IndexCorrupt

    db = sqlite3.connect(real_index_copy / "chunks.sqlite")
    with db:
        db.execute("DELETE FROM chunks WHERE row IN (SELECT row FROM chunks LIMIT 3)")
    with pytest.raises(IndexCorrupt, match=r"holds \d+ chunks but .* vectors; run `rag index --rebuild`"):
        _dense(open_store(real_index_copy))


def test_manifest_from_a_newer_rag_is_refused(real_index_copy):
    import json

    from rag.errors import IndexCorrupt

    index, m = _corruptible(real_index_copy)
    m["schema_version"] = 99
    (index / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexCorrupt, match="written by a newer rag .* run `rag index --rebuild`"):
        open_store(index).articles()


def test_manifest_whose_vector_count_disagrees_is_refused(real_index_copy):
    import json

    from rag.errors import IndexCorrupt

    index, m = _corruptible(real_index_copy)
    m["counts"]["chunks"] += 5
    (index / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexCorrupt, match="vectors but the manifest lists"):
        _dense(open_store(index))


def test_corrupt_index_is_one_line_in_the_cli(real_index_copy):
    (real_index_copy / "manifest.json").write_text("{not json")
    res = run_rag("search", "python", "--index", str(real_index_copy))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and "rag index --rebuild" in res.stderr


def test_index_path_that_is_a_file_is_one_line(tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("not an index")
    for cmd in ("search", "index"):
        args = [cmd, "x"] if cmd == "search" else [cmd]
        res = run_rag(*args, "--index", str(afile))
        assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1 and "is a file, not an index folder" in res.stderr
    assert afile.read_text() == "not an index"


def test_unknown_flag_is_a_clear_error():
    res = run_rag("search", "x", "--kk", "3")
    assert res.returncode == 2 and "No such option: --kk" in res.stderr


# ------------------------------------------------------------------------------ fuzzing


GOOD = """## Fuzz Weekly

Source: https://example.com/fuzz-{n}
Date fetched: 2024-11-10T00:00:00

---

Title: Fuzz article {n}

URL Source: https://example.com/fuzz-{n}

Markdown Content:
Fuzzing finds bugs number {n}. Parsers must survive anything.

## Visual Content Analysis

Title: Fuzz article {n}
"""


def _mutate(data: bytes, ops: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, pos, blob in ops:
        pos = pos % (len(out) + 1)
        if kind == 0:
            out[pos:pos] = blob  # insert
        elif kind == 1:
            del out[pos : pos + len(blob)]  # delete
        elif kind == 2:
            out = out[:pos]  # cut
        else:
            lines = bytes(out).split(b"\n")  # shuffle lines (headers included)
            random.Random(pos).shuffle(lines)
            out = bytearray(b"\n".join(lines))
    return bytes(out)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 10**6),
            st.one_of(
                st.binary(max_size=40),
                st.sampled_from(
                    [
                        b"\x00",
                        b"\xff\xfe",
                        b"\n## X\n\nSource: \n",
                        b"\nMarkdown Content:\n",
                        b"## Visual Content Analysis\n",
                        b"# Bundle: x\n",
                        b"A" * 5000,
                    ]
                ),
            ),
        ),
        max_size=6,
    )
)
def test_parser_never_crashes_and_keeps_well_formed_articles(ops):
    garbage = _mutate(GOOD.format(n=0).encode(), ops)
    data = GOOD.format(n=1).encode() + garbage + b"\n" + GOOD.format(n=2).encode()
    arts, warns = parse_bundle(Path("fuzz.md"), data)
    urls = {a.url for a in arts}
    assert "https://example.com/fuzz-1" in urls
    assert [a.title for a in arts if a.url.endswith("fuzz-1")] == ["Fuzz article 1"]
    # Whatever was skipped is a warning naming this file and a line in it, with a reason.
    lines = data.count(b"\n") + data.count(b"\r") + 1
    assert all(w.path == "fuzz.md" and 1 <= w.line <= lines and w.message for w in warns), warns


@hsettings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000))
def test_parser_survives_random_bytes(data):
    parse_bundle(Path("random.bin"), data)


def test_thousands_of_tiny_articles_all_parse():
    # How the time grows with size is measured in bench/size.py, not asserted here.
    many = "".join(GOOD.format(n=i) for i in range(5000)).encode()
    arts, warns = parse_bundle(Path("many.md"), many)
    assert len(arts) == 5000 and not warns
    assert len({a.url for a in arts}) == 5000


def test_index_from_another_embedder_is_refused(real_index_copy, settings):
    import json

    from rag.errors import IndexCorrupt
    from rag.retrieve import Retriever

    index, m = _corruptible(real_index_copy)
    m["embedder"] = {"name": "bge-small-en", "dimension": 384, "normalized": True}
    (index / "manifest.json").write_text(json.dumps(m))
    r = Retriever(open_store(index), settings.retrieve)
    with pytest.raises(IndexCorrupt, match="built with embedder bge-small-en .* run `rag index --rebuild`"):
        r.search("python")
    assert r.search("python", retriever="bm25")  # lexical search needs no vectors


def test_index_from_an_older_int8_recipe_is_refused(real_index_copy, settings):
    """int8 vectors from another quantisation are not comparable with this one's queries."""
    import json

    from rag.errors import IndexCorrupt
    from rag.retrieve import Retriever

    index, m = _corruptible(real_index_copy)
    m["embedder"] = {**m["embedder"], "precision": "int8"}
    m["embedder"].pop("quantisation", None)
    (index / "manifest.json").write_text(json.dumps(m))
    r = Retriever(open_store(index), settings.retrieve)
    with pytest.raises(IndexCorrupt, match="older int8 quantisation .* run `rag index --rebuild`"):
        r.search("python")


# ------------------------------------------------------------------------------ timed kills

SLOW_BUILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from rag.config import load_settings
    from rag.index import build_index
    from tests.conftest import FakeEmbedder

    class Slow(FakeEmbedder):
        def embed(self, texts, progress=None):
            time.sleep(0.002 * len(texts))  # about as slow as a real model on a few chunks
            return super().embed(texts, progress)

    print("start", flush=True)
    build_index(load_settings(environ={{}}), Path(sys.argv[1]), Path(sys.argv[2]), embedder=Slow())
    print("done", flush=True)
""").format(root=str(ROOT))


def test_sigkill_at_random_moments_never_loses_the_index(base, tmp_path, settings):
    """Timed SIGKILLs spread over a whole build (start-up, parsing, embedding, writing)."""
    import signal
    import time

    d, old = base
    index = tmp_path / "index"
    shutil.copytree(d / "index", index)
    # How long one uninterrupted build takes, to spread the kills over it.
    probe = tmp_path / "probe"
    shutil.copytree(d / "index", probe)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", SLOW_BUILD, str(d / "scrapes"), str(probe)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    total = time.perf_counter() - t0
    outcomes = {"old": 0, "new": 0}
    for i in range(12):
        if (index / "manifest.json").exists():
            shutil.rmtree(index)
            shutil.copytree(d / "index", index)
        p = subprocess.Popen(
            [sys.executable, "-c", SLOW_BUILD, str(d / "scrapes"), str(index)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(total * (i + 0.5) / 12)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        urls, n = _state(index)
        if (urls, n) == old:
            outcomes["old"] += 1
        else:
            assert len(urls) == 8
            outcomes["new"] += 1
        report = build_index(settings, d / "scrapes", index, embedder=FakeEmbedder())
        assert len(_state(index)[0]) == 8 and report.articles == 8
    assert outcomes["old"] + outcomes["new"] == 12


def test_write_failure_is_one_line_and_keeps_the_old_index(base, tmp_path, settings, monkeypatch):
    import faiss

    from rag.errors import RagError

    d, old = base
    index = tmp_path / "index"
    shutil.copytree(d / "index", index)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(faiss, "write_index", full_disk)
    with pytest.raises(RagError, match="No space left on device.*previous index is intact"):
        build_index(settings, d / "scrapes", index, embedder=FakeEmbedder())
    monkeypatch.undo()
    assert _state(index) == old


# ------------------------------------------------------------------------------ read-only index


def _chattr(flag: str, path: Path) -> bool:
    files = [path, *path.iterdir()]
    res = subprocess.run(["chattr", flag, *map(str, files)], capture_output=True, text=True)
    return res.returncode == 0


def test_read_only_index_answers_searches_and_refuses_writes(real_index_copy, tmp_path):
    # Tests run as root, which ignores file modes; the immutable attribute binds root too.
    if not _chattr("+i", real_index_copy):
        pytest.skip("chattr +i is not available on this filesystem")
    try:
        (real_index_copy / "probe").touch()
        pytest.fail("the index folder is still writable")
    except PermissionError:
        pass
    try:
        before = {p.name: p.stat().st_mtime_ns for p in real_index_copy.iterdir()}
        res = run_rag("search", "p-hacking", "--index", str(real_index_copy), "--json")
        assert res.returncode == 0, res.stderr
        assert "p-hacking" in res.stdout
        res = run_rag("index", "--rebuild", "--index", str(real_index_copy))
        assert res.returncode == 1 and "Traceback" not in res.stderr
        assert "cannot write the index" in res.stderr and res.stderr.strip().count("\n") == 0
        assert {p.name: p.stat().st_mtime_ns for p in real_index_copy.iterdir()} == before
    finally:
        _chattr("-i", real_index_copy)


def test_second_rag_index_process_exits_with_a_clear_message(real_index_copy):
    store = open_store(real_index_copy)
    with store.writing():  # another build holds the index
        res = run_rag("index", "--index", str(real_index_copy))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "another `rag index` is writing this index; wait for it to finish" in res.stderr
    assert open_store(real_index_copy).articles()
