"""Answer or abstain: the evidence retrieval found for a question, and the one decision made on
it. `rag ask` decides with `decide`, and the evaluation scores the same function, so a model is
never judged differently from how it is used.

The signals are described in rag.abstain.SIGNALS; the fitted model (config/abstention.json)
weighs them. Without a fitted model, the best sentence's similarity against
`answer.abstain_below` decides. Either way a question naming something no retrieved source
mentions is not answered (the names veto).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag.abstain import AbstentionModel
from rag.answer.facts import missing_facts, veto_reason
from rag.answer.sources import sentence_key
from rag.answer.types import Source
from rag.retrieve import Hit
from rag.stores.base import Filters, Store
from rag.text import content_words, query_words


@dataclass(frozen=True)
class Decision:
    """Whether to answer; `score` is the number compared with `threshold` (None when the names
    veto decided), `confidence` the fitted model's probability when there is one."""

    answer: bool
    score: float | None
    threshold: float
    confidence: float | None
    reason: str  # why not, when not answering


def decide(
    signals: dict[str, float],
    missing: list[str],
    model: AbstentionModel | None,
    abstain_below: float,
) -> Decision:
    """The decision on a question's signals: the fitted model when there is one, else the
    similarity threshold; the names veto first (the model's `veto_missing` may turn it off)."""
    confidence = model.probability(signals) if model is not None else None
    if missing and (model is None or model.veto_missing):
        threshold = model.threshold if model is not None else abstain_below
        return Decision(False, None, threshold, confidence, veto_reason(missing))
    if model is not None:
        p = float(confidence or 0.0)
        if p >= model.threshold:
            return Decision(True, p, model.threshold, p, "")
        return Decision(False, p, model.threshold, p, model.explain(signals))
    score = signals["sentence_cos"]
    if score < abstain_below:
        why = f"the closest evidence scores {score:.2f}, below {abstain_below}"
        return Decision(False, score, abstain_below, None, why)
    return Decision(True, score, abstain_below, None, "")


def signals(
    store: Store,
    question: str,
    qvec: np.ndarray,
    hits: list[Hit],
    sources: list[Source],
    filters: Filters | None = None,
) -> tuple[dict[str, float], list[str]]:
    """The evidence for answering (see rag.abstain.SIGNALS), and the question's names and
    numbers that no retrieved source mentions."""
    dense = store.search_dense(qvec, 1, filters)
    lexical = store.search_lexical(question, 1, filters)
    # The most a passage could score for this query: each term's best score, summed.
    ceiling = sum(
        max((sc for _, sc in store.search_lexical(t, 1, filters)), default=0.0) for t in query_words(question)
    )
    qwords = content_words(question)
    text = " ".join(f"{h.chunk.title} {h.chunk.heading} {h.chunk.text}" for h in hits)
    missing = missing_facts(question, hits)
    sims = best_sentence_sims(qvec, sources)
    return {
        "sentence_cos": mean_of_best(sims, 1),
        "sentence_cos_top3": mean_of_best(sims, 3),
        "chunk_cos": float(dense[0][1]) if dense else -1.0,
        "lexical": min(1.0, lexical[0][1] / ceiling) if lexical and ceiling > 0 else 0.0,
        "agreement": float(bool(dense and lexical and dense[0][0].article_id == lexical[0][0].article_id)),
        "coverage": len(qwords & content_words(text)) / len(qwords) if qwords else 0.0,
        "missing": float(len(missing)),
    }, missing


def best_sentence_sims(qvec: np.ndarray, sources: list[Source]) -> list[float]:
    """Cosine similarity to the question of each distinct sentence of the sources, best first
    (overlapping chunks repeat sentences; each counts once)."""
    best: dict[str, float] = {}
    for s in sources:
        for sent, sim in zip(s.sentences, (s.vectors @ qvec).tolist(), strict=True):
            key = sentence_key(sent)
            best[key] = max(best.get(key, -1.0), sim)
    return sorted(best.values(), reverse=True)


def mean_of_best(sims: list[float], n: int) -> float:
    """The mean of the `n` best of `sims` (sorted best first), -1.0 when there are none: the
    best sentence alone, and the best three (several close sentences are better evidence than
    one lucky match)."""
    return float(np.mean(sims[:n])) if sims else -1.0
