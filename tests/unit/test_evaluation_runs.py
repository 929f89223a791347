import json

import pytest

from rag.errors import RagError
from rag.evaluation import abstention, runs
from tests.eval_fixtures import fake_record


def test_run_is_saved_and_loaded_by_name_or_path(tmp_path):
    record = fake_record("first")
    path = runs.save_run(record, tmp_path / "runs")
    assert path == tmp_path / "runs" / "first.json"
    assert runs.load_run("first", tmp_path / "runs") == json.loads(json.dumps(record))
    assert runs.load_run(str(path), tmp_path / "elsewhere")["name"] == "first"
    saved = record["retrievers"]["dense"]["per_query"]["evidence"]
    assert set(saved) == {"q1", "q2", "q3", "q4", "q5"}  # the unanswerable q6 has no qrels
    assert set(saved["q4"]) == {"ndcg@10", "ndcg@5", "mrr@10", "recall@5", "recall@10", "map@10"}


def test_missing_or_foreign_run_and_bad_name_are_clear_errors(tmp_path):
    runs.save_run(fake_record("kept"), tmp_path)
    with pytest.raises(RagError, match=r"no such run \(saved: kept\)"):
        runs.load_run("gone", tmp_path)
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(RagError, match="not a run saved by `rag eval`"):
        runs.load_run("other", tmp_path)
    with pytest.raises(RagError, match="run name 'a b'"):
        runs.run_path("a b", tmp_path)


def test_trec_files_read_back_by_pytrec_eval_give_the_runs_numbers(tmp_path):
    import pytrec_eval

    from rag.evaluation.metrics import MEASURES

    record = fake_record("t1")
    written = runs.write_trec(record, tmp_path)
    assert sorted(p.name for p in written) == [
        "qrels.article.txt",
        "qrels.evidence.txt",
        "t1.bm25.article.run",
        "t1.bm25.evidence.run",
        "t1.dense.article.run",
        "t1.dense.evidence.run",
    ]
    first = (tmp_path / "t1.dense.evidence.run").read_text().splitlines()[0]
    assert first == "q1 Q0 q1#e0 1 3 t1.dense"
    assert (tmp_path / "qrels.evidence.txt").read_text().splitlines()[3] == "q4 0 q4#e0 2"
    for level in ("evidence", "article"):
        with open(tmp_path / f"qrels.{level}.txt") as f:
            qrels = pytrec_eval.parse_qrel(f)
        for name in ("dense", "bm25"):
            with open(tmp_path / f"t1.{name}.{level}.run") as f:
                run = pytrec_eval.parse_run(f)
            got = pytrec_eval.RelevanceEvaluator(qrels, set(MEASURES.values())).evaluate(run)
            want = record["retrievers"][name]["per_query"][level]
            assert set(got) == set(want)
            for qid, metrics in want.items():
                for m, trec in MEASURES.items():
                    assert got[qid][trec] == pytest.approx(metrics[m], abs=1e-12), (name, level, qid, m)


def test_recall_curve_counts_judged_items_in_the_top_k():
    record = fake_record()
    # dense, evidence: q1 earns at 1, q2 at 2, q3 never, q4 both of 2 at 1-2, q5 at 3
    assert runs.recall_curve(record, "dense", "evidence", 4) == pytest.approx(
        [(1 + 0 + 0 + 0.5 + 0) / 5, (1 + 1 + 0 + 1 + 0) / 5, 3 / 5 + 1 / 5, 4 / 5]
    )
    assert runs.ranking_depth(record) == 3


def test_abstention_curve_points_by_hand():
    pairs = {"a": (0.9, True), "b": (0.7, False), "c": (0.5, True), "d": (None, False), "e": (None, True)}
    strict = abstention.point(pairs, 0.8)
    assert strict == {
        "threshold": 0.8,
        "coverage": 0.2,
        "precision": 1.0,
        "answer_rate": 1 / 3,
        "abstain_rate": 1.0,
    }
    lenient = abstention.point(pairs, 0.0)
    assert lenient["coverage"] == 0.6 and lenient["precision"] == pytest.approx(2 / 3)
    assert lenient["abstain_rate"] == 0.5  # d abstains whatever the threshold
    assert [p["threshold"] for p in abstention.curve(pairs)] == [0.9, 0.7, 0.5]


def test_answerer_scores_mark_missing_facts_as_never_answered():
    from rag.answer.decision import decide

    class Model:
        threshold = 0.5
        unsure_threshold = None
        veto_missing = True

        def probability(self, signals):
            return signals["sentence_cos"] / 2

        def explain(self, signals, p=None):
            return "low"

    class Answerer:
        abstention = None

        def question_signals(self, q):
            return ({"sentence_cos": 0.4}, ["FIFA"]) if "FIFA" in q else ({"sentence_cos": 0.6}, [])

        def decide(self, signals, missing):
            return decide(signals, missing, self.abstention, 0.35)

    class Q:
        def __init__(self, id, question, relevant, previous=""):
            self.id, self.question, self.relevant, self.previous = id, question, relevant, previous
            self.type = "followup" if previous else "factoid"

    qs = [Q("a", "What is X?", (1,)), Q("b", "Who won FIFA?", ()), Q("c", "and why?", (1,), "Who won FIFA?")]
    a = Answerer()
    # Without a fitted model the score is the best sentence's similarity; a follow-up is scored
    # with its earlier question, so it inherits that question's missing name.
    assert abstention.answerer_scores(a, qs) == {"a": (0.6, True), "b": (None, False), "c": (None, True)}
    assert abstention.describe(a, 0.35)[0] == 0.35
    a.abstention = Model()
    assert abstention.answerer_scores(a, qs[:1]) == {"a": (0.3, True)}
    assert abstention.describe(a, 0.35)[0] == 0.5


def test_deeper_rankings_for_the_recall_curve_leave_the_scores_unchanged():
    from rag.evaluation.dev import run_dev_suite
    from tests.eval_fixtures import QUESTIONS, FakeRetriever

    shallow = run_dev_suite(FakeRetriever(), QUESTIONS, ["dense"], k=2)
    deep = run_dev_suite(FakeRetriever(), QUESTIONS, ["dense"], k=2, depth=3)
    for level in ("evidence", "article"):
        assert deep["retrievers"]["dense"][level] == shallow["retrievers"]["dense"][level]
    assert "deep_run" not in shallow["retrievers"]["dense"]
    record = runs.record_from(deep, "d", {}, {}, {"hash": "h"})
    assert (
        runs.ranking_depth(record) == 3
        and max(map(len, record["rankings"]["dense"]["evidence"].values())) == 2
    )
    # q5's evidence comes at chunk 3: beyond the scored top 2, inside the curve's depth
    assert runs.recall_curve(record, "dense", "evidence", 3)[2] == pytest.approx(4 / 5)
