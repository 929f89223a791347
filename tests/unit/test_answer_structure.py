"""The article's structure as answers read it: quotable units, places in a sequence, code lines,
filler, articles named by their description, and the decision's veto and prior."""

from types import SimpleNamespace

import numpy as np
import pytest

from rag.abstain import AbstentionModel
from rag.answer import decision, extractive, reference, structure
from rag.answer.facts import facts
from rag.answer.sources import looks_like_code, units
from rag.answer.types import Source
from rag.config import AnswerSettings
from rag.records import ArticleInfo

CHUNK = """## Flaw 2: It doesn’t mean what (most) people think it means

The four key flaws:

1.  **It’s made up**: The line is plucked out of thin air. It is lazy.
2.  **It’s easy to hack**: Randomness is labelled significant.

```python
for dirpath, _, filenames in os.walk(folder):
```
h = hashlib.md5()
Let’s get to it!"""


def test_units_are_headings_items_code_and_sentences_in_order():
    got = units(CHUNK)
    assert got[0] == ("## Flaw 2: It doesn’t mean what (most) people think it means", "heading")
    assert ("The four key flaws:", "text") in got
    # an item keeps its number and is not split at "1."; its later sentences read as prose
    assert ("1.  **It’s made up**: The line is plucked out of thin air.", "item") in got
    assert ("It is lazy.", "text") in got
    assert ("for dirpath, _, filenames in os.walk(folder):", "code") in got
    assert ("h = hashlib.md5()", "code") in got  # no fence: recognised by its shape
    assert all(not u.startswith("```") for u, _ in got)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("import os", True),
        ("    return h.hexdigest()", True),
        ("full_path = os.path.join(dirpath, f)", True),
        ("if you want to learn SQL:", False),
        ("Statistical significance is a line in the sand.", False),
        ("The result = great", False),
    ],
)
def test_code_lines_are_told_from_prose(line, code):
    assert looks_like_code(line) is code


@pytest.mark.parametrize(
    ("question", "place"),
    [
        ("What is the second flaw of statistical significance?", 2),
        ("Which library is number one on the list?", 1),
        ("What does script 5 do?", 5),
        ("What is the 3rd script?", 3),
        ("What is the last library?", -1),
        ("Who first proposed it?", None),
    ],
)
def test_the_place_a_question_asks_about(question, place):
    assert structure.asked_position(question) == place


def test_numbered_headings_and_items_and_the_last_of_a_sequence():
    assert structure.position_of("## Flaw 2: It doesn’t mean") == 2
    assert structure.position_of("# 1. Requests (Yes, Really!)") == 1
    assert structure.position_of("3.  **Hack**: it") == 3
    assert structure.position_of("- a plain item") is None
    text = "## 1. One\n\ntext\n\n## 2. Two\n\n1.  first item\n2.  second item\n3.  third item"
    assert structure.numbered(text, 2) == ["## 2. Two", "2.  second item"]
    assert structure.numbered(text, -1) == ["## 2. Two", "3.  third item"]


def test_filler_is_told_from_content():
    assert structure.is_filler(
        "Since you’re reading this article, there’s a good chance Medium recommended it."
    )
    assert structure.is_filler("Let’s get to it!")
    assert not structure.is_filler("SQL indexing is a term often thrown around in data circles.")


def _source(sents, kinds, sims):
    qvec = np.array([1.0, 0.0])
    vecs = np.array([[s, (1 - s * s) ** 0.5] for s in sims])
    hit = SimpleNamespace(chunk=SimpleNamespace(article_id="a", start=0))
    return qvec, Source(1, hit, sents, vecs, kinds)  # type: ignore[arg-type]


def test_the_numbered_unit_leads_an_answer_about_its_place():
    sents = [
        "The four key flaws of statistical significance:",
        "1.  It’s made up: the line is plucked out of thin air.",
        "2.  It doesn’t mean what people think: it is not a probability that X is true.",
    ]
    qvec, src = _source(sents, ["text", "item", "item"], [0.9, 0.5, 0.5])
    got = extractive.select("What is the second flaw?", qvec, [src], AnswerSettings())
    assert got[0][0].startswith("It doesn’t mean what people think")


def test_a_code_line_answers_a_question_about_code_and_is_quoted_as_code():
    sents = ["1. File Duplication Finder", "for dirpath, _, filenames in os.walk(folder):"]
    qvec, src = _source(sents, ["heading", "code"], [0.6, 0.45])
    got = extractive.select("Which function does it use to walk the folders?", qvec, [src], AnswerSettings())
    assert got[0][0] == "`for dirpath, _, filenames in os.walk(folder):`"


def test_filler_never_leads_nor_comes_along_as_context():
    sents = [
        "Since you’re reading this article, there’s a good chance Medium recommended it.",
        "This article will explore NDCG, the rank-aware metric for evaluating recommendations.",
    ]
    qvec, src = _source(sents, ["text", "text"], [0.8, 0.7])
    got = extractive.select("What is NDCG?", qvec, [src], AnswerSettings())
    assert [t for t, _, _ in got] == [sents[1]]


def _info(
    title, author=None, url="https://medium.com/x/some-article-0123456789ab", pub="Towards Data Science"
):
    return ArticleInfo(title[:8], url, title, pub, None, None, False, 1, "h", (), author)


CATALOGUE = [
    (_info("To Index or Not to Index", "Christopher Karg", "https://m.com/to-index-8be32ad45cae"),
     "Leverage SQL indexing to speed up your queries."),
    (_info("Top Data Science Career Questions, Answered", "Haden Pelletier"),
     "I’ve been a data scientist for over 3 years."),
    (_info("LLMs from Scratch Using Middle School Math", "Rohit Patel"),
     "A self-contained, full explanation to inner workings of an LLM"),
    (_info("20 Python Scripts To Automate Your Daily Tasks"), "A must-have collection for every developer"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("question", "title", "rest"),
    [
        (
            "What does the SQL-indexing article say about trade-offs?",
            "To Index",
            "What does it say about trade-offs?",
        ),
        (
            "In the Q&A article, what does the author say data scientists do with databases?",
            "Top Data",
            "What does the author say data scientists do with databases?",
        ),
        ("What does Rohit Patel's article explain?", "LLMs from", "What does it explain?"),
        (
            "Why are duplicates a problem in the 20-scripts article?",
            "20 Pytho",
            "Why are duplicates a problem in it?",
        ),
    ],
)
def test_an_article_named_by_its_description_is_found_and_read_as_it(question, title, rest):
    got = reference.described_article(question, lambda: CATALOGUE)
    assert got is not None and got.article.title.startswith(title) and got.question == rest


def test_a_description_that_fits_no_article_or_two_steers_nothing():
    for question in (
        "What does the cooking article say about salt?",  # fits none
        "What does the data article say?",  # fits two
        "What is p-hacking?",  # names no article
    ):
        assert reference.described_article(question, lambda: CATALOGUE) is None


def test_overview_questions_and_titles_that_name_the_subject():
    assert reference.asks_overview("What does it explain?")
    assert not reference.asks_overview("What does it say about trade-offs?")
    assert reference.names_title(
        "What is NDCG?", "Normalized Discounted Cumulative Gain (NDCG) — The Ultimate"
    )
    assert not reference.names_title("What is dropout?", "LLMs from Scratch Using Middle School Math")
    assert reference.subtitle_of("## A detailed look\n\nText") == "A detailed look"
    assert reference.subtitle_of("Text first\n\n## Heading") == ""


def test_descriptive_compounds_and_lone_letters_are_not_names():
    assert facts("What does the SQL-indexing article in the Q&A say about the 3-step guide?") == set()
    assert facts("Is GPT-4 better than COVID-19 models?") == {"gpt-4", "covid-19"}


MODEL = AbstentionModel(["sentence_cos"], [0.0], [1.0], [4.0], 0.0, threshold=0.7, unsure_threshold=0.3)


def test_the_veto_refuses_only_what_the_collection_never_mentions():
    sig = {"sentence_cos": 1.0}
    vetoed = decision.decide(sig, ["2018"], MODEL, 0.35, unknown=["2018"])
    assert vetoed.outcome == "abstained" and "no indexed article mentions 2018" in vetoed.reason
    elsewhere = decision.decide(sig, ["mysql"], MODEL, 0.35, unknown=[])
    assert elsewhere.outcome == "unsure" and "do not mention mysql" in elsewhere.reason
    assert decision.decide(sig, [], MODEL, 0.35, unknown=[]).outcome == "answered"


def test_the_prior_moves_the_odds_not_the_cut_points():
    sig = {"sentence_cos": 0.1}  # p = sigmoid(0.4) = 0.599: unsure at even odds
    assert decision.decide(sig, [], MODEL, 0.35, prior=0.5).outcome == "unsure"
    at_prior = decision.decide(sig, [], MODEL, 0.35, prior=0.75)
    assert at_prior.outcome == "answered" and at_prior.confidence == pytest.approx(
        decision.with_prior(0.5986876601124521, 0.75)
    )
    assert decision.with_prior(0.5, 0.75) == pytest.approx(0.75)
