import json
import math
from pathlib import Path

import pytest

from rag.errors import RagError
from rag.evaluate import (
    Evidence,
    Question,
    ResolvedQuestion,
    load_beir,
    load_questions,
    locate,
    mean,
    resolve,
    run_for,
    trec_metrics,
)
from rag.ingest import clean_page
from rag.stores import StoredChunk

ROOT = Path(__file__).resolve().parent.parent


def _chunk(cid, url, start, end, text):
    return StoredChunk(cid, "a", url, "T", "P", None, "", text, start, end, 0, False)


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


def test_evidence_is_found_through_link_cleaning():
    raw = [
        "Not quite. As other scientists scrutinized the experiment, they found flaws and "
        "ultimately [could not replicate the results](https://www.nbcnews.com/x). The end."
    ]
    clean, _ = clean_page(raw, "T")
    quote = "they found flaws and ultimately could not replicate the results"
    span = locate(quote, clean)
    assert span is not None and clean[span[0] : span[1]] == quote
    # a quote copied with the link markup, emphasis or straight quotes still resolves
    assert locate("ultimately [could not replicate](http://a.b) the results", clean)
    assert locate("“Bacon” isn't it", "He said “Bacon” isn’t it.") is not None


def test_evidence_split_by_a_chunk_boundary_is_earned_by_the_chunk_holding_most_of_it():
    url = "https://x.org/a"
    text = "alpha beta gamma. " * 10 + "The quote starts here and goes on past the boundary of chunks."
    q = Question(
        "q1", "?", "", "factoid", (Evidence(url, 3, "The quote starts here and goes on past the boundary"),)
    )
    (rq,) = resolve([q], {url: text})
    s = rq.spans[0][1]
    cut = s + 8  # the first chunk holds only "The quot"
    first = _chunk("c1", url, 0, cut, text[:cut])
    second = _chunk("c2", url, cut, len(text), text[cut:])
    ev, art = run_for(rq, [first, second])
    assert list(ev) == ["chunk:c1", "q1#e0"]
    assert list(art) == [url]


def test_evidence_beyond_the_word_budget_is_not_earned():
    url = "https://x.org/a"
    filler = _chunk("c0", url, 0, 10, "word " * 20)
    text = "x" * 10 + " the answer sits right here in this text"
    q = Question("q1", "?", "", "factoid", (Evidence(url, 3, "the answer sits right here"),))
    rq = ResolvedQuestion(q, [(url, 11, 37, 3)])
    hit = _chunk("c1", url, 10, len(text), text[10:])
    ev, _ = run_for(rq, [filler, hit], word_budget=20)
    assert "q1#e0" not in ev
    ev, _ = run_for(rq, [filler, hit], word_budget=21)
    assert "q1#e0" in ev


def test_development_set_follows_the_schema():
    qs = load_questions(ROOT / "eval" / "questions.jsonl")
    assert len(qs) >= 50
    assert sum(q.type == "unanswerable" for q in qs) >= 6
    assert len(qs) >= 150 and sum(q.type == "unanswerable" for q in qs) >= 40
    assert len({q.id for q in qs}) == len(qs)
    for q in qs:
        # A follow-up may be unanswerable too; every other question says which it is by its type.
        assert q.relevant or q.type in ("unanswerable", "followup")
        assert q.type != "unanswerable" or not q.relevant
        assert (q.type == "followup") == bool(q.previous)
        for e in q.relevant:
            assert 8 <= len(e.quote.split()) <= 40 and e.grade in (1, 2, 3)


def test_bad_question_line_names_file_and_line(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"id": "a", "question": "?", "type": "factoid", "relevant": []}) + "\n{oops\n")
    with pytest.raises(RagError, match=r"q.jsonl:2: not a question object"):
        load_questions(f)


def test_beir_loader_keeps_test_queries_and_graded_qrels(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "T1", "text": "alpha"}\n{"_id": "d2", "title": "", "text": "beta"}\n'
    )
    (tmp_path / "queries.jsonl").write_text(
        '{"_id": "1", "text": "alpha?"}\n{"_id": "2", "text": "train only"}\n'
    )
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t2\n1\td2\t1\n")
    data = load_beir(tmp_path)
    assert data.corpus == {"d1": ("T1", "alpha"), "d2": ("", "beta")}
    assert data.queries == {"1": "alpha?"}
    assert data.qrels == {"1": {"d1": 2, "d2": 1}}
    with pytest.raises(RagError, match="missing"):
        load_beir(tmp_path / "nope")
