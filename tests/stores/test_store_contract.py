"""One contract, three stores: FAISS + SQLite, Milvus Lite on a local file, and Milvus Lite
serving on 127.0.0.1 (started and stopped here). Retrieval, answers and evaluation only see the
`Store` protocol, so every backend must behave the same on ingest, incremental updates, deletes,
filters, hybrid search, the manifest and a kill at any moment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from rag.config import StoreSettings
from rag.errors import RagError
from rag.index import build_index
from rag.retrieve import Retriever
from rag.stores import Filters, open_store
from tests.conftest import ROOT, FakeEmbedder, articles_of, run_rag

BACKENDS = ["faiss", "lite-file", "lite-server"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def lite_server(tmp_path_factory):
    """`milvus-lite server` on a free local port, for the whole test session."""
    port = _free_port()
    data = tmp_path_factory.mktemp("milvus-server")
    exe = Path(sys.executable).with_name("milvus-lite")
    proc = subprocess.Popen(
        [str(exe), "server", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("milvus-lite server did not start") from None
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path) -> StoreSettings:
    """Settings naming a fresh, empty index in one of the three stores."""
    if request.param == "faiss":
        return StoreSettings(kind="faiss")
    collection = "t" + uuid.uuid4().hex[:12]
    if request.param == "lite-file":
        return StoreSettings(kind="milvus", uri=str(tmp_path / "milvus.db"), collection=collection)
    return StoreSettings(kind="milvus", uri=request.getfixturevalue("lite_server"), collection=collection)


def _with_store(settings, store: StoreSettings):
    return settings.model_copy(update={"store": store})


def _build(settings, backend, scrapes, index, **kw):
    return build_index(
        _with_store(settings, backend),
        scrapes,
        index,
        embedder=FakeEmbedder(),
        export_query_model=False,
        **kw,
    )


def _counts(report) -> tuple[int, ...]:
    return (report.articles, report.chunks, report.added, report.updated, report.removed, report.unchanged)


# ------------------------------------------------------------------------------ ingest and updates


def test_incremental_updates_give_the_same_counts_in_every_store(
    tmp_path, scrapes, bundles, settings, backend
):
    index = tmp_path / "index"
    first = _build(settings, backend, scrapes, index)
    assert _counts(first)[:1] + _counts(first)[2:] == (6, 6, 0, 0, 0)

    new_article = articles_of(bundles[2])[0]
    dup = articles_of(bundles[1])[0]  # an exact duplicate of an indexed article
    changed = articles_of(bundles[0])[0].replace(
        "Statistical significance is like the drive-thru of the research world.",
        "Statistical significance is like a vending machine for conclusions.",
    )
    (scrapes / "003.md").write_text(new_article + changed + dup)
    second = _build(settings, backend, scrapes, index)
    assert (second.added, second.updated, second.removed, second.unchanged) == (1, 1, 0, 5)

    store = open_store(index, settings=backend)
    assert not any("drive-thru" in c.text for c in store.all_chunks())
    assert not any("drive-thru" in c.text for c, _ in store.search_lexical("drive thru research world", 20))
    hits = store.search_lexical("vending machine conclusions", 3)
    assert hits and "vending machine" in hits[0][0].text
    assert store.chunk_count() == second.chunks == sum(a.chunks for a in store.articles())
    assert len(store.all_chunks()) == second.chunks
    store.close()

    (scrapes / "002.md").unlink()
    third = _build(settings, backend, scrapes, index)
    assert (third.removed, third.articles) == (2, 5)  # the duplicate keeps one of bundle 2's three
    store = open_store(index, settings=backend)
    assert len(store.articles()) == 5 and store.chunk_count() == third.chunks
    again = _build(settings, backend, scrapes, index)
    assert (again.unchanged, again.embedded_chunks, again.generation) == (5, 0, third.generation)
    store.close()


def test_same_counts_as_faiss_for_the_whole_corpus(tmp_path, bundles, settings, backend):
    d = tmp_path / "scrapes"
    d.mkdir()
    for i, b in enumerate(bundles):
        (d / f"{i}.md").write_text(b)
    report = _build(settings, backend, d, tmp_path / "index")
    reference = _build(settings, StoreSettings(kind="faiss"), d, tmp_path / "reference")
    assert _counts(report) == _counts(reference) == (11, reference.chunks, 11, 0, 0, 0)


def test_rebuild_replaces_everything(tmp_path, scrapes, settings, backend):
    index = tmp_path / "index"
    first = _build(settings, backend, scrapes, index)
    again = _build(settings, backend, scrapes, index, rebuild=True)
    assert again.rebuilt and again.embedded_chunks == first.chunks == again.chunks
    store = open_store(index, settings=backend)
    assert store.chunk_count() == first.chunks and len(store.articles()) == 6
    ids = [c.chunk_id for c in store.all_chunks()]
    assert len(ids) == len(set(ids))  # no chunk visible twice, old and new


# ------------------------------------------------------------------------------ search


@pytest.fixture()
def built(tmp_path, scrapes, settings, backend):
    _build(settings, backend, scrapes, tmp_path / "index")
    store = open_store(tmp_path / "index", settings=backend)
    yield store
    store.close()


def test_dense_search_finds_a_chunk_by_its_own_vector(built):
    chunks = built.all_chunks()
    target = chunks[len(chunks) // 2]
    vec = built.vectors([target.chunk_id])[0]
    assert vec.shape == (384,)
    hits = built.search_dense(vec, 5)
    assert hits[0][0].chunk_id == target.chunk_id and hits[0][1] == pytest.approx(1.0, abs=1e-4)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_lexical_and_hybrid_search(built, settings):
    hits = built.search_lexical("drive-thru research world", 5)
    assert hits and "drive-thru" in hits[0][0].text and hits[0][1] > 0
    r = Retriever(built, settings.retrieve, embedder=FakeEmbedder())
    fused = r.search("statistical significance drive-thru", k=5, retriever="hybrid")
    assert len(fused) == 5 and "Statistical Significance" in fused[0].chunk.title
    assert built.search_lexical("the of and", 5) is not None  # stop words only: no error


def test_filters_narrow_every_search(built, settings):
    arts = built.articles()
    one = arts[0]
    r = Retriever(built, settings.retrieve, embedder=FakeEmbedder())
    for retriever in ("dense", "bm25", "hybrid"):
        hits = r.search(
            "python data statistics", k=10, retriever=retriever, filters=Filters(url=one.url[-20:].upper())
        )
        assert hits and {h.chunk.url for h in hits} == {one.url}
    pubs = [a.publication for a in arts if a.publication]
    pub = max(pubs, key=pubs.count)
    hits = built.search_lexical("data", 50, Filters(publication=pub.lower()))
    assert hits and all(pub.lower() in h.publication.lower() for h, _ in hits)
    dated = sorted(a.published[:10] for a in arts if a.published)
    since = dated[len(dated) // 2]
    hits = built.search_lexical("data python", 50, Filters(since=since))
    assert hits and all(h.published and h.published[:10] >= since for h, _ in hits)
    hits = built.search_lexical("data python", 50, Filters(until=since))
    assert hits and all(h.published and h.published[:10] <= since for h, _ in hits)
    assert built.search_lexical("data", 10, Filters(since="2999-01-01")) == []


def test_author_is_stored_and_filters_every_search(built, settings):
    authors = {a.url: a.author for a in built.articles()}
    assert sorted(authors.values(), key=str) == sorted(
        ["Cai Parry-Jones", "Saankhya Mondal", "Christopher Karg", "Abdur Rahman", "Abdur Rahman", None],
        key=str,
    )  # one member-only stub has no byline
    assert {c.url: c.author for c in built.all_chunks()} == authors
    assert all(c.author == authors[c.url] for c, _ in built.search_lexical("data python", 20))
    want = {u for u, a in authors.items() if a == "Abdur Rahman"}
    r = Retriever(built, settings.retrieve, embedder=FakeEmbedder())
    for retriever in ("dense", "bm25", "hybrid"):
        for name in ("ABDUR RAHMAN", "ahma"):  # substrings, any case
            hits = r.search("python data statistics", k=20, retriever=retriever, filters=Filters(author=name))
            assert hits and {h.chunk.url for h in hits} == want
    assert built.search_lexical("data", 10, Filters(author="nobody by this name")) == []
    # the name is searchable: every chunk of the author's articles carries it lexically
    top = built.search_lexical("what does Christopher Karg say", 2)  # his article has two chunks
    assert [c.author for c, _ in top] == ["Christopher Karg"] * 2


@pytest.mark.parametrize(
    "hostile",
    ['" or 1 == 1 or "', '\\" or gen >= 0 or \\"', "%", "_", "\\", 'x") or ("1', "medium.com/%", "\n"],
)
def test_filter_values_cannot_change_the_expression(built, hostile):
    vec = built.vectors([built.all_chunks()[0].chunk_id])[0]
    for f in (Filters(url=hostile), Filters(publication=hostile), Filters(author=hostile)):
        expected = {
            a.url
            for a in built.articles()
            if hostile.lower()
            in (
                a.url.lower()
                if f.url
                else a.publication.lower()
                if f.publication
                else (a.author or "").lower()
            )
        }
        got = {c.url for c, _ in built.search_lexical("data python statistics", 100, f)}
        got |= {c.url for c, _ in built.search_dense(vec, 100, f)}
        assert got <= expected  # nothing outside the literal match, and no error


def test_literal_escaping_round_trips():
    from rag.stores.milvus.expr import like_pattern, literal

    assert literal('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert like_pattern("50%_off") == '"%50\\\\%\\\\_off%"'


# ------------------------------------------------------------------------------ manifest


def test_manifest_records_generation_and_settings(tmp_path, scrapes, settings, backend):
    index = tmp_path / "index"
    _build(settings, backend, scrapes, index)
    store = open_store(index, settings=backend)
    m = store.manifest()
    assert m["generation"] == 1 and m["embedder"]["dimension"] == 384 and m["counts"]["articles"] == 6
    (scrapes / "002.md").unlink()
    _build(settings, backend, scrapes, index)
    assert store.manifest()["generation"] == 2 and store.manifest()["counts"]["articles"] == 3


def test_an_empty_store_is_a_clear_error(tmp_path, backend):
    from rag.errors import IndexMissing

    with pytest.raises(IndexMissing, match="rag index"):
        open_store(tmp_path / "nothing", settings=backend).articles()


# ------------------------------------------------------------------------------ moving an index


def test_from_index_copies_without_re_embedding(real_index, tmp_path, settings):
    """The shipped corpus, copied from FAISS into Milvus Lite: same articles, same rankings."""
    from rag.evaluation.questions import load_questions

    target = StoreSettings(kind="milvus", uri=str(tmp_path / "m.db"))
    res = run_rag(
        "index", "--store", "milvus", "--uri", target.uri, "--index", str(tmp_path / "x"),
        "--from-index", str(real_index), "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert '"embedded_chunks": 0' in res.stdout and '"articles": 11' in res.stdout
    faiss_store, milvus = open_store(real_index), open_store(tmp_path / "x", settings=target)
    assert {a.content_hash for a in faiss_store.articles()} == {a.content_hash for a in milvus.articles()}
    a, b = Retriever(faiss_store, settings.retrieve), Retriever(milvus, settings.retrieve)
    qs = [q.question for q in load_questions(ROOT / "eval" / "questions.jsonl")][:20]
    same = 0
    for q in qs:
        da = [h.chunk.chunk_id for h in a.search(q, k=10, retriever="dense")]
        db = [h.chunk.chunk_id for h in b.search(q, k=10, retriever="dense", query_vector=a.embed_query(q))]
        same += da == db
    assert same >= len(qs) - 1  # exact FAISS and Milvus FLAT/AUTOINDEX: at most a near-tie swapped
    # an incremental run against the copy embeds nothing
    report = build_index(
        settings.model_copy(update={"store": target}), ROOT / "data" / "scrapes", tmp_path / "x",
        embedder=FakeEmbedder(), export_query_model=False,
    )  # fmt: skip
    assert (report.unchanged, report.embedded_chunks) == (11, 0)


# ------------------------------------------------------------------------------ kill-safety


KILL_BUILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from rag.config import StoreSettings, load_settings
    from rag.index import build_index
    from tests.conftest import FakeEmbedder
    store = StoreSettings(kind="milvus", uri=sys.argv[3], collection=sys.argv[4])
    settings = load_settings(environ={{}}).model_copy(update={{"store": store}})
    build_index(settings, Path(sys.argv[1]), Path(sys.argv[2]), embedder=FakeEmbedder(),
                export_query_model=False)
""").format(root=str(ROOT))

KILL_POINTS = [
    "embedded",
    "milvus-tombstones-written",
    "milvus-rows-written",
    "manifest-written",
    "cleaned-up",
]


def _visible_state(index: Path, store: StoreSettings) -> tuple[set[str], int]:
    s = open_store(index, settings=store)
    try:
        urls = {a.url for a in s.articles()}
        n = s.chunk_count()
        assert n == sum(a.chunks for a in s.articles()) == len(s.all_chunks())
        assert s.search_lexical("data science python", 5)
        return urls, n
    finally:
        s.close()


def _physical_rows(store: StoreSettings) -> int:
    from pymilvus import MilvusClient

    c = MilvusClient(uri=store.uri)
    try:
        c.load_collection(f"{store.collection}_chunks")
        return int(
            c.query(f"{store.collection}_chunks", filter="", output_fields=["count(*)"])[0]["count(*)"]
        )
    finally:
        c.close()


@pytest.mark.parametrize("mode", ["lite-file", "lite-server"])
@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_at_each_step_leaves_old_or_new_milvus_index(mode, point, tmp_path, bundles, settings, request):
    uri = str(tmp_path / "m.db") if mode == "lite-file" else request.getfixturevalue("lite_server")
    store = StoreSettings(kind="milvus", uri=uri, collection="k" + uuid.uuid4().hex[:12])
    scrapes, index = tmp_path / "scrapes", tmp_path / "index"
    scrapes.mkdir()
    (scrapes / "001.md").write_text(bundles[0])
    (scrapes / "002.md").write_text(bundles[1])
    _build(settings, store, scrapes, index)
    old = _visible_state(index, store)
    (scrapes / "002.md").unlink()  # the new state drops bundle 2 and adds bundles 3 and 4
    (scrapes / "003.md").write_text(bundles[2])
    (scrapes / "004.md").write_text(bundles[3])

    res = subprocess.run(
        [sys.executable, "-c", KILL_BUILD, str(scrapes), str(index), uri, store.collection],
        env={**os.environ, "RAG_CRASH_AT": point},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == -9, res.stderr
    urls, n = _visible_state(index, store)
    if point in ("manifest-written", "cleaned-up"):
        assert len(urls) == 8 and urls != old[0]
    else:
        assert (urls, n) == old
    report = _build(settings, store, scrapes, index)  # finishes the job, removes the leftovers
    urls, n = _visible_state(index, store)
    assert len(urls) == 8 and n == report.chunks == _physical_rows(store)


# ------------------------------------------------------------------------------ errors


def test_a_second_process_on_a_lite_file_gets_one_line(tmp_path, scrapes, settings):
    store = StoreSettings(kind="milvus", uri=str(tmp_path / "m.db"))
    _build(settings, store, scrapes, tmp_path / "index")
    holder = open_store(tmp_path / "index", settings=store)  # this process holds the Lite file
    try:
        res = run_rag("index", "--store", "milvus", "--uri", store.uri, "--scrapes", str(scrapes))
    finally:
        holder.close()
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and "another process" in res.stderr


def test_credentials_never_reach_a_message(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_MILVUS_TOKEN", "root:s3cret-token")
    port = _free_port()  # nothing listens there
    with pytest.raises(RagError) as e:
        open_store(
            tmp_path, settings=StoreSettings(kind="milvus", uri=f"http://admin:pa55word@127.0.0.1:{port}")
        )
    msg = str(e.value)
    assert "\n" not in msg and "s3cret" not in msg and "pa55word" not in msg and "admin" not in msg


def test_bad_store_settings_are_one_line(tmp_path):
    res = run_rag("search", "x", "--store", "milvus", "--uri", str(tmp_path / "folder"))
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and ".db" in res.stderr
    res = run_rag("search", "x", "--store", "cassandra")
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "store.kind" in res.stderr


def test_the_default_store_never_imports_milvus(real_index):
    code = (
        "import sys; from rag import cli; sys.argv = ['rag', 'search', 'python', '--index', "
        f"{str(real_index)!r}, '--json']\n"
        "try:\n    cli.main(quick_exit=False)  # end normally, so that we can look\n"
        "except SystemExit:\n    pass\n"
        "print('MILVUS' if any(m.startswith(('pymilvus', 'milvus_lite')) for m in sys.modules) else 'CLEAN')"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip().endswith("CLEAN"), res.stderr


def test_vectors_round_trip_exactly(built):
    ids = [c.chunk_id for c in built.all_chunks()][:7]
    vecs = built.vectors(ids)
    assert vecs.shape == (7, 384) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


# ------------------------------------------------------------------------------ bundle file records


def test_file_records_round_trip_and_follow_the_generation(tmp_path, scrapes, settings, backend):
    from rag.stores import Changes, FileRecord, open_store

    index = tmp_path / "index"
    _build(settings, backend, scrapes, index)
    store = open_store(index, settings=backend)
    first = store.files()
    assert sorted(first) == sorted(str(p.resolve()) for p in scrapes.iterdir())
    rec = first[str((scrapes / "001.md").resolve())]
    assert rec.size == (scrapes / "001.md").stat().st_size and len(rec.sha256) == 64
    assert len(rec.articles) >= 3 and all(len(t) == 3 for t in rec.articles)
    # A record too large for one Milvus row (64 KB) comes back whole.
    big = FileRecord("/x/big.md", 1, 2, "f" * 64, tuple((f"id{i}", "h" * 32, "t" * 16) for i in range(3000)))
    with store.writing():
        m = store.manifest()
        store.commit(Changes(files={**first, big.path: big}), m)
    assert store.files() == {**first, big.path: big}
    with store.writing():  # files=None keeps the previous generation's records
        store.commit(Changes(), store.manifest())
    assert store.files() == {**first, big.path: big}
    with store.writing():
        store.commit(Changes(files={}), store.manifest())
    assert store.files() == {}
    store.close()


def test_a_new_file_reads_only_that_file_in_every_store(tmp_path, scrapes, bundles, settings, backend):
    index = tmp_path / "index"
    first = _build(settings, backend, scrapes, index)
    assert first.files_read == 2
    again = _build(settings, backend, scrapes, index)
    assert (again.files_read, again.embedded_chunks, again.unchanged) == (0, 0, 6)
    (scrapes / "003.md").write_text(bundles[2])
    third = _build(settings, backend, scrapes, index)
    assert third.files_read == 1 and third.removed == third.updated == 0
    assert third.added == third.articles - 6 > 0
    full = _build(settings, backend, scrapes, tmp_path / "fresh")
    assert _counts(full)[:2] == _counts(third)[:2]
