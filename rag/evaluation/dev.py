"""Retrieval on the development set: each retriever's evidence- and article-level scores, the
worst questions, and the report as `rag eval` writes it."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.evaluation.metrics import HEADLINE, MEASURES, mean, trec_metrics
from rag.evaluation.questions import Question, ResolvedQuestion, judgments, qrels_for, resolve, run_for
from rag.evaluation.runs import git_commit
from rag.evaluation.tables import markdown_table
from rag.stores import StoredChunk

SearchFn = Callable[[str, str, int], list[StoredChunk]]  # (query, retriever, k) -> chunks


@dataclass
class RetrieverResult:
    """One retriever's means at both levels, its per-question scores and its runs."""

    retriever: str
    evidence: dict[str, float]
    article: dict[str, float]
    per_query: dict[str, dict[str, Any]]
    mean_chunk_words: float
    seconds_per_query: float
    runs: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # level -> TREC run
    deep_runs: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # to `depth`


def evaluate_retriever(
    resolved: Sequence[ResolvedQuestion],
    search: SearchFn,
    retriever: str,
    k: int = 10,
    word_budget: int = 1500,
    depth: int = 0,
) -> RetrieverResult:
    """Scores the top `k` chunks; with `depth` > k, also keeps runs of the top `depth` (for
    recall@k curves) without changing the scores."""
    ev_qrels, art_qrels = qrels_for(resolved)
    ev_run: dict[str, dict[str, float]] = {}
    art_run: dict[str, dict[str, float]] = {}
    retrieved: dict[str, list[StoredChunk]] = {}
    lengths: list[int] = []
    t0 = time.perf_counter()
    scored = [rq for rq in resolved if rq.question.relevant]
    deep: dict[str, dict[str, dict[str, float]]] = {"evidence": {}, "article": {}}
    for rq in scored:
        hits = search(rq.question.question, retriever, max(k, depth))
        if depth > k:
            deep["evidence"][rq.question.id], deep["article"][rq.question.id] = run_for(rq, hits, word_budget)
            hits = hits[:k]
        retrieved[rq.question.id] = hits
        lengths.extend(len(h.text.split()) for h in hits)
        ev_run[rq.question.id], art_run[rq.question.id] = run_for(rq, hits, word_budget)
    elapsed = time.perf_counter() - t0
    ev_pq = trec_metrics(ev_qrels, ev_run)
    art_pq = trec_metrics(art_qrels, art_run)
    per_query = {
        rq.question.id: {
            "question": rq.question.question,
            "type": rq.question.type,
            "evidence": ev_pq.get(rq.question.id, {}),
            "article": art_pq.get(rq.question.id, {}),
            "retrieved": [
                {"url": h.url, "title": h.title, "heading": h.heading, "text": h.text[:200]}
                for h in retrieved[rq.question.id][:3]
            ],
            "expected": [e.url for e in rq.question.relevant],
            "missing_evidence": [e.quote for e in rq.missing],
        }
        for rq in scored
    }
    return RetrieverResult(
        retriever=retriever,
        evidence=mean(ev_pq),
        article=mean(art_pq),
        per_query=per_query,
        mean_chunk_words=sum(lengths) / max(1, len(lengths)),
        seconds_per_query=elapsed / max(1, len(scored)),
        runs={"evidence": ev_run, "article": art_run},
        deep_runs=deep if depth > k else {},
    )


def index_fingerprint(manifest: dict[str, Any]) -> tuple[str, str]:
    """(index fingerprint, corpus hash): the settings that shape vectors, and the article texts."""
    ident = {k: manifest.get(k) for k in ("embedder", "chunker", "cleaner", "index_kind")}
    fp = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return fp, str(manifest.get("corpus_hash"))


def means_table(results: Sequence[RetrieverResult]) -> str:
    """Markdown: each retriever's mean of every measure, at evidence and at article level."""
    rows = [
        [r.retriever, level, *(f"{vals[m]:.3f}" for m in MEASURES)]
        for r in results
        for level, vals in (("evidence", r.evidence), ("article", r.article))
    ]
    return markdown_table(["retriever", "level", *MEASURES], rows, "ll" + "r" * len(MEASURES))


def worst_questions(result: RetrieverResult, n: int = 5) -> list[dict[str, Any]]:
    """The `n` questions with the lowest evidence-level headline score (ties by id)."""
    items = sorted(result.per_query.items(), key=lambda kv: (kv[1]["evidence"].get(HEADLINE, 0.0), kv[0]))
    return [{"id": qid, **v} for qid, v in items[:n]]


def article_texts(store: Any) -> dict[str, str]:
    """Every stored article's clean text, under its URL and each of its aliases."""
    texts: dict[str, str] = {}
    for a in store.articles():
        text = store.article_text(a.article_id) or ""
        for url in (a.url, *a.aliases):
            texts[url] = text
    return texts


def run_dev_suite(
    retriever: Any,
    questions: Sequence[Question],
    names: Sequence[str],
    k: int = 10,
    word_budget: int = 1500,
    depth: int = 0,
) -> dict[str, Any]:
    """Evaluate each named retriever on the development set; returns the report as a dict."""
    store = retriever.store
    resolved = resolve(questions, article_texts(store))
    results = [
        evaluate_retriever(
            resolved,
            lambda q, name, kk: [h.chunk for h in retriever.search(q, k=kk, retriever=name)],
            name,
            k=k,
            word_budget=word_budget,
            depth=depth,
        )
        for name in names
    ]
    manifest = store.manifest() or {}
    fp, corpus = index_fingerprint(manifest)
    ev_qrels, art_qrels = qrels_for(resolved)
    return {
        "kind": "dev",
        "questions": len(questions),
        "scored_questions": sum(1 for q in questions if q.relevant),
        "unresolved_evidence": [
            {"id": rq.question.id, "url": e.url, "evidence": e.quote} for rq in resolved for e in rq.missing
        ],
        "k": k,
        "word_budget": word_budget,
        "index_fingerprint": fp,
        "corpus_hash": corpus,
        "index_generation": manifest.get("generation"),
        "git_commit": git_commit(),
        "retrievers": {r.retriever: _retriever_report(r) for r in results},
        "qrels": {"evidence": ev_qrels, "article": art_qrels},
        "judgments": judgments(resolved),
        "table": means_table(results),
    }


def _retriever_report(r: RetrieverResult) -> dict[str, Any]:
    return {
        "evidence": r.evidence,
        "article": r.article,
        "mean_chunk_words": round(r.mean_chunk_words, 1),
        "seconds_per_query": round(r.seconds_per_query, 4),
        "worst": worst_questions(r),
        "per_query": r.per_query,
        "run": r.runs,
        **({"deep_run": r.deep_runs} if r.deep_runs else {}),
    }
