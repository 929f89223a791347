"""Questions about the collection, answered from the real shipped index's metadata."""

from __future__ import annotations

import pytest

from rag.answer.collection import answer_collection, collection_question

NDCG = "Normalized Discounted Cumulative Gain (NDCG) — The Ultimate Ranking Metric"
STATS = "https://medium.com/towards-data-science/the-statistical-significance-scam-db904be36714"


@pytest.fixture(scope="module")
def articles(retriever):
    return retriever.store.articles()


def ask(question, articles, retriever):
    query = collection_question(question)
    assert query is not None, question
    return answer_collection(query, question, articles, retriever)


def test_who_wrote_the_article_about_ndcg(articles, retriever):
    ans = ask("who wrote the article about ndcg?", articles, retriever)
    assert ans is not None and ans.answer == f"“{NDCG}” was written by Saankhya Mondal [1]."
    [c] = ans.citations
    assert c.title == NDCG and c.chunk_id and "NDCG" in c.text


def test_when_the_statistical_significance_article_was_published(articles, retriever):
    ans = ask("when was the statistical significance article published?", articles, retriever)
    assert (
        ans is not None
        and ans.answer == "“The Statistical Significance Scam” was published on 2024-11-09 [1]."
    )
    assert [c.url for c in ans.citations] == [STATS]


def test_the_articles_by_an_author(articles, retriever):
    ans = ask("which articles are by Cai Parry-Jones?", articles, retriever)
    assert ans is not None
    assert ans.answer == "One indexed article is by Cai Parry-Jones: “The Statistical Significance Scam” [1]."
    ans = ask("what did Abdur Rahman write?", articles, retriever)
    assert ans is not None and ans.answer.startswith("Two indexed articles are by Abdur Rahman: ")
    assert len(ans.citations) == 2


def test_what_is_indexed_lists_every_article(articles, retriever):
    ans = ask("what articles are indexed?", articles, retriever)
    assert ans is not None and ans.answer.startswith(
        f"Eleven articles are indexed: “{articles[0].title}” [1]"
    )
    assert {c.url for c in ans.citations} == {a.url for a in articles}
    assert all(c.chunk_id and c.text for c in ans.citations)  # each cites one of its chunks


def test_an_off_corpus_topic_is_left_to_the_normal_path(articles, retriever):
    assert ask("who wrote the article about the world cup?", articles, retriever) is None
