"""The figures an answer line is judged by, shared by train.py (each checkpoint) and evaluate.py.

For each example: the model's raw text, and its probability of starting the refusal line.
- `contained_answered`: of the answerable questions it answered, the share whose line holds a gold
  answer (SQuAD normalisation, whole words);
- `contained_all`: the same over all answerable questions (a decline counts as a miss);
- `kept_answered`: of the answered questions (both kinds), the share whose line passes
  `rag.answer.line.check` (cites a shown source, every word stands in it);
- `decline_answerable`, `decline_impossible`: the refusal rate on each kind;
- `median_words`: words of the answered lines (the citation not counted);
- `auc_decline`: ROC AUC of p(refusal) as a score for "impossible" against "answerable".
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from rag.answer.line import check  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import contains_gold  # noqa: E402


def roc_auc(pos: list[float], neg: list[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if not pos or not neg:
        return float("nan")
    p = np.asarray(pos, float)[:, None]
    n = np.asarray(neg, float)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


def figures(examples, raws: list[str], p_declines: list[float]) -> dict[str, float]:
    ans_total = ans_answered = ans_contained = 0
    imp_total = imp_declined = ans_declined = 0
    answered = kept = 0
    words: list[int] = []
    pos, neg = [], []
    for ex, raw, p in zip(examples, raws, p_declines, strict=True):
        line = check(raw, ex.evidence, ex.question)
        impossible = not ex.answers
        (pos if impossible else neg).append(p)
        if impossible:
            imp_total += 1
            imp_declined += line.declined
        else:
            ans_total += 1
            ans_declined += line.declined
        if line.declined:
            continue
        answered += 1
        kept += line.kept
        words.append(len(line.text.split()))
        if not impossible:
            ans_answered += 1
            ans_contained += contains_gold(line.text, ex.answers)
    return {
        "answerable": ans_total,
        "impossible": imp_total,
        "contained_answered": round(ans_contained / max(ans_answered, 1), 3),
        "contained_all": round(ans_contained / max(ans_total, 1), 3),
        "kept_answered": round(kept / max(answered, 1), 3),
        "decline_answerable": round(ans_declined / max(ans_total, 1), 3),
        "decline_impossible": round(imp_declined / max(imp_total, 1), 3),
        "median_words": float(statistics.median(words)) if words else 0.0,
        "auc_decline": round(roc_auc(pos, neg), 3),
    }
