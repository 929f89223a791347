"""The parts of the answer path (rag/answer/) on hand-made sentences whose right answer is known
exactly: the context a passage brings, question kinds, filling, the verifier's reversals, and
the similarity signals."""

from __future__ import annotations

import numpy as np
import pytest

from rag.answer.decision import best_sentence_sims, mean_of_best
from rag.answer.extractive import fill_passages, passage, question_kind
from rag.answer.types import Source
from rag.answer.verify import flips

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
    src = Source(
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


def _fill(passages, by_n, used, words, fill_words: int, max_words: int = 80) -> None:
    fill_passages(passages, by_n, used, words, fill_words, max_words)


def test_a_short_answer_continues_with_the_sentences_after_it():
    sents = [
        "P-hacking is testing hypotheses until one passes.",  # 7 words
        "It makes chance results look like findings.",  # 7
        "Journals then publish them as discoveries.",  # 6
        "Why does this happen?",  # a question ends the passage
        "Careers depend on it.",
    ]
    src = Source(1, None, sents, np.zeros((5, 3)))  # type: ignore[arg-type]
    passages = [(1, [0])]
    _fill(passages, {1: src}, {"p-hacking is testing hypotheses until one passes."}, 7, 15)
    assert passages == [(1, [0, 1, 2])]  # 7 + 7 < 15, then 20 >= 15 stops
    passages = [(1, [0])]
    _fill(passages, {1: src}, set(), 7, 60)
    assert passages == [(1, [0, 1, 2])]  # never into the question
    passages = [(1, [0])]
    _fill(passages, {1: src}, set(), 7, 60, max_words=16)
    assert passages == [(1, [0, 1])]  # the word cap holds
    passages = [(1, [0])]
    _fill(passages, {1: src}, set(), 7, 0)
    assert passages == [(1, [0])]


def test_filling_stops_at_a_lead_in_and_at_a_sentence_already_used():
    src = Source(1, None, SENTS, np.zeros((len(SENTS), 3)))  # type: ignore[arg-type]
    passages = [(1, [1, 2])]
    _fill(passages, {1: src}, set(), 20, 60)
    assert passages == [(1, [1, 2])]  # "The four key flaws of significance:" needs its list
    other = ["First point here, said plainly.", "Second point, already quoted elsewhere."]
    src2 = Source(2, None, other, np.zeros((2, 3)))  # type: ignore[arg-type]
    passages = [(2, [0])]
    _fill(passages, {2: src2}, {"second point, already quoted elsewhere."}, 5, 60)
    assert passages == [(2, [0])]


def test_top3_similarity_counts_each_distinct_sentence_once():
    q = np.array([1.0, 0.0])
    vec = np.array([[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]])
    a = Source(1, None, ["Same sentence.", "Middle one.", "Far one."], vec)  # type: ignore[arg-type]
    b = Source(2, None, ["same  sentence.", "Other."], np.array([[0.9, 0.1], [0.7, 0.3]]))  # type: ignore[arg-type]
    assert mean_of_best(best_sentence_sims(q, [a, b]), 3) == pytest.approx((0.9 + 0.7 + 0.5) / 3)
    assert mean_of_best(best_sentence_sims(q, []), 3) == -1.0
    assert mean_of_best(best_sentence_sims(q, [a, b]), 1) == pytest.approx(0.9)  # the best alone


def test_the_readers_check_drops_a_supported_sentence_it_does_not_back():
    """A sentence copied from its source passes the verifier; with a second check (the reader's,
    `answer.reader_check`) it stands only when that check backs it too."""
    from rag.answer.sources import sources_from_texts
    from rag.answer.verify import Verifier

    text = "Researchers test many hypotheses until one passes the threshold of significance."

    def embed(texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), 3)) / np.sqrt(3)  # every sentence alike: support is by words

    sources = sources_from_texts([text], embed)
    seen: list[tuple[str, int]] = []

    def backs(sentence: str, source: Source) -> bool:
        seen.append((sentence, source.n))
        return "threshold" not in sentence

    assert Verifier(sources, embed, 0.6).check(f"{text} [1]") is not None
    checked = Verifier(sources, embed, 0.6, backs)
    assert checked.check(f"{text} [1]") is None
    assert checked.dropped == [f"{text} [1]"]
    assert seen == [(text, 1)]
    assert checked.check("Researchers test many hypotheses until one passes. [1]") is not None
