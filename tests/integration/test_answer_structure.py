"""Answers on the shipped articles where their meaning sits in structure: subtitles, numbered
headings and items, code, articles named by their description, definitions (issue 30's
examples, asked as `rag ask` asks them, with the real models and index)."""

from __future__ import annotations

import pytest

from rag.answer.structure import is_filler

STATS = "https://medium.com/towards-data-science/the-statistical-significance-scam-db904be36714"
SCRIPTS = "https://medium.com/stackademic/20-python-scripts-that-will-give-you-superpowers-4c6f4b15fe63"
INDEX = "https://medium.com/towards-data-science/to-index-or-not-to-index-8be32ad45cae"
CAREER = "https://medium.com/towards-data-science/top-data-science-career-questions-answered-abd3e3c085cc"
NDCG = "https://medium.com/towards-data-science/normalized-discounted-cumulative-gain-ndcg-the-ultimate-ranking-metric-437b03529f75"
LLM = "https://medium.com/towards-data-science/understanding-llms-from-scratch-using-middle-school-math-e602d27ec876"


def _first(ans) -> str:
    return ans.sentences[0][0]


def test_a_subtitle_followed_at_once_by_a_heading_is_found(retriever):
    hit = retriever.search("I’ve been a data scientist for over 3 years", k=1)[0]
    assert hit.chunk.url == CAREER and "over 3 years" in hit.chunk.text


@pytest.mark.parametrize("query", ["os.walk", "hexdigest"])
def test_identifiers_in_code_are_searchable(retriever, query):
    assert retriever.search(query, k=1)[0].chunk.url == SCRIPTS


@pytest.mark.parametrize(
    ("question", "leads"),
    [
        ("What is the first flaw of statistical significance?", "made up"),
        ("What is the second flaw of statistical significance?", "doesn’t mean what (most) people think"),
        ("What is the fourth flaw of statistical significance?", "nothing to do with how important"),
    ],
)
def test_a_question_about_a_place_is_answered_by_that_numbered_heading_or_item(answerer, question, leads):
    ans = answerer.ask(question, mode="extractive")
    assert ans.outcome == "answered" and leads in _first(ans)
    assert {c.url for c in ans.citations} == {STATS}


def test_a_code_question_quotes_the_line_of_code(answerer):
    ans = answerer.ask(
        "Which function does the duplicate finder use to walk through the folders?", mode="extractive"
    )
    # the finder's own line, then the line that walks the folders, each quoted as code
    shown = [t for t, _, _ in ans.sentences[:2]]
    assert not ans.abstained and any("os.walk(folder)" in t for t in shown)
    assert all(t.startswith("`") for t in shown)


@pytest.mark.parametrize(
    ("question", "url", "holds"),
    [
        ("What does the SQL-indexing article say about trade-offs?", INDEX, "trade-offs"),
        (
            "In the Q&A article, what does the author say data scientists do with databases?",
            CAREER,
            "databases",
        ),
    ],
)
def test_an_article_named_by_its_description_is_not_vetoed(answerer, question, url, holds):
    ans = answerer.ask(question, mode="extractive")
    assert ans.outcome != "abstained" and ans.citations[0].url == url and holds in _first(ans)


def test_what_an_article_explains_is_its_title_and_subtitle(answerer):
    ans = answerer.ask("What does Rohit Patel's article explain?", mode="extractive")
    assert ans.outcome == "answered" and ans.citations[0].url == LLM
    assert "full explanation to inner workings of an LLM" in ans.answer


def test_a_definition_of_the_articles_subject_is_answered_and_no_filler_leads(answerer):
    ans = answerer.ask("What is NDCG?", mode="extractive")
    assert ans.outcome == "answered" and ans.citations[0].url == NDCG
    assert "Normalized Discounted Cumulative Gain" in _first(ans)
    assert not any(is_filler(t) for t, _, _ in ans.sentences)


def test_a_name_no_article_mentions_is_still_refused(answerer):
    ans = answerer.ask("Who won the 2018 World Cup?", mode="extractive")
    assert ans.outcome == "abstained" and "no indexed article mentions" in ans.abstain_reason
