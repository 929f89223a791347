"""A tiny development set over three hand-made articles, and a fake retriever whose rankings are
fixed per question, so that a run's every number is known (used by the evaluation-run tests)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from rag.evaluation.dev import run_dev_suite
from rag.evaluation.questions import Evidence, Question
from rag.stores import ArticleInfo, StoredChunk

SENTENCES = {
    "https://x.org/a": ["Alpha cats sleep all day long.", "Alpha dogs bark at the moon loudly."],
    "https://x.org/b": ["Beta rivers flow into the sea.", "Beta mountains rise above the clouds."],
    "https://x.org/c": ["Gamma stars burn for billions of years.", "Gamma comets carry ancient ice."],
}
TEXTS = {u: " ".join(s) for u, s in SENTENCES.items()}


def _chunks() -> dict[str, StoredChunk]:
    out = {}
    for a, (url, sents) in enumerate(SENTENCES.items()):
        start = 0
        for n, s in enumerate(sents):
            cid = f"{'abc'[a]}{n}"
            out[cid] = StoredChunk(
                cid, f"art{a}", url, f"Title {a}", "P", None, f"H{n}", s, start, start + len(s), n, False
            )
            start += len(s) + 1
    return out


CHUNKS = _chunks()
QUESTIONS = [
    Question(
        "q1", "Do cats sleep?", "all day", "factoid", (Evidence("https://x.org/a", 3, "cats sleep all day"),)
    ),
    Question(
        "q2",
        "What do dogs bark at?",
        "the moon",
        "factoid",
        (Evidence("https://x.org/a", 2, "bark at the moon"),),
    ),
    Question(
        "q3",
        "Where do rivers flow?",
        "sea",
        "paraphrase",
        (Evidence("https://x.org/b", 3, "rivers flow into the sea"),),
    ),
    Question(
        "q4",
        "Mountains and stars?",
        "",
        "multi-article",
        (
            Evidence("https://x.org/b", 2, "mountains rise above"),
            Evidence("https://x.org/c", 1, "stars burn for billions"),
        ),
    ),
    Question(
        "q5",
        "What do comets carry?",
        "ice",
        "keyword",
        (Evidence("https://x.org/c", 3, "comets carry ancient ice"),),
    ),
    Question("q6", "Who won the cup?", "", "unanswerable", ()),
]
# Rankings of chunk ids per retriever and question; the right chunk is a0, a1, b0, b1+c0, c1.
RANKINGS = {
    "dense": {"q1": "a0 b0 c0", "q2": "b1 a1 c1", "q3": "c0 c1 a0", "q4": "b1 c0 a0", "q5": "a0 b0 c1"},
    "bm25": {"q1": "b0 a0 c0", "q2": "a1 b1 c1", "q3": "b0 c1 a0", "q4": "c0 a0 b1", "q5": "c1 b0 a0"},
}


@dataclass
class FakeStore:
    def articles(self) -> list[ArticleInfo]:
        return [
            ArticleInfo(f"art{i}", url, f"Title {i}", "P", None, None, False, 2, "h")
            for i, url in enumerate(SENTENCES)
        ]

    def article_text(self, article_id: str) -> str | None:
        return TEXTS[list(SENTENCES)[int(article_id[3:])]]

    def manifest(self) -> dict[str, Any]:
        return {"embedder": {"name": "fake"}, "corpus_hash": "c0ffee", "generation": 1}


class FakeRetriever:
    store = FakeStore()

    def search(self, query: str, k: int = 10, retriever: str = "dense") -> list[Any]:
        qid = next(q.id for q in QUESTIONS if q.question == query)
        ids = RANKINGS[retriever].get(qid, "").split()
        return [SimpleNamespace(chunk=CHUNKS[c]) for c in ids[:k]]


def fake_record(name: str = "fake", rankings: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """A saved-run record of the fake retriever over the tiny development set."""
    from rag.evaluation.runs import record_from

    if rankings:
        RANKINGS.update(rankings)
    result = run_dev_suite(FakeRetriever(), QUESTIONS, list(RANKINGS), k=10)
    questions = {q.id: {"question": q.question, "type": q.type} for q in QUESTIONS}
    return record_from(
        result, name, {"retrieve": {"k": 10}}, questions, {"path": "fake.jsonl", "hash": "abc"}
    )
