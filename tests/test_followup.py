"""Follow-up questions: which lean on the previous turn, and what is asked for them."""

from __future__ import annotations

import json

import pytest

from rag.followup import Turn, contextualise, is_followup, resolve

from .conftest import ROOT


@pytest.mark.parametrize(
    "question",
    [
        "why is it a scam?",
        "why?",
        "how so?",
        "and NDCG?",
        "what about python?",
        "But is that always true?",
        "what does he recommend?",
        "how does it work?",
        "what are its main limitations?",
        "who wrote those?",
        "how much faster",
        "can i reuse it in another model",
    ],
)
def test_questions_that_lean_on_the_previous_turn(question):
    assert is_followup(question)


@pytest.mark.parametrize(
    "question",
    [
        "What is p-hacking?",
        "NDCG?",
        "p-hacking",
        "What does layer normalization do to its inputs?",  # "its" points inside the question
        "Is it worth learning Rust for data science?",
        "What is the threshold that physics uses?",
        "Who won the 2018 World Cup?",
        "how many parameters does GPT-3 have",
        "",
    ],
)
def test_questions_that_stand_alone(question):
    assert not is_followup(question)


def test_no_development_question_is_taken_for_a_follow_up():
    """Every question in the development set was written to stand alone."""
    with open(ROOT / "eval" / "questions.jsonl", encoding="utf-8") as f:
        questions = [json.loads(line)["question"] for line in f if line.strip()]
    assert questions and [q for q in questions if is_followup(q)] == []


def test_contextualise_appends_the_previous_question_without_a_sentence_initial_capital():
    assert contextualise("why is it a scam?", "What is statistical significance?") == (
        "why is it a scam? what is statistical significance?"
    )
    assert contextualise("and why", "NDCG vs MAP?") == "and why? NDCG vs MAP?"  # a name keeps its case


def test_resolve_keeps_standalone_questions_and_chains_follow_ups():
    first = resolve("What is statistical significance?", None)
    assert first == Turn("What is statistical significance?", "What is statistical significance?", None)
    second = resolve("why is it a scam?", first)
    assert second.follows == "What is statistical significance?"
    assert second.query == "why is it a scam? what is statistical significance?"
    third = resolve("how so?", second)
    assert third.follows == "why is it a scam?" and "statistical significance" in third.query
    assert resolve("What is p-hacking?", third) == Turn("What is p-hacking?", "What is p-hacking?")
    assert resolve("why?", "  ") == Turn("why?", "why?")  # no previous question: nothing to add
