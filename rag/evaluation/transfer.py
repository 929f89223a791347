"""The answer decision fitted on some corpora and checked, unrefitted, on the others.

A decision that holds only where it was fitted is not done: what a similarity of 0.45 means
depends on the corpus. The signals of every question of each corpus are collected once (by
asking it as `rag ask` does, rag.evaluation.answerability), then each candidate model is fitted
on the fitting corpora (each corpus weighing alike within a class), its cut points chosen by the
stated costs (rag.config.DecisionCosts), and judged on every corpus: the fitting ones out of fold
(folds by question group), the others as they come.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rag import abstain
from rag.answer.types import OUTCOMES
from rag.evaluation.answerability import auc, signal_auc
from rag.evaluation.tables import markdown_table

# Candidate decisions (name: features, l2). All keep the names veto.
CANDIDATES: dict[str, tuple[list[str], float]] = {
    "top-3 similarity": (["sentence_cos_top3"], 1.0),
    "top-3 similarity + peak": (["sentence_cos_top3", "peak"], 1.0),
    "top-3 + peak + local coverage": (["sentence_cos_top3", "peak", "local_coverage"], 1.0),
    "top-3 + peak + local coverage + kind/names of the best": (
        ["sentence_cos_top3", "peak", "local_coverage", "kind_missing", "best_missing"],
        1.0,
    ),
    "all signals": (list(abstain.SIGNALS), 3.0),
}


# With the reader on (answer.reader), its score beside or instead of the similarity.
READER_CANDIDATES: dict[str, tuple[list[str], float]] = {
    "reader": (["reader"], 1.0),
    "top-3 similarity + reader": (["sentence_cos_top3", "reader"], 1.0),
    "top-3 similarity + chunk similarity + reader": (["sentence_cos_top3", "chunk_cos", "reader"], 1.0),
}


def arrays(rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Signals matrix, labels (1 answerable) and groups of a corpus's rows."""
    x = abstain.matrix([r["signals"] for r in rows])
    y = np.array([1.0 if r["answerable"] else 0.0 for r in rows])
    return x, y, [str(r.get("group") or r["id"]) for r in rows]


def fit_on(
    parts: Sequence[tuple[np.ndarray, np.ndarray]], features: list[str], l2: float, costs: Any
) -> abstain.AbstentionModel:
    """One model fitted on several corpora, each weighing alike within a class; its cut points
    by the costs. Questions the names veto refuses are left out of the fit."""
    x = np.vstack([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    w = np.concatenate([_corpus_weights(p[1]) for p in parts])
    return abstain.fit(x, y, features, l2, veto_missing=True, weights=w, costs=costs)


def _corpus_weights(y: np.ndarray) -> np.ndarray:
    """Within each class, a corpus's questions share one unit of weight."""
    pos, neg = max(1, int(y.sum())), max(1, int(len(y) - y.sum()))
    return np.where(y == 1, 1.0 / pos, 1.0 / neg) * len(y) / 2


def outcomes(model: abstain.AbstentionModel, x: np.ndarray) -> list[str]:
    p = abstain.predict(model, x)
    tu = model.unsure_threshold if model.unsure_threshold is not None else model.threshold
    return ["answered" if v >= model.threshold else "unsure" if v >= tu else "abstained" for v in p]


def rates(outs: Sequence[str], y: np.ndarray) -> dict[str, float]:
    """Each outcome's share among answerable and among unanswerable questions, and unsure of all."""
    out: dict[str, float] = {}
    for label, want in (("answerable", 1.0), ("unanswerable", 0.0)):
        part = [o for o, v in zip(outs, y, strict=True) if v == want]
        for o in OUTCOMES:
            out[f"{label}_{o}"] = sum(x == o for x in part) / len(part) if part else float("nan")
    out["unsure"] = sum(o == "unsure" for o in outs) / len(outs) if outs else float("nan")
    return out


def cross_fitted(
    corpora: dict[str, list[dict[str, Any]]],
    fit: Sequence[str],
    features: list[str],
    l2: float,
    costs: Any,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per corpus: outcome shares and the AUC of the model's probability. A fitting corpus is
    judged out of fold (each fold's model fitted on the other folds and the other fitting
    corpora); every other corpus by the model fitted on all the fitting corpora."""
    data = {name: arrays(rows) for name, rows in corpora.items()}
    full = fit_on([data[n][:2] for n in fit], features, l2, costs)
    out: dict[str, dict[str, Any]] = {}
    for name, (x, y, _) in data.items():
        if name in fit:
            outs, probs = _out_of_fold(data, name, fit, features, l2, costs, folds, seed)
        else:
            outs, probs = outcomes(full, x), abstain.predict(full, x)
        out[name] = {**rates(outs, y), "auc": auc(list(probs), [bool(v) for v in y]), "n": len(y)}
        out[name]["_rows"] = [
            {**r, "outcome": o, "confidence": float(p)}
            for r, o, p in zip(corpora[name], outs, probs.tolist(), strict=True)
        ]
    out["_model"] = {"model": full}
    return out


def _out_of_fold(
    data: dict[str, tuple[np.ndarray, np.ndarray, list[str]]],
    name: str,
    fit: Sequence[str],
    features: list[str],
    l2: float,
    costs: Any,
    folds: int,
    seed: int,
) -> tuple[list[str], np.ndarray]:
    x, y, groups = data[name]
    uniq = sorted(set(groups))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    fold_of = {uniq[i]: k % folds for k, i in enumerate(order)}
    outs: list[str] = [""] * len(y)
    probs = np.zeros(len(y))
    for f in range(folds):
        test = np.array([fold_of[g] == f for g in groups])
        if not test.any():
            continue
        others = [data[n][:2] for n in fit if n != name]
        model = fit_on([(x[~test], y[~test]), *others], features, l2, costs)
        for i, o in zip(np.flatnonzero(test), outcomes(model, x[test]), strict=True):
            outs[i] = o
        probs[test] = abstain.predict(model, x[test])
    return outs, probs


def signal_aucs(corpora: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float | None]]:
    """ROC AUC of each signal alone on each corpus (higher when answerable questions score
    higher; signals that count what is missing are negated)."""
    return {name: {sig: signal_auc(rows, sig) for sig in abstain.SIGNALS} for name, rows in corpora.items()}


def transfer_table(results: dict[str, dict[str, dict[str, Any]]], corpora: Sequence[str]) -> str:
    """Markdown: one row per candidate and corpus."""
    rows = []
    for cand, per in results.items():
        for c in corpora:
            r = per[c]
            rows.append(
                [
                    cand,
                    c,
                    *(_f(r[f"answerable_{o}"]) for o in OUTCOMES),
                    *(_f(r[f"unanswerable_{o}"]) for o in OUTCOMES),
                    _f(r["unsure"]),
                    _f(r["auc"]),
                ]
            )
    head = ["decision", "corpus", "ans: answered", "ans: unsure", "ans: refused"]
    head += ["unans: answered", "unans: unsure", "unans: abstained", "unsure (all)", "AUC"]
    return markdown_table(head, rows, "ll" + "r" * 8)


def aucs_table(aucs: dict[str, dict[str, float | None]]) -> str:
    names = list(aucs)
    rows = [[sig, *(_f(aucs[c][sig]) for c in names)] for sig in abstain.SIGNALS]
    return markdown_table(["signal", *names], rows, "l" + "r" * len(names))


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"
