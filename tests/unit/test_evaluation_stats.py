import math

import numpy as np
import pytest

from rag.evaluation import compare, stats
from tests.eval_fixtures import fake_record


def test_randomization_test_enumerates_every_sign_vector_for_small_samples():
    # d = (0.1, 0.2, 0.3, 0): the 16 sign vectors give |sum| in {0.6, 0.4, 0.2, 0, 0, 0.2, 0.4, 0.6},
    # each twice (the zero's sign does not matter); |sum| >= 0.6 in 4 of 16.
    assert stats.randomization_test([0.5, 0.7, 0.9, 0.3], [0.4, 0.5, 0.6, 0.3]) == pytest.approx(0.25)
    # all differences of one sign and equal size: only the two extreme vectors of 2**5 qualify
    assert stats.randomization_test([1.0] * 5, [0.0] * 5) == pytest.approx(2 / 32)
    assert stats.randomization_test([0.3, 0.4], [0.3, 0.4]) == 1.0


def test_sampled_randomization_test_is_reproducible_and_close_to_the_exact_value():
    rng = np.random.default_rng(7)
    a, b = rng.random(12), rng.random(12)
    exact = stats.randomization_test(a, b)  # 2**12 = 4096 <= 10,000: enumerated
    sampled = stats.randomization_test(a, b, n_permutations=2000)
    assert sampled == stats.randomization_test(a, b, n_permutations=2000)
    assert sampled == pytest.approx(exact, abs=0.03)
    assert stats.randomization_test(a, b, n_permutations=2000, seed=1) != sampled


def test_t_distribution_matches_closed_forms_for_one_two_and_three_degrees_of_freedom():
    for t in (0.3, 1.5, 3.0, 12.0):
        assert stats.student_t_two_sided(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-10)
        assert stats.student_t_two_sided(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10)
        u = t / math.sqrt(3)
        three = 1 - 2 / math.pi * (u / (1 + u * u) + math.atan(u))
        assert stats.student_t_two_sided(t, 3) == pytest.approx(three, rel=1e-9)


def test_paired_t_test_on_a_hand_computed_example():
    # d = (1, 2, 3, 4) - 0: mean 2.5, sd sqrt(5/3), t = 2.5 / (sd / 2) = 3.8730, df 3
    t, p = stats.paired_t_test([1, 2, 3, 4], [0, 0, 0, 0])
    assert t == pytest.approx(2.5 / (math.sqrt(5 / 3) / 2))
    u = t / math.sqrt(3)
    assert p == pytest.approx(1 - 2 / math.pi * (u / (1 + u * u) + math.atan(u)), rel=1e-9)
    assert p == pytest.approx(0.030466, abs=1e-6)
    assert stats.paired_t_test([1, 2], [1, 2]) == (0.0, 1.0)
    assert stats.paired_t_test([2, 3], [1, 2]) == (math.inf, 0.0)


def test_paired_t_test_agrees_with_scipy():
    scipy_stats = pytest.importorskip("scipy.stats", reason="scipy is not installed; closed forms cover it")
    rng = np.random.default_rng(3)
    for n in (5, 30, 300):
        a, b = rng.random(n), rng.random(n) * 0.9
        t, p = stats.paired_t_test(a, b)
        ref = scipy_stats.ttest_rel(a, b)
        assert t == pytest.approx(ref.statistic, rel=1e-10)
        assert p == pytest.approx(ref.pvalue, rel=1e-8)


def test_holm_bonferroni_on_a_worked_example():
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> kept at 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert stats.holm([0.04]) == [0.04]
    assert stats.holm([]) == []


def test_effect_size_is_cohens_dz():
    assert stats.effect_size([1, 2, 3, 4], [0, 0, 0, 0]) == pytest.approx(2.5 / math.sqrt(5 / 3))
    assert stats.effect_size([1, 1], [0, 0]) is None


def test_unknown_test_name_is_refused():
    with pytest.raises(ValueError, match="randomization, ttest"):
        stats.paired_p([1.0], [0.0], "wilcoxon")


def test_retriever_comparison_marks_only_holm_significant_pairs():
    record = fake_record()
    cmp = compare.retriever_comparison(record, "randomization")
    c = cmp["levels"]["evidence"]["ndcg@10"]
    # 5 questions: the exact test's smallest p is 2/32 > 0.05, so nothing can be significant
    assert all(not v for v in c["beats"].values())
    (pair,) = c["pairs"]
    assert (pair["a"], pair["b"], pair["n"]) == ("dense", "bm25", 5)
    assert pair["delta"] == pytest.approx(c["mean"]["dense"] - c["mean"]["bm25"])
    assert pair["p_holm"] == pair["p"]  # one pair: nothing to correct
    table = compare.retriever_table(cmp)
    assert "| evidence | ndcg@10 | 0.626 | 0.878 |" in table


def _run(name, scores):
    per_query = {"evidence": {f"q{i}": {"ndcg@10": s} for i, s in enumerate(scores)}}
    return {
        "name": name,
        "kind": "dev",
        "levels": ["evidence"],
        "metrics": ["ndcg@10"],
        "dataset": {"hash": "h"},
        "corpus_hash": "c",
        "retrievers": {"hybrid": {"per_query": per_query}},
    }


def test_check_fails_only_on_a_significant_drop_beyond_the_tolerance():
    base = _run("base", [0.8] * 40)
    everywhere = _run("cur", [0.7] * 40)  # 0.1 lower on every question: p = 1 / 10,001
    (msg,) = compare.significant_drops(everywhere, base, 0.02, "ndcg@10")
    assert "hybrid evidence ndcg@10 fell to 0.700 from baseline 0.800 on 40 questions" in msg
    # the same mean drop carried by two questions out of forty is noise: not significant
    noisy = _run("cur", [0.8] * 38 + [0.0, 0.4])
    assert compare.significant_drops(noisy, base, 0.02, "ndcg@10") == []
    # significant but within the tolerance: not a failure
    slight = _run("cur", [0.79] * 40)
    assert compare.significant_drops(slight, base, 0.02, "ndcg@10") == []


def test_compare_runs_pairs_questions_and_applies_holm_across_runs():
    ref = _run("ref", [0.5] * 30)
    up = _run("up", [0.6] * 29 + [0.5])
    same = _run("same", [0.5] * 29 + [0.6])
    cmp = compare.compare_runs(ref, [up, same], "ttest")
    rows = {r["run"]: r for r in cmp["rows"]}
    assert rows["up"]["significant"] and rows["up"]["delta"] == pytest.approx(29 * 0.1 / 30)
    assert not rows["same"]["significant"]
    # Holm over the two runs: the smaller p doubled, the larger kept (and never below the first)
    assert rows["up"]["p_holm"] == pytest.approx(2 * rows["up"]["p"])
    assert rows["same"]["p_holm"] == pytest.approx(rows["same"]["p"])
    assert rows["same"]["p"] == pytest.approx(stats.paired_t_test([0.5] * 29 + [0.6], [0.5] * 30)[1])
    table = compare.runs_table(cmp)
    assert "| hybrid | evidence | ndcg@10 | 0.500 | up | 0.597 | +0.097 |" in table and "▲ better" in table
