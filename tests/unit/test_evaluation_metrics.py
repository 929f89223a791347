import math

import pytest

from rag.evaluation.metrics import mean, trec_metrics


def test_metrics_match_hand_computation_with_grades_ties_and_a_missing_query():
    qrels = {"q1": {"d1": 2, "d2": 1, "d3": 0}, "q2": {"d4": 1}, "q3": {"d5": 1}}
    # q1: d1 and d2 tie; trec_eval breaks ties by document id, descending: d3, d2, d1.
    run = {"q1": {"d3": 3.0, "d1": 2.0, "d2": 2.0}, "q2": {"d4": 1.0, "x": 0.5}}
    per = trec_metrics(qrels, run)
    dcg = 0 + 1 / math.log2(3) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert per["q1"]["ndcg@10"] == pytest.approx(dcg / idcg, abs=1e-4)
    assert per["q1"]["mrr@10"] == pytest.approx(0.5)
    assert per["q1"]["recall@5"] == pytest.approx(1.0)
    assert per["q1"]["map@10"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert per["q2"]["ndcg@10"] == pytest.approx(1.0)
    assert per["q3"]["ndcg@10"] == 0.0 and per["q3"]["mrr@10"] == 0.0
    assert mean(per)["ndcg@10"] == pytest.approx((dcg / idcg + 1.0) / 3, abs=1e-4)
