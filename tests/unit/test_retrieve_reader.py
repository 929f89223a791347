"""The "reader" retriever: hybrid's hits, the first `reader_candidates` reordered by fusing their
rank with the reader's (a fake store and a fake reader make every rank exact)."""

from types import SimpleNamespace

import numpy as np

from rag.config import RetrieveSettings
from rag.reader import Reading
from rag.retrieve import Retriever
from rag.stores import StoredChunk


def _chunk(cid: str) -> StoredChunk:
    return StoredChunk(
        cid, f"art-{cid}", f"https://x.org/{cid}", cid, "P", None, "", f"text {cid}", 0, 6, 0, False
    )


CHUNKS = [_chunk(c) for c in "abcdef"]


class FakeStore:
    """Dense and BM25 agree: a, b, c, d, e, f."""

    def search_dense(self, vec, n, filters=None):
        return [(c, 1.0 - i / 10) for i, c in enumerate(CHUNKS[:n])]

    def search_lexical(self, query, n, filters=None):
        return [(c, 10.0 - i) for i, c in enumerate(CHUNKS[:n])]

    def manifest(self):
        return {"generation": 1}

    def articles(self):
        return []


class FakeReader:
    """Scores by chunk: the reader likes d best, then c; the others not at all."""

    def __init__(self):
        self.read_passages = []

    def read(self, question, passages):
        self.read_passages.append(list(passages))
        likes = {"text d": 0.9, "text c": 0.8}
        return [Reading(likes.get(p, 0.1), 0, 0, "") for p in passages]


def _retriever(**settings) -> tuple[Retriever, FakeReader]:
    r = Retriever(FakeStore(), RetrieveSettings(rrf_k=1.0, **settings), embedder=SimpleNamespace())
    reader = FakeReader()
    r._reader = reader
    return r, reader


def test_hybrid_order_is_unchanged_without_the_reader():
    r, reader = _retriever()
    hits = r.search("q", k=6, retriever="hybrid", query_vector=np.zeros(3))
    assert [h.chunk.chunk_id for h in hits] == list("abcdef")
    assert reader.read_passages == []


def test_reader_reorders_only_its_candidates():
    r, reader = _retriever(reader_candidates=4, reader_weight=1.0)
    hits = r.search("q", k=6, retriever="reader", query_vector=np.zeros(3))
    # Candidates a, b, c, d: hybrid ranks 1-4, reader ranks d, c, a, b (ties keep their order).
    # Fused with rrf_k 1: a 1/2+1/4, b 1/3+1/5, c 1/4+1/3, d 1/5+1/2; e and f follow unread.
    assert [h.chunk.chunk_id for h in hits] == list("adcbef")
    assert reader.read_passages == [["text a", "text b", "text c", "text d"]]
    assert all(h.retriever == "reader" for h in hits)


def test_reader_weight_zero_keeps_hybrids_order():
    r, _ = _retriever(reader_candidates=6, reader_weight=0.0)
    hits = r.search("q", k=6, retriever="reader", query_vector=np.zeros(3))
    assert [h.chunk.chunk_id for h in hits] == list("abcdef")
