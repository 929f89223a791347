"""Shared fixtures: the shipped corpus, a fake embedder for exact unit tests, and the real models
loaded once per session for integration tests (offline loading is part of what we ship)."""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The shared ONNX model cache lives in a temp dir per test session, never in the user's home: the
# first build writes the graph there (a few seconds), as a new user's first `rag index` does.
os.environ["XDG_CACHE_HOME"] = _CACHE = tempfile.mkdtemp(prefix="rag-test-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "data" / "scrapes" / "000_6d7d6aa2d5092b1c.txt"


class FakeEmbedder:
    """Bag-of-words hashing vectors: exact, instant, and similar texts get similar vectors."""

    name = "all-MiniLM-L6-v2"
    dimension = 384

    def __init__(self) -> None:
        self.calls = 0
        self.texts = 0

    def embed(self, texts, progress=None):
        self.calls += 1
        self.texts += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                h = int(hashlib.md5(w.encode()).hexdigest()[:8], 16)
                out[i, h % self.dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


def run_rag(*args: str, stdin: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """The real `rag` command in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )


def split_bundles(text: str) -> list[str]:
    """The seed file holds four bundles, each starting with a `# Bundle:` line."""
    parts = re.split(r"(?m)^(?=# Bundle:)", text)
    return [p for p in parts if p.strip()]


@pytest.fixture(scope="session")
def seed_text() -> str:
    return SEED.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def bundles(seed_text: str) -> list[str]:
    b = split_bundles(seed_text)
    assert len(b) == 4
    return b


@pytest.fixture()
def scrapes(tmp_path: Path, bundles: list[str]) -> Path:
    """A scrapes folder with the first two bundles (6 articles)."""
    d = tmp_path / "scrapes"
    d.mkdir()
    (d / "001.md").write_text(bundles[0])
    (d / "002.md").write_text(bundles[1])
    return d


@pytest.fixture()
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def settings():
    from rag.config import load_settings

    return load_settings(environ={})


@pytest.fixture(scope="session")
def torch_embedder():
    """sentence-transformers, the reference the ONNX graph is checked against."""
    from rag.embed import TorchEmbedder

    return TorchEmbedder()


@pytest.fixture(scope="session")
def onnx_embedder():
    """The embedder `rag index` and `rag search` use: the torch-free ONNX graph."""
    from rag.embed import onnx_embedder

    return onnx_embedder()


@pytest.fixture(scope="session")
def real_index(tmp_path_factory, settings, onnx_embedder) -> Path:
    """The shipped corpus indexed with the real embedder, as `rag index` builds it."""
    from rag.index import build_index

    path = tmp_path_factory.mktemp("idx") / "default"
    build_index(settings, SEED.parent, path, embedder=onnx_embedder)
    return path


@pytest.fixture()
def real_index_copy(real_index: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "idx"
    shutil.copytree(real_index, dst)
    return dst


@pytest.fixture(scope="session")
def retriever(real_index, settings):
    from rag.retrieve import Retriever
    from rag.stores import open_store

    return Retriever(open_store(real_index), settings.retrieve)


@pytest.fixture(scope="session")
def llm_works(settings) -> None:
    """The LLM answers a 300-token prompt in a child process. Tests that run the LLM in this
    process depend on it, so a library built for another CPU fails them instead of killing the
    whole suite with "Illegal instruction"."""
    from rag.doctor import run_probe
    from rag.errors import RagError
    from rag.llm import model_file

    try:
        run_probe(model_file(settings.llm))
    except RagError as e:
        pytest.fail(f"the LLM does not run here: {e}")


@pytest.fixture(scope="session")
def answerer(retriever, settings, llm_works):
    from rag.answer import Answerer

    return Answerer(
        retriever, settings.answer, settings.llm, settings.paths.abstention, settings.costs.answerable_prior
    )


@pytest.fixture(scope="session")
def drafting_answerer(retriever, settings, llm_works):
    """An answerer whose LLM drafts the answer (no adapter), as a user's own --model does."""
    from rag.answer import Answerer

    llm = settings.llm.model_copy(update={"adapter": False})
    return Answerer(
        retriever, settings.answer, llm, settings.paths.abstention, settings.costs.answerable_prior
    )


def articles_of(text: str) -> list[str]:
    """Each article block (from its `## Publication` to the end of its repeat) of a bundle."""
    starts = [m.start() for m in re.finditer(r"(?m)^## (?!Visual Content Analysis)[^\n]+\n\nSource:", text)]
    return [text[s:e] for s, e in zip(starts, [*starts[1:], len(text)], strict=True)]
