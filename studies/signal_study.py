"""What the abstention-signal studies (ql_abstention, idf_abstention, judge_abstention)
share: the shipped index's answerer and the questions the abstention study fits on, then each
new signal's ROC AUC beside the shipped ones and the cross-validated rates of models that add
it, as markdown tables, with the same cross-validation as `rag eval --answers`' abstention study."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rag import abstain
from rag.assembly import open_answerer
from rag.config import PROJECT_ROOT, Settings, load_settings
from rag.evaluation.questions import Question, load_questions

if TYPE_CHECKING:
    from rag.answer import Answerer


def study_setup() -> tuple[Settings, Answerer, list[Question], np.ndarray]:
    """The default settings, an answerer over the shipped index, the development questions the
    abstention study fits on (follow-ups left out, as `rag eval --answers` leaves them out), and
    their labels (1 answerable, 0 not)."""
    s = load_settings(environ={})
    answerer = open_answerer(s)
    qs = [q for q in load_questions(PROJECT_ROOT / "eval" / "questions.jsonl") if q.type != "followup"]
    y = np.array([1.0 if q.relevant else 0.0 for q in qs])
    return s, answerer, qs, y


def auc(v: np.ndarray, y: np.ndarray) -> float:
    """Probability that an answerable question scores above an unanswerable one (ties half)."""
    pos, neg = v[y == 1], v[y == 0]
    return float(((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean())


def signal_tables(
    rows: Sequence[dict[str, float]],
    y: np.ndarray,
    groups: Sequence[str],
    new: dict[str, str],
    compared: Sequence[str],
    models: dict[str, list[str]],
) -> list[str]:
    """The AUC of each signal in `compared` (over all questions, and over those the names veto
    lets through), then each model's cross-validated rates (names veto on, l2 = 1). `new` names
    and describes the signals the rows add to rag.abstain.SIGNALS."""
    abstain.SIGNALS.update(new)  # the study's functions read their columns from this table
    x = abstain.matrix(list(rows))
    column = list(abstain.SIGNALS).index
    kept = x[:, column("missing")] == 0
    lines = [
        "| signal | ROC AUC, all questions | ROC AUC, those the names veto lets through |",
        "|---|---:|---:|",
    ]
    for name in compared:
        v = x[:, column(name)]
        lines.append(f"| {name} | {auc(v, y):.3f} | {auc(v[kept], y[kept]):.3f} |")
    lines += ["", "| model (names veto on, l2 = 1) | cv answer rate | cv abstention rate |"]
    lines += ["|---|---:|---:|"]
    for name, features in models.items():
        cv: dict[str, Any] = abstain.cross_validate(x, y, groups, features)
        lines.append(f"| {name} | {cv['answer_rate']:.3f} | {cv['abstain_rate']:.3f} |")
    return lines
