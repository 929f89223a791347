"""Answer or abstain: a small logistic model over retrieval signals, fitted and judged by
cross-validation over questions.

A question is described by a few signals `rag.answer.decision.signals` computes from what retrieval found
(see SIGNALS); the model is a logistic regression over their standardised values with an L2
penalty, fitted by Newton's method. The decision threshold on its probability is chosen to meet
both targets (answer most answerable questions, abstain on most unanswerable ones); figures are
reported out of fold, with the threshold chosen inside each training fold, because in-sample
figures of a rule designed on the same questions are optimistic.

The fitted parameters live in a JSON file (config/abstention.json) with the data, commit and
cross-validated figures they came from; `rag eval --answers --fit` writes it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import RagError

# What each signal measures (all computed at question time from the retrieved evidence).
SIGNALS = {
    "sentence_cos": "cosine similarity of the best retrieved sentence to the question",
    "sentence_cos_top3": "mean cosine similarity of the three best distinct retrieved sentences",
    "chunk_cos": "cosine similarity of the best chunk (dense search)",
    "lexical": "best BM25 score over the query's maximum possible (sum of each term's best)",
    "agreement": "1 when dense and lexical search rank the same article first",
    "coverage": "share of the question's content words found in the retrieved sources",
    "missing": "names and numbers of the question no retrieved source mentions",
    "peak": "best sentence similarity minus the mean of the 4th to 10th best (how far it stands out)",
    "local_coverage": "share of the question's content words in the best sentence and its neighbours",
    "best_missing": "names and numbers of the question the first retrieved chunk does not mention",
    "kind_missing": "1 when the question asks for a date, number, name or place and none of the "
    "three closest sentences holds one",
    "reader": "the reader model's probability that one of the top passages answers the question "
    "(0 when answer.reader is off)",
}
TARGET_ANSWER = 0.92
TARGET_ABSTAIN = 0.90
# How an abstention is explained: the signal whose standardised contribution pulled the
# probability down the most, in words.
_WHY = {
    "sentence_cos": "no retrieved sentence is close to the question (best similarity {v:.2f})",
    "sentence_cos_top3": "few retrieved sentences are close to the question (mean of the best three {v:.2f})",
    "chunk_cos": "no retrieved passage is close to the question (best similarity {v:.2f})",
    "lexical": "few of the question's words occur together in any passage ({v:.0%} of the best possible)",
    "agreement": "meaning and wording point at different articles",
    "coverage": "the sources cover only {v:.0%} of the question's words",
    "missing": "the sources do not mention some of the question's names or numbers",
    "peak": "no retrieved sentence stands out from the others (by {v:.2f})",
    "local_coverage": "the closest passage holds only {v:.0%} of the question's words",
    "best_missing": "the closest source does not mention some of the question's names or numbers",
    "kind_missing": "no close sentence holds the kind of value the question asks for",
    "reader": "the reader finds no answer in the top passages (best {v:.2f})",
}


@dataclass
class AbstentionModel:
    """Logistic regression over standardised signals, and the threshold on its probability."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float
    threshold: float
    veto_missing: bool = True  # abstain whenever a name or number of the question is missing
    # Below `threshold` and at or above this: unsure (the closest passages, not called an answer).
    unsure_threshold: float | None = None
    l2: float = 1.0
    provenance: dict[str, Any] = field(default_factory=dict)

    def probability(self, signals: dict[str, float]) -> float:
        z = self._standardise(signals)
        return _sigmoid(float(z @ np.asarray(self.weights) + self.bias))

    def _standardise(self, signals: dict[str, float]) -> np.ndarray:
        x = np.array([float(signals[f]) for f in self.features])
        return (x - np.asarray(self.mean)) / np.asarray(self.scale)

    def explain(self, signals: dict[str, float], p: float | None = None) -> str:
        """Why a question below the threshold is not answered: the signal whose standardised
        contribution pulled the probability down the most, in words (`p`: the confidence as
        decided, when a prior moved it)."""
        p = self.probability(signals) if p is None else p
        contrib = self._standardise(signals) * np.asarray(self.weights)
        worst = self.features[int(np.argmin(contrib))]
        why = _WHY.get(worst, worst).format(v=signals[worst])
        return f"{why}; confidence {p:.2f} is below {self.threshold:.2f}"

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> AbstentionModel:
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            model = cls(**d)
        except FileNotFoundError:
            raise RagError(
                f"{path}: abstention model not found; fit one with `rag eval --answers --fit`"
            ) from None
        except (ValueError, TypeError) as e:
            raise RagError(
                f"{path}: not an abstention model ({e}); refit with `rag eval --answers --fit`"
            ) from None
        unknown = [f for f in model.features if f not in SIGNALS]
        if unknown or not (len(model.features) == len(model.mean) == len(model.scale) == len(model.weights)):
            raise RagError(
                f"{path}: unknown or inconsistent features {unknown}; refit with `rag eval --answers --fit`"
            )
        return model


def _sigmoid(x: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1.0, weights: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Weights and bias minimising the class-balanced log loss + l2/2 * |w|^2 (bias unpenalised),
    by Newton's method. `x` should be standardised; `y` is 1 for answerable; `weights` weigh the
    questions within their class (each class still weighs half)."""
    n, d = x.shape
    w0 = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    pos = max(1e-12, float(w0[y == 1].sum()))
    neg = max(1e-12, float(w0[y == 0].sum()))
    sw = w0 * np.where(y == 1, n / (2 * pos), n / (2 * neg))  # each class weighs half
    a = np.hstack([x, np.ones((n, 1))])
    theta = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(50):
        p = _sigmoid(a @ theta)
        grad = a.T @ (sw * (p - y)) + reg * theta
        hess = (a * (sw * p * (1 - p))[:, None]).T @ a + np.diag(reg) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return theta[:-1], float(theta[-1])


def choose_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The probability threshold whose worse margin over the two targets (answer rate minus
    TARGET_ANSWER, abstention rate minus TARGET_ABSTAIN) is largest; among ties the middle one,
    so that it does not sit on one question's score."""
    vals = np.unique(p)
    cands = np.concatenate([[vals[0] - 1e-6], (vals[1:] + vals[:-1]) / 2, [vals[-1] + 1e-6]])
    pos, neg = p[y == 1], p[y == 0]

    def margin(t: float) -> float:
        ans = float((pos >= t).mean()) if pos.size else 1.0
        abst = float((neg < t).mean()) if neg.size else 1.0
        return min(ans - TARGET_ANSWER, abst - TARGET_ABSTAIN)

    scores = np.array([margin(float(t)) for t in cands])
    ties = cands[np.abs(scores - scores.max()) < 1e-12]
    return float(ties[len(ties) // 2])


def cost_cuts(
    p: np.ndarray, y: np.ndarray, costs: Any, weights: np.ndarray | None = None
) -> tuple[float, float, float]:
    """(answer cut, unsure cut, expected cost): answered at p >= the answer cut, unsure between
    the cuts, abstained below, choosing the pair with the least expected cost (rag.config.
    DecisionCosts), each class weighing half. `weights` weigh the questions within their class
    (so that corpora of different sizes can count alike)."""
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    wpos = np.where(y == 1, w, 0.0) / max(1e-12, float(w[y == 1].sum()))
    wneg = np.where(y == 0, w, 0.0) / max(1e-12, float(w[y == 0].sum()))
    vals = np.unique(p)
    cands = np.unique(np.quantile(vals, np.linspace(0, 1, 201)))
    cands = np.concatenate([[vals[0] - 1e-6], cands, [vals[-1] + 1e-6]])
    # Weight of each class below each candidate cut (p < t), then every pair (unsure cut <= answer
    # cut) at once: rows are answer cuts, columns unsure cuts.
    below_pos = np.array([wpos[p < t].sum() for t in cands])
    below_neg = np.array([wneg[p < t].sum() for t in cands])
    refused = below_pos[None, :]
    unsure_pos = below_pos[:, None] - below_pos[None, :]
    answered_neg = 1.0 - below_neg[:, None]
    unsure_neg = below_neg[:, None] - below_neg[None, :]
    cost = 0.5 * (costs.false_refusal * refused + costs.unsure_answerable * unsure_pos) + 0.5 * (
        costs.false_answer * answered_neg + costs.unsure_unanswerable * unsure_neg
    )
    cost = np.where(np.arange(len(cands))[None, :] <= np.arange(len(cands))[:, None], cost, np.inf)
    ia, iu = np.unravel_index(int(np.argmin(cost)), cost.shape)
    return float(cands[ia]), float(cands[iu]), float(cost[ia, iu])


def matrix(rows: Sequence[dict[str, float]]) -> np.ndarray:
    """Signals as a matrix, one row per question, one column per SIGNALS entry in order; the
    reader's signal counts as 0 in rows collected without it."""
    return np.array(
        [[float(r.get(f, 0.0) if f == "reader" else r[f]) for f in SIGNALS] for r in rows]
    ).reshape(len(rows), len(SIGNALS))


def _columns(x: np.ndarray, features: Sequence[str]) -> np.ndarray:
    names = list(SIGNALS)
    return x[:, [names.index(f) for f in features]]


def _vetoed(x: np.ndarray) -> np.ndarray:
    return x[:, list(SIGNALS).index("missing")] > 0


def fit(
    x: np.ndarray,
    y: np.ndarray,
    features: list[str],
    l2: float = 1.0,
    veto_missing: bool = True,
    weights: np.ndarray | None = None,
    costs: Any = None,
) -> AbstentionModel:
    """Standardise, fit, choose the threshold (`x` as `matrix` makes it). With the veto on,
    questions the names rule refuses anyway are left out of the fit: the model decides the rest.
    `weights` weigh the questions within their class. With `costs` (rag.config.DecisionCosts)
    both cut points (answered, unsure) are the least expected cost (`cost_cuts`); without, one
    threshold meets both targets as well as it can (`choose_threshold`)."""
    keep = ~_vetoed(x) if veto_missing else np.ones(len(y), dtype=bool)
    xs, ys = _columns(x, features)[keep], y[keep]
    mean = xs.mean(axis=0)
    scale = xs.std(axis=0)
    scale[scale < 1e-9] = 1.0
    w, b = fit_logistic((xs - mean) / scale, ys, l2, None if weights is None else weights[keep])
    p = _sigmoid(((xs - mean) / scale) @ w + b)
    # The threshold is judged on all questions: vetoed ones count as abstentions at any threshold.
    p_all = np.full(len(y), -1.0)
    p_all[keep] = p
    unsure: float | None = None
    if costs is None:
        t = choose_threshold(p_all, y)
    else:
        t, u, _ = cost_cuts(p_all, y, costs, weights)
        unsure = max(u, 0.0)
    return AbstentionModel(
        features=list(features),
        mean=mean.tolist(),
        scale=scale.tolist(),
        weights=w.tolist(),
        bias=b,
        threshold=max(t, 0.0),
        veto_missing=veto_missing,
        unsure_threshold=unsure,
        l2=l2,
    )


def predict(model: AbstentionModel, x: np.ndarray) -> np.ndarray:
    """Probabilities for rows of `x` (as `matrix` makes it); -1 where the veto refuses."""
    z = (_columns(x, model.features) - np.asarray(model.mean)) / np.asarray(model.scale)
    p = _sigmoid(z @ np.asarray(model.weights) + model.bias)
    return np.where(_vetoed(x), -1.0, p) if model.veto_missing else p


def cross_validate(
    x: np.ndarray,
    y: np.ndarray,
    groups: Sequence[str],
    features: list[str],
    l2: float = 1.0,
    veto_missing: bool = True,
    folds: int = 5,
    repeats: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Out-of-fold decisions, over `repeats` shuffles of grouped, class-stratified folds.

    Each training fold fits the model and chooses its own threshold; each question's held-out
    decision and probability are averaged over the repeats. Returns the per-question answer
    frequency and probability and the mean rates (with their spread over the repeats)."""
    rng = np.random.default_rng(seed)
    uniq = sorted(set(groups))
    gidx = {g: i for i, g in enumerate(uniq)}
    g = np.array([gidx[v] for v in groups])
    # A group is answerable when its first question is: stratify folds on that.
    glabel = np.zeros(len(uniq))
    for i in range(len(y) - 1, -1, -1):
        glabel[g[i]] = y[i]
    answered = np.zeros(len(y))
    prob = np.zeros(len(y))
    rates = []
    for _ in range(repeats):
        fold_of = np.zeros(len(uniq), dtype=int)
        for label in (0, 1):
            members = np.flatnonzero(glabel == label)
            rng.shuffle(members)
            fold_of[members] = np.arange(len(members)) % folds
        dec = np.zeros(len(y), dtype=bool)
        for f in range(folds):
            test = fold_of[g] == f
            model = fit(x[~test], y[~test], features, l2, veto_missing)
            p = predict(model, x[test])
            dec[test] = p >= model.threshold
            prob[test] += np.maximum(p, 0.0) / repeats
        answered += dec / repeats
        rates.append((dec[y == 1].mean(), (~dec[y == 0]).mean()))
    r = np.array(rates)
    return {
        "folds": folds,
        "repeats": repeats,
        "seed": seed,
        "answer_rate": float(r[:, 0].mean()),
        "abstain_rate": float(r[:, 1].mean()),
        "answer_rate_sd": float(r[:, 0].std()),
        "abstain_rate_sd": float(r[:, 1].std()),
        "answered": answered,
        "probability": prob,
    }


def precision_coverage(
    scores: Sequence[float], good: Sequence[bool], steps: Sequence[float] | None = None
) -> list[dict[str, float]]:
    """For thresholds t: coverage = share of questions with score >= t (answered), precision =
    share of those that are `good` (answerable and answered with support)."""
    s = np.asarray(scores, dtype=float)
    gd = np.asarray(good, dtype=bool)
    out = []
    for t in steps if steps is not None else np.round(np.arange(0.0, 1.0, 0.1), 2):
        sel = s >= t
        cov = float(sel.mean()) if s.size else 0.0
        prec = float(gd[sel].mean()) if sel.any() else math.nan
        out.append({"threshold": float(t), "coverage": cov, "precision": prec})
    return out
