"""BEIR datasets (SciFact and friends): loading one, a cached throwaway index of its corpus, and
document-level scores per retriever, each document ranked at its best chunk."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import IndexCorrupt, IndexMissing, RagError
from rag.evaluation.metrics import MEASURES, mean, trec_metrics
from rag.evaluation.runs import git_commit
from rag.evaluation.tables import markdown_table
from rag.stores import StoredChunk, open_store


@dataclass
class BeirData:
    """A BEIR dataset's corpus, the split's queries and qrels, and a hash of its files."""

    corpus: dict[str, tuple[str, str]]  # doc id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    fingerprint: str


def load_beir(path: Path, split: str = "test") -> BeirData:
    """A BEIR dataset folder; only the split's query ids are kept, graded qrels as given."""
    need = [path / "corpus.jsonl", path / "queries.jsonl", path / "qrels" / f"{split}.tsv"]
    for p in need:
        if not p.exists():
            raise RagError(
                f"{p}: missing; a BEIR folder holds corpus.jsonl, queries.jsonl, qrels/{split}.tsv"
            )
    h = hashlib.sha256()
    for p in need:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    corpus: dict[str, tuple[str, str]] = {}
    for n, line in enumerate(_lines(need[0]), start=1):
        try:
            d = json.loads(line)
            corpus[str(d["_id"])] = (d.get("title") or "", d.get("text") or "")
        except (ValueError, KeyError) as e:
            raise RagError(f"{need[0]}:{n}: bad corpus line ({e})") from None
    qrels: dict[str, dict[str, int]] = {}
    for n, line in enumerate(_lines(need[2]), start=1):
        parts = line.split("\t")
        if n == 1 and not parts[-1].strip().lstrip("-").isdigit():
            continue  # header
        if len(parts) < 3:
            raise RagError(f"{need[2]}:{n}: expected query-id, corpus-id, score")
        qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    queries: dict[str, str] = {}
    for n, line in enumerate(_lines(need[1]), start=1):
        try:
            d = json.loads(line)
        except ValueError as e:
            raise RagError(f"{need[1]}:{n}: bad query line ({e})") from None
        if str(d["_id"]) in qrels:
            queries[str(d["_id"])] = d["text"]
    return BeirData(corpus, queries, qrels, h.hexdigest()[:16])


def _lines(path: Path) -> Iterable[str]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield line.rstrip("\n")


def beir_run(hits: Sequence[StoredChunk], doc_of: Callable[[StoredChunk], str]) -> dict[str, float]:
    """Document ranking from chunk hits: each document at its best chunk's rank."""
    run: dict[str, float] = {}
    for ch in hits:
        d = doc_of(ch)
        if d not in run:
            run[d] = 10_000.0 - len(run)
    return run


BEIR_URL = "beir://"


def beir_index(data: BeirData, settings: Any, cache_root: Path, progress: Any = None) -> Path:
    """A throwaway index of a BEIR corpus, cached by dataset hash and index identity."""
    return cached_index(
        f"beir-{data.fingerprint}", lambda: beir_articles(data), settings, cache_root, progress
    )


def cached_index(
    name: str,
    articles: Callable[[], list[Any]],
    settings: Any,
    cache_root: Path,
    progress: Any = None,
    start_from: Path | None = None,
) -> Path:
    """A throwaway index of `articles()` (called only when it must be built) in
    `cache_root/NAME-IDENTITY`, the identity a hash of the settings that shape the index; a
    committed one is reused. `start_from` (a built index of a superset of the articles) is copied
    first, so that the build only deletes what is not in `articles()` and embeds nothing."""
    from rag.index import identity, index_articles

    ident = hashlib.sha256(json.dumps(identity(settings), sort_keys=True).encode()).hexdigest()[:8]
    path = cache_root / f"{name}-{ident}"
    if _built(path, settings):
        return path
    if start_from is not None:
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(start_from, path)
    index_articles(articles(), settings, path, progress=progress)
    return path


def beir_articles(data: BeirData, leave_out: frozenset[str] = frozenset()) -> list[Any]:
    """The corpus as articles (one per document with any text), but the ids in `leave_out`."""
    from rag.records import Article

    return [
        Article(
            url=f"{BEIR_URL}{doc_id}",
            title=title.strip(),
            publication="",
            published=None,
            fetched=None,
            text=text.strip() or title.strip(),
            member_only=False,
            source_file="corpus.jsonl",
            source_line=0,
        )
        for doc_id, (title, text) in data.corpus.items()
        if (text.strip() or title.strip()) and doc_id not in leave_out
    ]


def _built(path: Path, settings: Any) -> bool:
    """Whether the store at `path` holds a committed index; an absent or half-made one does not."""
    try:
        store = open_store(path, settings=settings.store)
    except (IndexMissing, IndexCorrupt):
        return False
    try:
        return store.manifest() is not None
    finally:
        store.close()


def beir_store(settings: Any, faiss_dir: Path, before_copy: Callable[[Path], None] | None = None) -> Any:
    """The BEIR index in the configured store; a Milvus copy is made once from the FAISS one
    (`before_copy(faiss_dir)` is called first, so that the caller can say so)."""
    from rag.index import copy_index

    if settings.store.kind == "faiss":
        return open_store(faiss_dir)
    # Collections of their own, named after the cached index: never the user's own index.
    beir = settings.store.model_copy(update={"collection": faiss_dir.name.replace("-", "_")})
    store = open_store(faiss_dir, create=True, settings=beir)
    if store.manifest() is None:
        if before_copy is not None:
            before_copy(faiss_dir)
        copy_index(open_store(faiss_dir), store)
    return store


def beir_doc(chunk: StoredChunk) -> str:
    """The BEIR document id a chunk of the throwaway index came from."""
    return chunk.url[len(BEIR_URL) :]


def run_beir_suite(
    retriever: Any, data: BeirData, names: Sequence[str], k: int = 10, candidates: int = 20
) -> dict[str, Any]:
    """Evaluate each named retriever on a BEIR dataset at document level."""
    out: dict[str, Any] = {
        "kind": "beir",
        "queries": len(data.queries),
        "fingerprint": data.fingerprint,
        "git_commit": git_commit(),
        "retrievers": {},
    }
    for name in names:
        t0 = time.perf_counter()
        run = {
            qid: beir_run([h.chunk for h in retriever.search(q, k=candidates, retriever=name)], beir_doc)
            for qid, q in data.queries.items()
        }
        per_q = trec_metrics(data.qrels, run)
        out["retrievers"][name] = {
            "document": mean(per_q),
            "seconds_per_query": round((time.perf_counter() - t0) / max(1, len(data.queries)), 4),
            "per_query": {qid: {"document": m} for qid, m in per_q.items()},
            "run": {"document": run},
        }
    out["qrels"] = {"document": data.qrels}
    rows = [[name, *(f"{r['document'][m]:.3f}" for m in MEASURES)] for name, r in out["retrievers"].items()]
    out["table"] = markdown_table(["retriever", *MEASURES], rows, "l" + "r" * len(MEASURES))
    return out
