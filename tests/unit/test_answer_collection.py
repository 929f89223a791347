"""Questions about the collection (rag/answer/collection.py) on hand-made articles and a fake
retriever whose hits are given, so every answer's text and citations are known exactly."""

from __future__ import annotations

import pytest

from rag.answer.collection import MAX_LISTED, CollectionQuery, answer_collection, collection_question
from rag.answer.types import Answer
from rag.records import ArticleInfo, Filters, StoredChunk
from rag.retrieve import Hit


def article(n: int, title: str, author: str | None, published: str | None, chunks: int = 2) -> ArticleInfo:
    return ArticleInfo(
        article_id=f"a{n}",
        url=f"https://medium.com/x/article-{n}",
        title=title,
        publication="Towards Data Science",
        published=published,
        fetched=None,
        member_only=False,
        chunks=chunks,
        content_hash=f"h{n}",
        author=author,
    )


NDCG = article(
    1,
    "Normalized Discounted Cumulative Gain (NDCG) — The Ultimate Ranking Metric",
    "Jane Doe",
    "2024-10-15T20:44:51.473Z",
)
SCAM = article(2, "The Statistical Significance Scam", "Cai Parry-Jones", "2024-11-09T12:02:00.274Z")
SCRIPTS = article(3, "20 Python Scripts To Automate Your Daily Tasks", None, "2024-10-07")
KING = article(4, "Python is No More The King of Data Science", "Abdur Rahman", "2024-10-23T03:28:34.197Z")
LIBS = article(5, "5 Overrated Python Libraries", "abdur rahman", None)
ARTICLES = [NDCG, SCAM, SCRIPTS, KING, LIBS]


def chunk(a: ArticleInfo, ord: int, text: str) -> StoredChunk:
    return StoredChunk(
        chunk_id=f"{a.article_id}-c{ord}",
        article_id=a.article_id,
        url=a.url,
        title=a.title,
        publication=a.publication,
        published=a.published,
        heading="",
        text=text,
        start=0,
        end=len(text),
        ord=ord,
        member_only=False,
        author=a.author,
    )


CHUNKS = [
    chunk(NDCG, 0, "Recommendation systems are everywhere."),
    chunk(NDCG, 1, "NDCG divides the discounted gain by the ideal one."),
    chunk(SCAM, 0, "Statistical significance is a threshold."),
    chunk(SCAM, 1, "P-hacking tests many hypotheses until one passes; NDCG is not mentioned elsewhere."),
    chunk(SCRIPTS, 0, "I assume you have been coding in Python."),
    chunk(KING, 0, "If you are reading this, Python is still popular."),
    chunk(LIBS, 0, "Look, there is nothing wrong with Requests."),
]


class FakeRetriever:
    """Topic searches return the given chunks as hits, in order; a search within one URL (how
    a cited article's first chunk is looked up) returns that article's chunks, last first."""

    def __init__(self, ranked: list[StoredChunk] | None = None) -> None:
        self.ranked = ranked or []
        self.queries: list[str] = []

    def search(self, query, k=None, retriever=None, filters: Filters | None = None, **_):
        if filters and filters.url:
            own = [c for c in reversed(CHUNKS) if filters.url in c.url]
            return [Hit(c, 1.0, i, "bm25") for i, c in enumerate(own[:k], start=1)]
        self.queries.append(query)
        return [Hit(c, 1.0 / i, i, "hybrid") for i, c in enumerate(self.ranked[:k], start=1)]


def ask(question: str, ranked: list[StoredChunk] | None = None, articles=ARTICLES, **kw) -> Answer | None:
    query = collection_question(question)
    assert query is not None, question
    return answer_collection(query, question, articles, FakeRetriever(ranked), **kw)


# ------------------------------------------------------------------------- recognition


@pytest.mark.parametrize(
    "question, topic, named",
    [
        ("who wrote the article about ndcg?", "ndcg", True),
        ("Who wrote the article on NDCG", "NDCG", True),
        ("Who is the author of the NDCG article?", "NDCG", True),
        ("who's the author of the post about p-hacking?", "p-hacking", True),
        (
            "what is the name of the author of the statistical significance article?",
            "statistical significance",
            True,
        ),
        ("by whom was the python article written?", "python", True),
        ("who is the ndcg post by?", "ndcg", True),
        ("Can you tell me who wrote the ndcg article?", "ndcg", True),
        ("who wrote “The Statistical Significance Scam”?", "The Statistical Significance Scam", True),
        ("who authored the article titled 'To Index or Not to Index'?", "To Index or Not to Index", True),
        ("who wrote the LLMs from scratch article in the index?", "LLMs from scratch", True),
        ("who wrote The Statistical Significance Scam?", "The Statistical Significance Scam", False),
        ("the article about ndcg was written by whom?", "ndcg", True),
    ],
)
def test_authorship_questions_are_recognised_with_their_subject(question, topic, named):
    assert collection_question(question) == CollectionQuery("author", topic=topic, named=named)


@pytest.mark.parametrize(
    "question, topic, author, named",
    [
        ("when was the statistical significance article published?", "statistical significance", "", True),
        ("When was the article about NDCG written?", "NDCG", "", True),
        ("when did the ndcg post come out?", "ndcg", "", True),
        ("what date was the article about p-hacking published?", "p-hacking", "", True),
        ("which year was the python article posted?", "python", "", True),
        ("What is the publication date of the article about indexing?", "indexing", "", True),
        ("publication date of the ndcg article", "ndcg", "", True),
        ("how old is the article about ndcg?", "ndcg", "", True),
        ("When was the article by Shaw Talebi published?", "", "Shaw Talebi", True),
        (
            "when was “The Statistical Significance Scam” published?",
            "The Statistical Significance Scam",
            "",
            True,
        ),
        (
            "when was The Statistical Significance Scam published?",
            "The Statistical Significance Scam",
            "",
            False,
        ),
    ],
)
def test_date_questions_are_recognised_with_their_subject(question, topic, author, named):
    assert collection_question(question) == CollectionQuery("date", topic=topic, author=author, named=named)


@pytest.mark.parametrize(
    "question, author, named",
    [
        ("which articles are by Cai Parry-Jones?", "Cai Parry-Jones", True),
        ("What articles were written by Abdur Rahman?", "Abdur Rahman", True),
        ("which articles did Saankhya Mondal write?", "Saankhya Mondal", True),
        ("articles by Mondal", "Mondal", True),
        ("list all the posts by abdur rahman", "abdur rahman", True),
        ("are there any articles by Einstein?", "Einstein", True),
        ("how many articles are by Abdur Rahman?", "Abdur Rahman", True),
        ("what are Abdur Rahman's articles?", "Abdur Rahman", True),
        ("Abdur Rahman's articles", "Abdur Rahman", True),
        ("what did Abdur Rahman write?", "Abdur Rahman", False),
        ("what else has Cai Parry-Jones written?", "Cai Parry-Jones", False),
        ("which articles are by Rahman in the index?", "Rahman", True),
    ],
)
def test_questions_for_an_authors_articles_are_recognised(question, author, named):
    assert collection_question(question) == CollectionQuery("by_author", author=author, named=named)


@pytest.mark.parametrize(
    "question, topic",
    [
        ("which articles are about ndcg?", "ndcg"),
        ("What articles discuss p-hacking?", "p-hacking"),
        ("which article talks about SQL indexes?", "SQL indexes"),
        ("which articles cover ranking metrics?", "ranking metrics"),
        ("what posts mention transformers?", "transformers"),
        ("is there an article about knowledge graphs?", "knowledge graphs"),
        ("do you have any articles on LLMs?", "LLMs"),
        ("articles about python", "python"),
        ("list the articles about data science", "data science"),
        ("how many articles are about python?", "python"),
        ("who wrote about p-hacking?", "p-hacking"),
    ],
)
def test_questions_for_a_topics_articles_are_recognised(question, topic):
    kind = "author" if question.startswith("who") else "about"
    assert collection_question(question) == CollectionQuery(kind, topic=topic, plural=True)


@pytest.mark.parametrize(
    "question, kind",
    [
        ("what articles are indexed?", "collection"),
        ("What articles do you have?", "collection"),
        ("which articles are in the index?", "collection"),
        ("How many articles are there?", "collection"),
        ("how many articles have been indexed?", "collection"),
        ("what is indexed?", "collection"),
        ("what's in the index?", "collection"),
        ("list the articles", "collection"),
        ("show me all the indexed articles", "collection"),
        ("what does your collection contain?", "collection"),
        ("Who are the authors?", "authors"),
        ("who wrote the articles?", "authors"),
        ("which authors are indexed?", "authors"),
        ("how many authors are there?", "authors"),
    ],
)
def test_questions_about_the_whole_collection_are_recognised(question, kind):
    assert collection_question(question) == CollectionQuery(kind)


@pytest.mark.parametrize(
    "question",
    [
        "who invented NDCG?",
        "when was the transformer introduced?",
        "what does the author say about p-values?",
        "What is NDCG?",
        "who coined the term p-hacking?",
        "how many articles did the study retract?",
        "how many articles were retracted?",
        "which article says p-values are arbitrary?",
        "when did the replication crisis start?",
        "what did the author write?",
        "what did Fisher write about significance?",
        "what is an index?",
        "who is Ronald Fisher?",
        "why is statistical significance a scam?",
        "how old is the universe?",
        "who was R. A. Fisher inspired by?",
        "what are the articles of the GDPR?",
        "who is the author's favourite library?",
        "what is the date format used in the article?",
        "how many authors does the paper have?",
        "when was the first neutrino result announced?",
        "what does the index contain in a B-tree?",
        "What was the name of the CERN experiment that measured neutrinos?",
        "Which articles talk about working with SQL databases, and in what context?",
        "Which articles are about large language models, and what aspect does each cover?",
        "Which articles are about using code or AI tools to get work done faster?",
    ],
)
def test_questions_about_the_articles_content_are_not_recognised(question):
    assert collection_question(question) is None


def test_a_back_reference_is_recognised_as_such():
    for q in (
        "who wrote it?",
        "who is the author?",
        "when was this article published?",
        "when was it published",
    ):
        assert collection_question(q) is not None and collection_question(q).back  # type: ignore[union-attr]


# ------------------------------------------------------------------------- answers


def test_the_author_of_the_article_about_a_topic_is_named_and_cited():
    ans = ask("who wrote the article about ndcg?", ranked=[CHUNKS[1], CHUNKS[3]])
    assert ans is not None
    assert ans.answer == f"“{NDCG.title}” was written by Jane Doe [1]."
    assert not ans.abstained and ans.mode == "extractive"
    [c] = ans.citations
    assert (c.n, c.url, c.title, c.published) == (1, NDCG.url, NDCG.title, NDCG.published)
    assert (c.chunk_id, c.text) == ("a1-c1", CHUNKS[1].text)  # the retrieved chunk that fits
    assert ans.sentences == [(f"“{NDCG.title}” was written by Jane Doe.", [1], 1.0)]
    assert [h.chunk.author for h in ans.closest] == ["Jane Doe"]
    assert ans.outcome == "answered"


def test_a_topic_found_only_in_the_text_names_the_best_ranked_article():
    # "p-hacking" is in no title: the first hit that holds the words decides
    ans = ask("who wrote the article about p-hacking?", ranked=[CHUNKS[0], CHUNKS[3], CHUNKS[1]])
    assert (
        ans is not None
        and ans.answer == "“The Statistical Significance Scam” was written by Cai Parry-Jones [1]."
    )
    assert ans.citations[0].chunk_id == "a2-c1"


def test_a_topic_no_article_holds_is_left_to_the_normal_path():
    assert ask("who wrote the article about the world cup?", ranked=CHUNKS) is None
    assert ask("which articles are about the world cup?", ranked=CHUNKS) is None


def test_a_title_given_without_article_words_must_be_nearly_whole():
    ans = ask("who wrote The Statistical Significance Scam?")
    assert (
        ans is not None
        and ans.answer == "“The Statistical Significance Scam” was written by Cai Parry-Jones [1]."
    )
    assert ans.citations[0].chunk_id == "a2-c0"  # looked up: the article's first chunk
    assert ask("who wrote Hamlet?", ranked=CHUNKS) is None
    assert ask("who wrote NDCG?", ranked=CHUNKS) is None  # one word of a seven-word title


def test_several_title_matches_are_each_answered():
    ans = ask("who wrote the python article?", ranked=[CHUNKS[5]])
    assert ans is not None
    assert ans.answer == (
        "“Python is No More The King of Data Science” was written by Abdur Rahman [1]. "
        "The indexed article “20 Python Scripts To Automate Your Daily Tasks” [2] "
        "does not record its author. "
        "“5 Overrated Python Libraries” was written by abdur rahman [3]."
    )
    assert [c.url for c in ans.citations] == [KING.url, SCRIPTS.url, LIBS.url]


def test_an_article_without_an_author_says_so():
    ans = ask("who wrote the python scripts article?")
    assert ans is not None
    assert ans.answer == f"The indexed article “{SCRIPTS.title}” [1] does not record its author."
    assert [c.n for c in ans.citations] == [1]


def test_the_publication_date_is_the_day_and_a_missing_one_is_said():
    ans = ask("when was the statistical significance article published?")
    assert (
        ans is not None
        and ans.answer == "“The Statistical Significance Scam” was published on 2024-11-09 [1]."
    )
    assert ans.citations[0].published == SCAM.published
    ans = ask("when was the article about overrated libraries published?")
    assert ans is not None
    assert (
        ans.answer
        == "The indexed article “5 Overrated Python Libraries” [1] does not record its publication date."
    )


def test_the_date_of_an_authors_article():
    ans = ask("when was the article by Parry-Jones published?")
    assert (
        ans is not None
        and ans.answer == "“The Statistical Significance Scam” was published on 2024-11-09 [1]."
    )


def test_an_authors_articles_are_listed_by_any_part_of_the_name_in_any_case():
    want = (
        "Two indexed articles are by Abdur Rahman: “Python is No More The King of Data Science” [1] "
        "and “5 Overrated Python Libraries” [2]."
    )
    articles = [NDCG, SCAM, SCRIPTS, KING, article(5, LIBS.title, "Abdur Rahman", None)]
    for q in ("which articles are by abdur rahman?", "articles by RAHMAN", "what did Abdur write?"):
        ans = ask(q, articles=articles)
        assert ans is not None and ans.answer == want, q
        assert [(c.n, c.url, c.chunk_id) for c in ans.citations] == [
            (1, KING.url, "a4-c0"),
            (2, LIBS.url, "a5-c0"),
        ]


def test_one_article_by_an_author_and_name_variants_as_recorded():
    ans = ask("which articles are by Cai Parry-Jones?")
    assert ans is not None
    assert ans.answer == "One indexed article is by Cai Parry-Jones: “The Statistical Significance Scam” [1]."
    ans = ask("articles by Rahman")  # recorded as "Abdur Rahman" and "abdur rahman": one sentence each
    assert ans is not None
    assert ans.answer == (
        "One indexed article is by Abdur Rahman: “Python is No More The King of Data Science” [1]. "
        "One indexed article is by abdur rahman: “5 Overrated Python Libraries” [2]."
    )


def test_no_such_author_is_said_when_asked_for_articles_and_left_alone_otherwise():
    ans = ask("which articles are by Einstein?")
    assert ans is not None and ans.answer == "No indexed article is by Einstein." and ans.citations == []
    assert not ans.abstained
    assert ask("what did Einstein write?") is None  # may ask what the articles say he wrote
    assert ask("when was the article by Einstein published?") is None


def test_articles_about_a_topic_list_titles_first_then_those_that_discuss_it():
    ans = ask("which articles are about ndcg?", ranked=[CHUNKS[3], CHUNKS[1], CHUNKS[0]])
    assert ans is not None
    assert ans.answer == (
        f"One indexed article is about ndcg: “{NDCG.title}” [1]. "
        "“The Statistical Significance Scam” [2] also discusses ndcg."
    )
    assert [(c.n, c.chunk_id) for c in ans.citations] == [(1, "a1-c1"), (2, "a2-c1")]
    ans = ask("what articles discuss p-hacking?", ranked=[CHUNKS[3]])
    assert ans is not None
    assert ans.answer == "One indexed article discusses p-hacking: “The Statistical Significance Scam” [1]."


def test_the_whole_collection_is_counted_and_listed():
    ans = ask("what articles are indexed?")
    assert ans is not None
    assert ans.answer.startswith("Five articles are indexed: “Normalized Discounted")
    assert ans.answer.endswith("[4] and “5 Overrated Python Libraries” [5].")
    assert [c.url for c in ans.citations] == [a.url for a in ARTICLES]
    many = [article(100 + n, f"Article number {n}", None, None, chunks=0) for n in range(1, 31)]
    ans = ask("how many articles are there?", articles=many)
    assert ans is not None
    assert ans.answer.startswith(f"30 articles are indexed; the first {MAX_LISTED}: “Article number 1” [1], ")
    assert len(ans.citations) == MAX_LISTED
    assert ans.citations[0].chunk_id == "" and ans.citations[0].text == ""  # no chunk: metadata only


def test_the_authors_are_listed_with_their_articles():
    ans = ask("who are the authors?")
    assert ans is not None
    assert ans.answer == (
        "The indexed articles name four authors: Jane Doe [1], Cai Parry-Jones [2], Abdur Rahman [3] "
        "and abdur rahman [4]. One article records no author."
    )


def test_a_back_reference_means_the_articles_the_previous_answer_cited():
    ans = ask("who wrote it?", cited=[SCAM.url, SCAM.url])
    assert (
        ans is not None
        and ans.answer == "“The Statistical Significance Scam” was written by Cai Parry-Jones [1]."
    )
    assert ask("who wrote it?") is None  # nothing to refer to
    one = ask("when was it published?", articles=[SCAM])
    assert (
        one is not None
        and one.answer == "“The Statistical Significance Scam” was published on 2024-11-09 [1]."
    )
