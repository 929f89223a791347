"""The abstention model (rag.abstain) and the answer decision (rag.answer.decision), on hand-made
data whose right answer is known exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag import abstain
from rag.answer.decision import Decision, decide
from rag.errors import RagError


def _data(n: int = 60, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Answerable questions score high on sentence_cos and coverage; unanswerable ones low."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3 != 0).astype(float)
    rows = []
    for label in y:
        rows.append(
            {
                "sentence_cos": 0.3 + 0.3 * label + rng.normal(0, 0.05),
                "sentence_cos_top3": 0.25 + 0.3 * label + rng.normal(0, 0.05),
                "chunk_cos": 0.4 + rng.normal(0, 0.1),
                "lexical": 0.5 + rng.normal(0, 0.1),
                "agreement": float(rng.random() < 0.5),
                "coverage": 0.5 + 0.4 * label + rng.normal(0, 0.05),
                "missing": 0.0,
                "peak": 0.1 + rng.normal(0, 0.05),
                "local_coverage": 0.5 + rng.normal(0, 0.1),
                "best_missing": 0.0,
                "kind_missing": 0.0,
            }
        )
    return abstain.matrix(rows), y


def test_logistic_fit_separates_and_weighs_the_informative_signals():
    x, y = _data()
    feats = ["sentence_cos", "chunk_cos", "lexical", "agreement", "coverage"]
    model = abstain.fit(x, y, feats, l2=1.0)
    w = dict(zip(feats, model.weights, strict=True))
    assert w["sentence_cos"] > 1 and w["coverage"] > 1
    assert abs(w["chunk_cos"]) < 0.5 * w["sentence_cos"]
    p = abstain.predict(model, x)
    assert ((p >= model.threshold) == (y == 1)).all()


def test_stronger_penalty_shrinks_weights():
    x, y = _data()
    weak = abstain.fit(x, y, ["sentence_cos", "coverage"], l2=0.1)
    strong = abstain.fit(x, y, ["sentence_cos", "coverage"], l2=100.0)
    assert np.abs(strong.weights).sum() < np.abs(weak.weights).sum()


def test_threshold_meets_both_targets_when_it_can():
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 0.9, 0.95])
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    t = abstain.choose_threshold(p, y)
    assert 0.3 < t < 0.6


def test_names_veto_abstains_whatever_the_probability():
    x, y = _data()
    x[0, list(abstain.SIGNALS).index("missing")] = 1
    model = abstain.fit(x, y, ["sentence_cos", "coverage"])
    assert abstain.predict(model, x)[0] == -1
    sig = dict(zip(abstain.SIGNALS, x[0], strict=True))
    d = decide(sig, ["fifa"], model, abstain_below=0.35)
    assert not d.answer and d.score is None and "fifa" in d.reason and 0 <= (d.confidence or 0) <= 1
    model.veto_missing = False  # the model alone decides then
    assert decide(sig, ["fifa"], model, abstain_below=0.35).score == pytest.approx(model.probability(sig))


def test_cross_validation_keeps_groups_together_and_reports_out_of_fold_rates():
    x, y = _data(n=30)
    # Each question has an exact duplicate in the same group: a leak would make CV perfect
    # even for a useless signal; with groups kept together it cannot see its twin.
    x2, y2 = np.vstack([x, x]), np.concatenate([y, y])
    groups = [f"g{i}" for i in range(30)] * 2
    cv = abstain.cross_validate(x2, y2, groups, ["agreement"], folds=5, repeats=3)
    assert cv["answer_rate"] + cv["abstain_rate"] < 1.9
    good = abstain.cross_validate(x2, y2, groups, ["sentence_cos", "coverage"], folds=5, repeats=3)
    assert good["answer_rate"] > 0.9 and good["abstain_rate"] > 0.9
    assert good["answered"].shape == (60,)


def test_model_round_trips_and_a_bad_file_is_one_line(tmp_path):
    x, y = _data()
    model = abstain.fit(x, y, ["sentence_cos", "coverage"])
    path = tmp_path / "abstention.json"
    model.save(path)
    back = abstain.AbstentionModel.load(path)
    sig = dict(zip(abstain.SIGNALS, x[3], strict=True))
    assert back.probability(sig) == pytest.approx(model.probability(sig))
    path.write_text(json.dumps({"features": ["shoe_size"]}))
    with pytest.raises(RagError, match="abstention.json: not an abstention model"):
        abstain.AbstentionModel.load(path)
    with pytest.raises(RagError, match="not found"):
        abstain.AbstentionModel.load(tmp_path / "none.json")


def test_abstention_reason_names_the_weakest_signal():
    x, y = _data()
    model = abstain.fit(x, y, ["sentence_cos", "coverage"])
    sig = {"sentence_cos": 0.1, "coverage": 0.9, "chunk_cos": 0, "lexical": 0, "agreement": 0, "missing": 0}
    sig |= {"sentence_cos_top3": 0.1, "peak": 0, "local_coverage": 0, "best_missing": 0, "kind_missing": 0}
    d = decide(sig, [], model, abstain_below=0.35)
    assert not d.answer and "no retrieved sentence is close" in d.reason and f"{d.confidence:.2f}" in d.reason


def test_without_a_fitted_model_the_best_sentence_similarity_decides():
    sig = {"sentence_cos": 0.3}
    assert decide(sig, [], None, abstain_below=0.35) == Decision(
        "abstained", 0.3, 0.35, None, "the closest evidence scores 0.30, below 0.35"
    )
    assert decide({"sentence_cos": 0.4}, [], None, abstain_below=0.35).answer
    assert decide({"sentence_cos": 0.9}, ["fifa"], None, abstain_below=0.35).reason == (
        "no retrieved source mentions fifa"
    )


def test_precision_coverage_curve():
    curve = abstain.precision_coverage([0.9, 0.8, 0.3, 0.1], [True, True, False, False], steps=[0.0, 0.5])
    assert curve[0] == {"threshold": 0.0, "coverage": 1.0, "precision": 0.5}
    assert curve[1] == {"threshold": 0.5, "coverage": 0.5, "precision": 1.0}
