"""Building and updating the index with the real parser, embedder and FAISS."""

from __future__ import annotations

import json
import os
import re

import pytest

from rag.chunk import chunk_article
from rag.embed import count_tokens
from rag.errors import IndexCorrupt, IndexMissing, RagError
from rag.index import build_index
from rag.ingest import ingest
from rag.stores import Filters, open_store
from tests.conftest import FakeEmbedder, articles_of, run_rag


def test_incremental_update_embeds_only_new_and_changed(tmp_path, scrapes, bundles, settings, onnx_embedder):
    index = tmp_path / "index"
    first = build_index(settings, scrapes, index, embedder=onnx_embedder, export_query_model=False)
    assert (first.articles, first.added, first.updated, first.removed) == (6, 6, 0, 0)

    new_article = articles_of(bundles[2])[0]  # LLMs from scratch
    dup = articles_of(bundles[1])[0]  # an exact duplicate of an indexed article
    stats = articles_of(bundles[0])[0]
    assert "The Statistical Significance Scam" in stats
    changed = stats.replace("2024-11-10T01:45:17.300885", "2024-11-20T00:00:00").replace(
        "Statistical significance is like the drive-thru of the research world.",
        "Statistical significance is like a vending machine for conclusions.",
    )
    (scrapes / "003.md").write_text(new_article + changed + dup)

    second = build_index(settings, scrapes, index, embedder=onnx_embedder, export_query_model=False)
    assert (second.added, second.updated, second.removed, second.unchanged) == (1, 1, 0, 5)
    arts = {a.url: a for a in ingest(scrapes).articles}
    expect = sum(
        len(chunk_article(a, count_tokens, 256, settings.chunk.target_tokens, 32))
        for url, a in arts.items()
        if "understanding-llms" in url or "statistical-significance" in url
    )
    assert second.embedded_chunks == expect
    store = open_store(index)
    assert not any("drive-thru" in c.text for c in store.all_chunks())
    assert not any("drive-thru" in h.text for h, _ in store.search_lexical("drive thru research", 20))
    hits = store.search_lexical("vending machine conclusions", 3)
    assert hits and "vending machine" in hits[0][0].text
    assert store.chunk_count() == second.chunks == sum(a.chunks for a in store.articles())


def test_unchanged_scrapes_do_nothing(tmp_path, scrapes, settings, fake_embedder):
    index = tmp_path / "index"
    build_index(settings, scrapes, index, embedder=fake_embedder)
    gen = json.loads((index / "manifest.json").read_text())["generation"]
    again = build_index(settings, scrapes, index, embedder=fake_embedder)
    assert (again.unchanged, again.embedded_chunks) == (6, 0)
    assert json.loads((index / "manifest.json").read_text())["generation"] == gen


def test_removed_article_is_deleted_for_real(tmp_path, scrapes, settings, fake_embedder):
    index = tmp_path / "index"
    build_index(settings, scrapes, index, embedder=fake_embedder)
    (scrapes / "002.md").unlink()
    rep = build_index(settings, scrapes, index, embedder=fake_embedder)
    assert (rep.removed, rep.articles) == (3, 3)
    import sqlite3

    db = sqlite3.connect(index / "chunks.sqlite")
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 3
    n_chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    assert n_chunks == db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0] == rep.chunks
    # the removed rows' vectors may stay in a segment as tombstones, but no search returns them
    m = json.loads((index / "manifest.json").read_text())
    assert {p.name for p in index.glob("vectors-*.faiss")} == {s["file"] for s in m["segments"]}
    store = open_store(index)
    kept = {a.article_id for a in store.articles()}
    vec = fake_embedder.embed(["data science python statistics"])[0]
    hits = store.search_dense(vec, 1000)
    assert len(hits) == rep.chunks and {c.article_id for c, _ in hits} == kept


def test_changed_chunker_settings_rebuild_everything(tmp_path, scrapes, settings, fake_embedder):
    index = tmp_path / "index"
    build_index(settings, scrapes, index, embedder=fake_embedder)
    other = settings.model_copy(update={"chunk": settings.chunk.model_copy(update={"target_tokens": 100})})
    rep = build_index(other, scrapes, index, embedder=fake_embedder)
    assert rep.rebuilt and "chunker" in rep.rebuild_reason
    assert rep.embedded_chunks == rep.chunks


def test_failed_build_loses_nothing(tmp_path, scrapes, bundles, settings, fake_embedder):
    index = tmp_path / "index"
    build_index(settings, scrapes, index, embedder=fake_embedder)
    before = sorted(a.url for a in open_store(index).articles())

    class Exploding:
        def embed(self, texts, progress=None):
            raise RuntimeError("disk on fire")

    (scrapes / "003.md").write_text(bundles[2])
    with pytest.raises(RuntimeError):
        build_index(settings, scrapes, index, embedder=Exploding())
    store = open_store(index)
    assert sorted(a.url for a in store.articles()) == before
    assert store.search_lexical("significance", 3)
    rep = build_index(settings, scrapes, index, embedder=fake_embedder)
    assert rep.added == 3


def test_second_writer_is_refused(tmp_path, scrapes, settings, fake_embedder):
    index = tmp_path / "index"
    build_index(settings, scrapes, index, embedder=fake_embedder)
    store = open_store(index)
    with store.writing():
        with pytest.raises(RagError, match="another `rag index` is writing"):
            build_index(settings, scrapes, index, embedder=fake_embedder)


def test_filters_by_url_publication_and_date(real_index):
    store = open_store(real_index)
    vec = store.vectors([store.all_chunks()[0].chunk_id])[0]
    hits = store.search_dense(vec, 50, Filters(publication="stackademic"))
    assert hits and all("stackademic" in h.url for h, _ in hits)
    hits = store.search_lexical("python", 50, Filters(since="2024-10-20", until="2024-10-31"))
    assert {h.published[:10] for h, _ in hits} <= {"2024-10-23", "2024-10-30"}
    assert store.search_lexical("python", 50, Filters(url="no-such-article")) == []


def test_missing_and_corrupt_indexes_are_one_line_errors(tmp_path, real_index_copy):
    with pytest.raises(IndexMissing, match="run `rag index` first"):
        open_store(tmp_path / "nothing")
    m = json.loads((real_index_copy / "manifest.json").read_text())
    faiss_file = real_index_copy / m["segments"][0]["file"]
    faiss_file.write_bytes(faiss_file.read_bytes()[:1000])
    store = open_store(real_index_copy)
    assert store.search_lexical("python", 3)  # BM25 needs no vectors
    with pytest.raises(IndexCorrupt, match=r"cannot read vectors .* run `rag index --rebuild`"):
        store.search_dense(store.vectors([store.all_chunks()[0].chunk_id])[0], 3)


def test_manifest_records_what_shapes_the_vectors(real_index):
    m = json.loads((real_index / "manifest.json").read_text())
    from rag.embed import model_dir
    from rag.onnx_model import weights_digest

    assert m["embedder"] == {
        "name": "all-MiniLM-L6-v2",
        "dimension": 384,
        "normalized": True,
        "precision": "fp32",
        "weights": weights_digest(model_dir()),
    }
    assert (
        m["query_embedder"].startswith("all-MiniLM-L6-v2-fp32-")
        and not (real_index / m["query_embedder"]).exists()
    )
    assert m["chunker"]["max_tokens"] == 256 and m["cleaner"]["version"]
    assert m["counts"]["articles"] == 11 and m["index_kind"] == "flat"
    assert len(m["corpus_hash"]) == 16 and "articles" not in m  # articles live in the store, not here
    assert all(len(a.content_hash) == 32 for a in open_store(real_index).articles())


def test_unchanged_or_touched_files_are_not_parsed_and_load_no_embedder(tmp_path, scrapes, settings):
    class NoEmbedder:
        def embed(self, texts, progress=None):
            raise AssertionError("nothing should be embedded")

    index = tmp_path / "index"
    build_index(settings, scrapes, index, embedder=FakeEmbedder())
    gen = json.loads((index / "manifest.json").read_text())["generation"]
    again = build_index(settings, scrapes, index, embedder=NoEmbedder())
    assert (again.files_read, again.unchanged, again.embedded_chunks) == (0, 6, 0)
    assert json.loads((index / "manifest.json").read_text())["generation"] == gen
    # Same bytes, new modification time: read and hashed, not parsed; the record is refreshed.
    f = scrapes / "001.md"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    touched = build_index(settings, scrapes, index, embedder=NoEmbedder())
    assert (touched.files_read, touched.embedded_chunks) == (1, 0)
    assert build_index(settings, scrapes, index, embedder=NoEmbedder()).files_read == 0


def test_a_changed_file_with_the_same_articles_re_embeds_nothing(tmp_path, scrapes, bundles, settings):
    index = tmp_path / "index"
    build_index(settings, scrapes, index, embedder=FakeEmbedder())
    # A re-save that changes bytes outside any article: the file is re-parsed, nothing else.
    (scrapes / "002.md").write_text(bundles[1] + "\n\n")
    fake = FakeEmbedder()
    report = build_index(settings, scrapes, index, embedder=fake)
    assert (report.files_read, report.embedded_chunks, report.unchanged, fake.calls) == (1, 0, 6, 0)


def test_removed_file_removes_its_articles(tmp_path, scrapes, settings):
    index = tmp_path / "index"
    build_index(settings, scrapes, index, embedder=FakeEmbedder())
    (scrapes / "002.md").unlink()
    report = build_index(settings, scrapes, index, embedder=FakeEmbedder())
    assert report.removed > 0 and report.articles == 6 - report.removed


def test_an_empty_folder_says_so_and_keeps_the_index(tmp_path, scrapes, settings):
    index = tmp_path / "index"
    build_index(settings, scrapes, index, embedder=FakeEmbedder())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RagError, match=f"^no articles found in {re.escape(str(empty))}"):
        build_index(settings, empty, index, embedder=FakeEmbedder())
    assert open_store(index).manifest()["counts"]["articles"] == 6


def test_empty_folder_from_the_cli_is_one_line_without_loading_the_embedder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_rag("index", "--scrapes", str(empty), "--index", str(tmp_path / "idx"))
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [f"error: no articles found in {empty}; the index is unchanged"]


def test_an_index_from_before_the_model_cache_is_rebuilt_once(tmp_path, scrapes, settings):
    index = tmp_path / "index"
    build_index(settings, scrapes, index, embedder=FakeEmbedder())
    path = index / "manifest.json"
    m = json.loads(path.read_text())
    m["embedder"] = {"name": "all-MiniLM-L6-v2", "dimension": 384, "normalized": True}  # no precision
    m["query_embedder"] = "query-embedder.onnx"
    path.write_text(json.dumps(m))
    (index / "query-embedder.onnx").write_bytes(b"old copy")
    report = build_index(settings, scrapes, index, embedder=FakeEmbedder())
    assert report.rebuilt and "another embedder" in report.rebuild_reason
    assert not (index / "query-embedder.onnx").exists()
    assert build_index(settings, scrapes, index, embedder=FakeEmbedder()).files_read == 0
