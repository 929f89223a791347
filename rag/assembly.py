"""The one place the query stack is put together: store -> retriever -> answerer.

The CLI, the evaluation suite, the benchmarks and the studies open their retriever and answerer
here, so a setting that shapes them (the index folder, the store backend, the per-article cap,
the fitted abstention model, the LLM file) is read in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.config import Settings
from rag.errors import IndexMissing

if TYPE_CHECKING:
    from rag.answer import Answerer
    from rag.retrieve import Retriever
    from rag.stores import Store


def open_index(
    settings: Settings,
    index_dir: Path | None = None,
    build_missing: Callable[[Path], Any] | None = None,
) -> Store:
    """The configured store at `index_dir` (else `paths.index`). With `build_missing`, an index
    that does not exist yet is first built by calling it with the folder."""
    from rag.stores import open_store

    path = index_dir or settings.paths.index
    if build_missing is not None and not index_exists(settings, path):
        build_missing(path)
    return open_store(path, settings=settings.store)


def index_exists(settings: Settings, path: Path) -> bool:
    """Whether a built index is at `path` (in the configured store)."""
    from rag.stores import open_store

    try:
        return open_store(path, settings=settings.store).manifest() is not None
    except IndexMissing:
        return False


def open_retriever(
    settings: Settings,
    index_dir: Path | None = None,
    *,
    store: Store | None = None,
    uncapped: bool = False,
    embedder: Any = None,
) -> Retriever:
    """A retriever over `store` (else the index at `index_dir`). `uncapped` lifts the per-article
    cap, as benchmark corpora of one document per "article" need."""
    from rag.retrieve import Retriever

    rs = settings.retrieve
    if uncapped:
        rs = rs.model_copy(update={"max_per_article": 0})
    store = store if store is not None else open_index(settings, index_dir)
    return Retriever(store, rs, embedder=embedder)


def open_answerer(
    settings: Settings,
    index_dir: Path | None = None,
    *,
    retriever: Retriever | None = None,
    model: Path | None = None,
    build_missing: Callable[[Path], Any] | None = None,
    fitted: bool = True,
) -> Answerer:
    """The answerer over `retriever` (else over the index at `index_dir`, built first through
    `build_missing` when there is none yet). `model` replaces the configured GGUF file;
    `fitted=False` leaves out the fitted abstention model (the configured threshold decides)."""
    from rag.answer import Answerer

    if retriever is None:
        retriever = open_retriever(settings, store=open_index(settings, index_dir, build_missing))
    llm = settings.llm
    if model is not None:
        llm = llm.model_copy(update={"model_path": str(model)})
    abstention = settings.paths.abstention if fitted else None
    return Answerer(retriever, settings.answer, llm, abstention, prior=settings.costs.answerable_prior)
