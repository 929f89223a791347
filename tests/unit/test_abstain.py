"""The abstention model (rag.abstain) and the extractive passage rules, on hand-made data whose
right answer is known exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag import abstain
from rag.answer import _Source, flips, passage, question_kind
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
    ok, p, why = model.decide(sig, ["fifa"])
    assert not ok and "fifa" in why and 0 <= p <= 1


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
    sig["sentence_cos_top3"] = 0.1
    ok, p, why = model.decide(sig)
    assert not ok and "no retrieved sentence is close" in why and f"{p:.2f}" in why


def test_precision_coverage_curve():
    curve = abstain.precision_coverage([0.9, 0.8, 0.3, 0.1], [True, True, False, False], steps=[0.0, 0.5])
    assert curve[0] == {"threshold": 0.0, "coverage": 1.0, "precision": 0.5}
    assert curve[1] == {"threshold": 0.5, "coverage": 0.5, "precision": 1.0}


SENTS = [
    "## Gaming the numbers",
    "Researchers sometimes test many hypotheses until one passes the threshold.",
    "In fact, this sort of thing happens often enough to have a name, p-hacking.",
    "The four key flaws of significance:",
    "* It is arbitrary.",
    "* It is easy to game.",
    "Summary in the end.",
    "Here is a lead-in with nothing after it:",
]


def test_a_sentence_opening_with_a_reference_brings_the_one_before():
    assert passage(SENTS, 2) == [1, 2]
    assert passage(SENTS, 1) == [1]


def test_list_items_bring_their_lead_in_and_a_lead_in_brings_its_items():
    assert passage(SENTS, 4) == [3, 4]
    assert passage(SENTS, 3) == [3, 4, 5]
    assert passage(SENTS, 7) is None  # a lead-in without its list is not used


def test_question_kinds():
    assert question_kind("What is p-hacking?") == "define"
    assert question_kind("what does nDCG stand for") == "define"
    assert question_kind("How many articles did he read?") == "count"
    assert question_kind("What threshold did CERN pass?") == "count"
    assert question_kind("When was the study retracted?") == "when"
    assert question_kind("Why is it a scam?") == ""


def test_a_sentence_that_turns_its_source_around_is_caught():
    src = _Source(
        1,
        None,  # type: ignore[arg-type]
        [
            "The analyst should have reported a confidence of 94% to the client.",
            "Statistical significance is not a measure of importance.",
        ],
        np.zeros((2, 3)),
    )
    assert not flips("The analyst should have reported a confidence of 94%.", src)
    assert flips("The analyst wrongly reported a confidence of 94%.", src)
    assert flips("Statistical significance is a measure of importance.", src)
    assert flips("Researchers should have reported a confidence of 94% to the client.", src)  # subject
    assert flips("Instead, the analyst reported a confidence of 94% to the client.", src)


def _filler(fill_words: int, max_words: int = 80):
    from rag.answer import Answerer
    from rag.config import AnswerSettings

    a = Answerer.__new__(Answerer)
    a.settings = AnswerSettings(fill_words=fill_words, max_answer_words=max_words)
    return a


def test_a_short_answer_continues_with_the_sentences_after_it():
    sents = [
        "P-hacking is testing hypotheses until one passes.",  # 7 words
        "It makes chance results look like findings.",  # 7
        "Journals then publish them as discoveries.",  # 6
        "Why does this happen?",  # a question ends the passage
        "Careers depend on it.",
    ]
    src = _Source(1, None, sents, np.zeros((5, 3)))  # type: ignore[arg-type]
    passages = [(1, [0])]
    _filler(15)._fill(passages, {1: src}, {"p-hacking is testing hypotheses until one passes."}, 7)
    assert passages == [(1, [0, 1, 2])]  # 7 + 7 < 15, then 20 >= 15 stops
    passages = [(1, [0])]
    _filler(60)._fill(passages, {1: src}, set(), 7)
    assert passages == [(1, [0, 1, 2])]  # never into the question
    passages = [(1, [0])]
    _filler(60, max_words=16)._fill(passages, {1: src}, set(), 7)
    assert passages == [(1, [0, 1])]  # the word cap holds
    passages = [(1, [0])]
    _filler(0)._fill(passages, {1: src}, set(), 7)
    assert passages == [(1, [0])]


def test_filling_stops_at_a_lead_in_and_at_a_sentence_already_used():
    src = _Source(1, None, SENTS, np.zeros((len(SENTS), 3)))  # type: ignore[arg-type]
    passages = [(1, [1, 2])]
    _filler(60)._fill(passages, {1: src}, set(), 20)
    assert passages == [(1, [1, 2])]  # "The four key flaws of significance:" needs its list
    other = ["First point here, said plainly.", "Second point, already quoted elsewhere."]
    src2 = _Source(2, None, other, np.zeros((2, 3)))  # type: ignore[arg-type]
    passages = [(2, [0])]
    _filler(60)._fill(passages, {2: src2}, {"second point, already quoted elsewhere."}, 5)
    assert passages == [(2, [0])]


def test_top3_similarity_counts_each_distinct_sentence_once():
    from rag.answer import _best_sentence_sims, _mean_of_best

    q = np.array([1.0, 0.0])
    vec = np.array([[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]])
    a = _Source(1, None, ["Same sentence.", "Middle one.", "Far one."], vec)  # type: ignore[arg-type]
    b = _Source(2, None, ["same  sentence.", "Other."], np.array([[0.9, 0.1], [0.7, 0.3]]))  # type: ignore[arg-type]
    assert _mean_of_best(_best_sentence_sims(q, [a, b]), 3) == pytest.approx((0.9 + 0.7 + 0.5) / 3)
    assert _mean_of_best(_best_sentence_sims(q, []), 3) == -1.0
    assert _mean_of_best(_best_sentence_sims(q, [a, b]), 1) == pytest.approx(0.9)  # the best alone
