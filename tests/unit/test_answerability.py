"""The external answerability benchmarks and the decision fitted across corpora, on tiny
hand-made data whose right answer is known exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag import abstain
from rag.answer.decision import decide
from rag.config import DecisionCosts
from rag.errors import RagError
from rag.evaluation import answerability as ab
from rag.evaluation import transfer
from rag.evaluation.beir import BeirData

SQUAD = {
    "data": [
        {
            "title": "Tiny_Town",
            "paragraphs": [
                {
                    "context": "Tiny Town was founded in 1850 by Ada Smith. It lies on the river Eel.",
                    "qas": [
                        {
                            "id": "a",
                            "question": "When was Tiny Town founded?",
                            "is_impossible": False,
                            "answers": [
                                {"text": "1850", "answer_start": 26},
                                {"text": "1850", "answer_start": 26},
                            ],
                        },
                        {
                            "id": "b",
                            "question": "When was Tiny Town abandoned?",
                            "is_impossible": True,
                            "answers": [],
                        },
                    ],
                }
            ],
        }
    ]
}


def test_squad_file_becomes_one_article_per_title_and_a_case_per_question(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(SQUAD))
    bench = ab.load_squad(path)
    assert [a.title for a in bench.articles] == ["Tiny Town"]
    assert bench.articles[0].text.startswith("Tiny Town was founded in 1850")
    assert [(c.id, c.answerable, c.gold, c.group) for c in bench.cases] == [
        ("a", True, ("1850",), "Tiny Town"),
        ("b", False, (), "Tiny Town"),
    ]
    path.write_text("{}")
    with pytest.raises(RagError, match="dev.json: not a SQuAD 2.0 file"):
        ab.load_squad(path)


def test_removal_takes_the_judged_documents_of_half_the_queries_out():
    data = BeirData(
        corpus={d: (f"title {d}", f"text {d}") for d in "abcdef"},
        queries={"1": "q1", "2": "q2", "3": "q3", "4": "q4"},
        qrels={"1": {"a": 1}, "2": {"b": 1}, "3": {"c": 1, "a": 1}, "4": {"d": 1}},
        fingerprint="f",
    )
    bench = ab.removal_benchmark(data, share=0.5, seed=0)
    unanswerable = {c.id for c in bench.cases if not c.answerable}
    kept_docs = {a.url.rsplit("/", 1)[-1] for a in bench.articles}
    assert len(bench.cases) == 4 and len(unanswerable) >= 2
    for c in bench.cases:
        judged = set(data.qrels[c.id])
        # answerable exactly when some judged document is still indexed
        assert c.answerable == bool(judged & kept_docs)
    assert {"e", "f"} <= kept_docs


def test_gold_containment_uses_squad_normalisation():
    assert ab.contains_gold("It was founded in 1850 [1].", ["1850"])
    assert ab.contains_gold("The Normans, of France.", ["the Normans"])
    assert not ab.contains_gold("In 18500 it grew.", ["1850"])
    assert ab.normalise_answer("The  Eel, river!") == "eel river"


def test_auc_counts_ties_as_half():
    assert ab.auc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert ab.auc([0.5, 0.5], [True, False]) == 0.5
    assert ab.auc([0.2, 0.9, 0.5, 0.1], [True, False, True, False]) == 0.5
    assert ab.auc([0.3], [True]) is None


def test_wh_word():
    assert ab.wh_word("How many people live there?") == "how many"
    assert ab.wh_word("In what country is Normandy located?") == "what"
    assert ab.wh_word("The Normans came from where?") == "other"


def _rows() -> list[dict]:
    rows = []
    for i, (outcome, ok, gold, words) in enumerate(
        [
            ("answered", True, True, 10),
            ("unsure", True, False, 30),
            ("abstained", True, None, 0),
            ("answered", False, None, 12),
            ("abstained", False, None, 0),
        ]
    ):
        rows.append(
            {
                "id": str(i),
                "answerable": ok,
                "type": "when",
                "outcome": outcome,
                "confidence": 0.9 - 0.2 * i,
                "signals": {"sentence_cos": 0.5},
                "missing": False,
                "words": words,
                "contains_gold": gold,
                "seconds": 0.1,
            }
        )
    return rows


def test_summary_gives_each_outcomes_share_per_kind_of_question():
    s = ab.summarise(_rows())
    assert s["answerable"] == {"answered": 1 / 3, "unsure": 1 / 3, "abstained": 1 / 3, "n": 3}
    assert s["unanswerable"] == {"answered": 0.5, "unsure": 0.0, "abstained": 0.5, "n": 2}
    assert s["unsure_share"] == 0.2
    assert s["contains_gold"] == 1.0 and s["contains_gold_shown"] == 0.5 and s["median_words"] == 10
    assert s["auc"]["confidence"] == 1.0  # every answerable one scores above every unanswerable one
    assert "| answerable (3) | 0.33 | 0.33 | 0.33 |" in ab.summary_table("tiny", s)


def test_cost_cuts_put_the_middle_in_unsure_only_when_unsure_is_cheap():
    p = np.array([0.1, 0.2, 0.45, 0.55, 0.8, 0.9])
    y = np.array([0, 0, 1, 0, 1, 1])
    ta, tu, cost = abstain.cost_cuts(p, y, DecisionCosts(unsure_answerable=0.1, unsure_unanswerable=0.1))
    assert 0.55 < ta <= 0.8 and 0.2 < tu <= 0.45  # the two middle questions are unsure
    ta, tu, _ = abstain.cost_cuts(p, y, DecisionCosts(unsure_answerable=0.9, unsure_unanswerable=0.9))
    assert ta == tu  # unsure costs about as much as being wrong: never used


def test_a_model_with_an_unsure_cut_gives_three_outcomes():
    model = abstain.AbstentionModel(
        ["sentence_cos"], [0.0], [1.0], [4.0], 0.0, threshold=0.7, unsure_threshold=0.4
    )
    outs = [decide({"sentence_cos": v}, [], model, 0.35).outcome for v in (0.5, 0.0, -0.5)]
    assert outs == ["answered", "unsure", "abstained"]
    assert decide({"sentence_cos": 0.5}, ["x"], model, 0.35).outcome == "abstained"


def test_fitting_across_corpora_weighs_each_corpus_alike_and_judges_the_others_unrefitted():
    rng = np.random.default_rng(0)

    def corpus(n: int, shift: float) -> list[dict]:
        y = rng.random(n) < 0.5
        return [
            {
                "id": f"{shift}-{i}",
                "answerable": bool(v),
                "group": f"{shift}-{i}",
                "signals": {
                    **dict.fromkeys(abstain.SIGNALS, 0.0),
                    "sentence_cos_top3": shift + 0.3 * v + rng.normal(0, 0.05),
                },
            }
            for i, v in enumerate(y)
        ]

    corpora = {"a": corpus(200, 0.2), "b": corpus(40, 0.2), "c": corpus(100, 0.2)}
    res = transfer.cross_fitted(corpora, ["a", "b"], ["sentence_cos_top3"], 1.0, DecisionCosts())
    for name in "abc":
        assert res[name]["auc"] > 0.95 and res[name]["answerable_answered"] > 0.8
        assert res[name]["unanswerable_answered"] < 0.2
    table = transfer.transfer_table({"x": res}, ["a", "c"])
    assert table.splitlines()[2].startswith("| x | a |")


def test_llm_mode_rows_give_the_answer_lines_figures():
    rows = _rows()
    lines = [
        # (written, line as printed, its gold containment, first sentence's)
        (True, "1889", True, True),  # answered, answerable: a line that stood and holds the gold
        (True, "", None, False),  # unsure: not counted (answered questions only)
        (False, "", None, None),
        (True, "Paris", None, None),  # answered, unanswerable: stood, no gold to hold
        (False, "", None, None),
    ]
    for row, (written, line, gold, first) in zip(rows, lines, strict=True):
        row |= {
            "line_written": written,
            "line": line,
            "line_words": len(line.split()),
            "line_contains_gold": gold,
            "first_contains_gold": first,
        }
    rows[3]["signals"] |= {"line_decline": 0.9, "line_confidence": 0.2}
    rows[0]["signals"] |= {"line_decline": 0.1, "line_confidence": 0.8}
    s = ab.summarise(rows)
    li = s["line"]
    assert li["answered"] == 2 and li["written"] == 1.0 and li["kept_of_written"] == 1.0
    assert li["contains_gold"] == 1.0 and li["contains_gold_of_answered"] == 1.0
    assert li["first_contains_gold"] == 1.0 and li["median_words"] == 1
    # the model's refusal probability is judged only where a line was written, lower is answerable
    assert s["auc"]["line_decline"] == 1.0 and s["auc"]["line_confidence"] == 1.0
    assert "answer line (answered questions, 2): written 1.00" in ab.summary_table("tiny", s)


def test_extractive_rows_have_no_line_figures():
    assert "line" not in ab.summarise(_rows())


def test_a_benchmark_is_asked_in_one_mode():
    import typer

    from rag.cli.eval import benchmark_mode

    assert benchmark_mode(None) == "extractive" and benchmark_mode("llm") == "llm"
    with pytest.raises(typer.BadParameter, match="give one mode"):
        benchmark_mode("llm,extractive")
