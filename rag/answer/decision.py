"""Answer or abstain: the evidence retrieval found for a question, and the one decision made on
it. `rag ask` decides with `decide`, and the evaluation scores the same function, so a model is
never judged differently from how it is used.

The signals are described in rag.abstain.SIGNALS; the fitted model (config/abstention.json)
weighs them. Without a fitted model, the best sentence's similarity against
`answer.abstain_below` decides. Either way a question naming something no retrieved source
mentions is not answered (the names veto).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from rag.abstain import AbstentionModel
from rag.answer.extractive import FACTOID_KINDS, fits_kind, question_kind
from rag.answer.facts import facts, missing_facts, veto_reason
from rag.answer.sources import sentence_key
from rag.answer.types import Source
from rag.retrieve import Hit
from rag.stores.base import Filters, Store
from rag.text import content_words, query_words


@dataclass(frozen=True)
class Decision:
    """The outcome ("answered", "unsure" or "abstained"); `score` is the number compared with
    the cut points (None when the names veto decided), `confidence` the fitted model's
    probability when there is one."""

    outcome: str
    score: float | None
    threshold: float  # the score an answer needs
    confidence: float | None
    reason: str  # why not an answer, when it is not one

    @property
    def answer(self) -> bool:
        return self.outcome == "answered"


def decide(
    signals: dict[str, float],
    missing: list[str],
    model: AbstentionModel | None,
    abstain_below: float,
    unknown: list[str] | None = None,
    prior: float = 0.5,
) -> Decision:
    """The decision on a question's signals: the fitted model when there is one (answered at or
    above its threshold, unsure at or above its lower cut, abstained below), else the similarity
    threshold (answered or abstained).

    The names veto comes first (the model's `veto_missing` may turn it off): it refuses a
    question naming something the whole collection never mentions (`unknown`; without it,
    `missing` stands in). A name only the retrieved passages omit (`missing`) makes an answer
    "unsure": the collection mentions it elsewhere, so the passages shown may be beside the
    point. `prior` is the share of answerable questions among those asked (rag.config.
    DecisionCosts.answerable_prior): the model was fitted with both classes weighing half, so
    its odds are multiplied by prior / (1 - prior) before the cut points are applied."""
    confidence = model.probability(signals) if model is not None else None
    if confidence is not None and prior != 0.5:
        confidence = with_prior(confidence, prior)
    vetoed = missing if unknown is None else unknown
    if vetoed and (model is None or model.veto_missing):
        threshold = model.threshold if model is not None else abstain_below
        why = veto_reason(vetoed, collection=unknown is not None)
        return Decision("abstained", None, threshold, confidence, why)
    if model is not None:
        p = float(confidence or 0.0)
        if p >= model.threshold:
            if missing and model.veto_missing:
                return Decision("unsure", p, model.threshold, p, elsewhere_reason(missing))
            return Decision("answered", p, model.threshold, p, "")
        unsure = model.unsure_threshold is not None and p >= model.unsure_threshold
        why = model.explain(signals, p)
        return Decision("unsure" if unsure else "abstained", p, model.threshold, p, why)
    score = signals["sentence_cos"]
    if score < abstain_below:
        why = f"the closest evidence scores {score:.2f}, below {abstain_below}"
        return Decision("abstained", score, abstain_below, None, why)
    return Decision("answered", score, abstain_below, None, "")


def with_prior(p: float, prior: float) -> float:
    """A probability fitted at even odds, at odds of `prior` answerable questions instead."""
    p = min(max(p, 1e-9), 1 - 1e-9)
    odds = p / (1 - p) * prior / (1 - prior)
    return odds / (1 + odds)


def unknown_facts(store: Store, missing: list[str]) -> list[str]:
    """The names and numbers among `missing` that the whole collection never mentions: a word of
    one (each part of "sql-indexing") that lexical search finds nowhere."""
    return [f for f in missing if not all(store.search_lexical(w, 1) for w in re.findall(r"[^\W_]+", f))]


def elsewhere_reason(missing: list[str]) -> str:
    """Why an answer whose passages do not mention some of the question's names is unsure."""
    return f"the closest passages do not mention {', '.join(missing)}, though other articles do"


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
        **_relative_signals(question, qvec, hits, sources, qwords, sims),
        "sentence_cos": mean_of_best(sims, 1),
        "sentence_cos_top3": mean_of_best(sims, 3),
        "chunk_cos": float(dense[0][1]) if dense else -1.0,
        "lexical": min(1.0, lexical[0][1] / ceiling) if lexical and ceiling > 0 else 0.0,
        "agreement": float(bool(dense and lexical and dense[0][0].article_id == lexical[0][0].article_id)),
        "coverage": len(qwords & content_words(text)) / len(qwords) if qwords else 0.0,
        "missing": float(len(missing)),
        "reader": 0.0,  # the Answerer's reader fills it in when answer.reader is on
    }, missing


def _relative_signals(
    question: str,
    qvec: np.ndarray,
    hits: list[Hit],
    sources: list[Source],
    qwords: set[str],
    sims: list[float],
) -> dict[str, float]:
    """Signals that mean the same on any corpus: how far the best sentence stands out from the
    other retrieved sentences (a dense corpus lifts them all), and what the best passage itself
    holds of the question (its words, its names, the kind of value asked for)."""
    # Every retrieved sentence by similarity, best first (ties keep their retrieval order).
    ranked = sorted(
        ((float(sim), s, i) for s in sources for i, sim in enumerate((s.vectors @ qvec).tolist())),
        key=lambda x: -x[0],
    )
    if not ranked:
        return {
            "peak": 0.0,
            "local_coverage": 0.0,
            "best_missing": float(len(facts(question))),
            "kind_missing": 0.0,
        }
    _, src, i = ranked[0]
    local = " ".join(src.sentences[max(0, i - 1) : i + 2])
    kind = question_kind(question)
    kind_missing = 0.0
    if kind in FACTOID_KINDS:
        top = [s.sentences[j] for _, s, j in ranked[:3]]
        kind_missing = float(not any(fits_kind(kind, sent, qwords) for sent in top))
    return {
        "peak": sims[0] - float(np.mean(sims[3:10])) if len(sims) > 3 else 0.0,
        "local_coverage": len(qwords & content_words(local)) / len(qwords) if qwords else 0.0,
        "best_missing": float(len(missing_facts(question, hits[:1]))) if hits else 0.0,
        "kind_missing": kind_missing,
    }


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
