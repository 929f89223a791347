import json
from pathlib import Path

import pytest

from rag.errors import RagError
from rag.evaluation.questions import (
    Evidence,
    Question,
    ResolvedQuestion,
    load_questions,
    locate,
    resolve,
    run_for,
)
from rag.ingest import clean_page
from rag.stores import StoredChunk

ROOT = Path(__file__).resolve().parents[2]


def _chunk(cid, url, start, end, text):
    return StoredChunk(cid, "a", url, "T", "P", None, "", text, start, end, 0, False)


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
    structural = ("structure", "position", "code", "description", "definition")
    for q in qs:
        # A follow-up, or a question of a structural kind, may be unanswerable too; every other
        # question says which it is by its type.
        assert q.relevant or q.type in ("unanswerable", "followup", *structural)
        assert q.type != "unanswerable" or not q.relevant
        assert (q.type == "followup") == bool(q.previous)
        for e in q.relevant:
            # a heading, a list item or a line of code is evidence of its own, however short
            shortest = 1 if q.type in structural else 8
            assert shortest <= len(e.quote.split()) <= 40 and e.grade in (1, 2, 3)


def test_bad_question_line_names_file_and_line(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"id": "a", "question": "?", "type": "factoid", "relevant": []}) + "\n{oops\n")
    with pytest.raises(RagError, match=r"q.jsonl:2: not a question object"):
        load_questions(f)
