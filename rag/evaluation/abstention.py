"""The abstention score's precision/coverage curve.

The score of a question is the one `rag ask` decides on (rag.answer.decision): the answerer
answers when score >= threshold. Coverage at a threshold is the share of all questions answered;
precision is the share of answered questions that are answerable (have a relevant article). A
score of None means the question abstains whatever the threshold (today: it names something no
retrieved source mentions and the names veto is on).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ScorePairs = dict[str, tuple[float | None, bool]]  # question id -> (score or None, answerable)


def answerer_scores(answerer: Any, questions: Sequence[Any]) -> ScorePairs:
    """The score the answerer decides on, from the decision `ask` makes: the fitted abstention
    model's confidence (or, without one, the best sentence's similarity), or None when the names
    veto decided. Follow-ups are asked as `rag chat` asks them."""
    from rag.evaluation.questions import asked_text

    by_id = {q.id: q for q in questions}
    out: ScorePairs = {}
    for q in questions:
        verdict = answerer.decide(*answerer.question_signals(asked_text(q, by_id)))
        out[q.id] = (verdict.score, bool(q.relevant))
    return out


def describe(answerer: Any, similarity_threshold: float) -> tuple[float, str]:
    """The threshold the answerer uses on that score, and what the score is."""
    if answerer.abstention is not None:
        return (
            answerer.abstention.threshold,
            "the fitted abstention model's confidence (config/abstention.json)",
        )
    return similarity_threshold, "cosine similarity of the best retrieved sentence (answer.abstain_below)"


def point(pairs: ScorePairs, threshold: float) -> dict[str, float]:
    """Coverage, precision, answer rate (answerable answered) and abstention rate (unanswerable
    not answered) at one threshold."""
    answered = [ok for s, ok in pairs.values() if s is not None and s >= threshold]
    n_ok = sum(ok for _, ok in pairs.values())
    n_not = len(pairs) - n_ok
    return {
        "threshold": threshold,
        "coverage": len(answered) / len(pairs) if pairs else 0.0,
        "precision": sum(answered) / len(answered) if answered else 1.0,
        "answer_rate": sum(answered) / n_ok if n_ok else 0.0,
        "abstain_rate": (n_not - (len(answered) - sum(answered))) / n_not if n_not else 1.0,
    }


def curve(pairs: ScorePairs) -> list[dict[str, float]]:
    """The curve's points, one per distinct score used as the threshold, from the highest
    (fewest answers) to the lowest; precision of an empty answer set is taken as 1."""
    scores = sorted({s for s, _ in pairs.values() if s is not None}, reverse=True)
    return [point(pairs, t) for t in scores]
