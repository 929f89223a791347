"""What `rag eval` decides and writes, called as library functions: option checks, baselines
written and checked, the answer evaluation's calibration, report and tables. Fakes keep every
expected value exact; the real command is exercised in test_evaluation_cli.py."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from rag import abstain
from rag.errors import RagError
from rag.evaluation import answers, baselines, runs, workflow
from rag.evaluation.beir import beir_index
from rag.evaluation.dev import run_dev_suite
from rag.evaluation.tables import fmt, markdown_table
from tests.eval_fixtures import QUESTIONS, RANKINGS, FakeRetriever, fake_record

# ------------------------------------------------------------------------------------- tables


def test_markdown_table_aligns_each_column_as_told():
    table = markdown_table(["name", "score", ""], [["a", "0.500", "▲"], ["b", "1.000", ""]], "lrl")
    assert table == "| name | score |  |\n|---|---:|---|\n| a | 0.500 | ▲ |\n| b | 1.000 |  |"
    with pytest.raises(ValueError, match="align 'lr' does not give l or r for each of 3 columns"):
        markdown_table(["a", "b", "c"], [], "lr")


def test_cells_show_floats_to_three_places_and_missing_values_as_a_dash():
    assert [fmt(0.12345), fmt(3), fmt(None), fmt(float("nan")), fmt("x")] == ["0.123", "3", "–", "–", "x"]


# ------------------------------------------------------------------------------------- options


def test_comma_separated_names_are_checked_against_the_known_ones():
    assert workflow.retriever_names(" dense, bm25,,") == ["dense", "bm25"]
    with pytest.raises(RagError) as e:
        workflow.retriever_names("dense,sparse")
    assert str(e.value) == "--retriever: unknown retriever 'sparse' (use dense, bm25, hybrid, reader)"
    assert workflow.answer_modes("extractive") == ["extractive"]
    with pytest.raises(RagError) as e:
        workflow.answer_modes("llm,abstractive")
    assert str(e.value) == "--modes: unknown mode 'abstractive' (use llm, extractive)"


@pytest.mark.parametrize(
    ("refs", "compare", "test", "name", "message"),
    [
        ([], False, "anova", None, "--test: unknown test 'anova' (use randomization, ttest)"),
        (
            ["old"],
            False,
            "ttest",
            None,
            "unexpected argument 'old': to compare saved runs, use rag eval --compare RUN ...",
        ),
        ([], True, "ttest", None, "--compare: name at least one saved run (a name in eval/runs, or a path)"),
        (
            [],
            False,
            "ttest",
            "bad name",
            "run name 'bad name': use letters, digits, '.', '_' or '-' (or give a path ending .json)",
        ),
    ],
)
def test_bad_options_are_refused_before_anything_runs(tmp_path, refs, compare, test, name, message):
    with pytest.raises(RagError) as e:
        workflow.check_options(refs, compare, test, name, tmp_path)
    assert str(e.value) == message


def test_a_missing_saved_run_is_refused_before_anything_runs_but_current_is_this_run(tmp_path):
    with pytest.raises(RagError, match=r"old.json: no such run \(none saved yet"):
        workflow.check_options(["current", "old"], True, "randomization", "new", tmp_path)
    runs.save_run(fake_record("old"), tmp_path, "old")
    workflow.check_options(["current", "old"], True, "randomization", "new", tmp_path)


def test_what_runs_depends_on_the_saved_runs_named_and_the_report_suffix():
    assert workflow.saved_only(["a", "b"], True) is True
    assert workflow.saved_only(["a", "current"], True) is False
    assert workflow.saved_only(["a"], True) is False
    assert workflow.saved_only(["a", "b"], False) is False
    assert workflow.html_path(Path("out/Report.HTML")) == Path("out/Report.HTML")
    assert workflow.html_path(Path("out/report")) is None
    assert workflow.html_path(None) is None


# ------------------------------------------------------------------------------------- baselines


def test_a_written_baseline_passes_its_own_check(tmp_path):
    result = run_dev_suite(FakeRetriever(), QUESTIONS, list(RANKINGS), k=10)
    record = fake_record("now")
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    baseline, baseline_run = baselines.write(result, record, tmp_path, runs_dir)
    assert (baseline, baseline_run) == (tmp_path / "baseline.json", runs_dir / "baseline.json")
    assert baselines.paths(tmp_path, runs_dir, beir=False) == (baseline, baseline_run)
    assert json.loads(baseline.read_text()) == baselines.baseline_from(result)
    saved = runs.load_run("baseline", runs_dir)
    assert saved["name"] == "baseline" and saved["details"] == {}
    assert saved["retrievers"] == record["retrievers"]
    problems, passed, warning = baselines.check(result, record, baseline, baseline_run, "randomization")
    assert problems == [] and warning is None
    assert passed == "check passed: no ndcg@10 significantly worse than baseline.json by more than 0.02"


def test_without_a_baseline_run_the_tolerance_alone_decides(tmp_path):
    result = run_dev_suite(FakeRetriever(), QUESTIONS, ["dense"], k=10)
    baseline = tmp_path / "baseline.json"
    base = baselines.baseline_from(result)
    base["retrievers"]["dense"]["evidence"] += 0.05
    baseline.write_text(json.dumps(base))
    problems, passed, warning = baselines.check(result, {}, baseline, tmp_path / "none.json", "ttest")
    have = result["retrievers"]["dense"]["evidence"]["ndcg@10"]
    assert problems == [
        f"dense evidence ndcg@10 fell to {have:.3f} from baseline {have + 0.05:.3f} (tolerance 0.02)"
    ]
    assert warning == f"no {tmp_path / 'none.json'}: checking means against the tolerance only"
    assert passed == "check passed: no headline metric fell beyond the tolerance"


def test_a_missing_baseline_file_says_how_to_write_one(tmp_path):
    with pytest.raises(RagError) as e:
        baselines.check_answer_baseline({"modes": {}}, tmp_path / "baseline-answers.json")
    assert str(e.value) == (
        f"{tmp_path / 'baseline-answers.json'}: no baseline; write one with "
        "`rag eval --answers --write-baseline`"
    )


# ------------------------------------------------------------------------------------- answers


def _row(qid: str, type_: str, answerable: bool, abstained: bool, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": qid,
        "type": type_,
        "answerable": answerable,
        "abstained": abstained,
        "mode": "llm",
        "cited": [] if abstained else ["u"],
        "cited_relevant": 0 if abstained or not answerable else 1,
        "sentences": 0 if abstained else 2,
        "supported": 0 if abstained else 2,
        "words": 0 if abstained else 10,
        "gold_recall": None if abstained else 0.5,
        "seconds": 1.0,
        "first_token": None,
    }
    return {**row, **kw}


ROWS = [
    _row("q1", "factoid", True, False),
    _row("q2", "factoid", True, False, mode="extractive", supported=1),
    _row("q3", "unanswerable", False, True),
    _row("q4", "unanswerable", False, False),
    _row("q5", "followup", True, True),
]


def test_a_mode_is_summarised_overall_without_follow_ups_and_by_type():
    m = answers.mode_summary("llm", ROWS)
    assert m["n"] == 4 and m["answerable"] == 2
    assert m["answer_rate"] == 1.0 and m["abstain_rate"] == 0.5
    assert m["citation_precision"] == 1.0 and m["supported_share"] == 5 / 6
    assert m["llm_fell_back"] == 1 and m["llm_survived"] == 0.5
    assert list(m["by_type"]) == ["factoid", "unanswerable", "followup"]
    assert m["by_type"]["followup"]["answer_rate"] == 0.0
    assert math.isnan(m["by_type"]["factoid"]["abstain_rate"])
    assert "llm_fell_back" not in answers.mode_summary("extractive", ROWS)
    table = answers.answer_table({"modes": {"llm": m}})
    assert table.endswith(
        "llm: the model's own text survived verification in 50% of the answered answerable "
        "questions; in 1 every sentence it wrote was dropped and the answer quotes the sources instead."
    )


def test_answer_tables_are_markdown_with_cross_validated_columns_when_present():
    result = {"modes": {"extractive": answers.mode_summary("extractive", ROWS[:1])}}
    head = "| mode | type | n | " + " | ".join(answers.ANSWER_COLUMNS)
    # refused, evidence shown and leading (none located in these rows) and the median words follow
    row = "| extractive | all | 1 | 1.000 | – | 0.000 | 1.000 | 1.000 | 0.500 | 10.000 | 1.000"
    row += " | 0.000 | – | – | 10.000"
    assert answers.answer_table(result).splitlines() == [
        head + " |",
        "|---|---|" + "---:|" * 13,
        row + " |",
        row.replace("| all |", "| factoid |") + " |",
    ]
    result["cross_validated"] = {"all": {"answer_rate": 0.75, "abstain_rate": float("nan")}}
    lines = answers.answer_table(result).splitlines()
    assert lines[0] == head + " | cv answer_rate | cv abstain_rate |"
    assert lines[2] == row + " | 0.750 | – |" and lines[3].endswith("| – | – | 10.000 | – | – |")


def test_abstention_variants_and_the_coverage_curve_as_tables():
    variants = {
        "one": {"answer_rate": 0.9, "answer_rate_sd": 0.01, "abstain_rate": 0.8, "abstain_rate_sd": 0.1}
    }
    assert answers.variants_table(variants) == (
        "| abstention model | cv answer rate | cv abstention |\n|---|---:|---:|\n"
        "| one | 0.900 ± 0.010 | 0.800 ± 0.100 |"
    )
    # q1 is answerable, supported and cites a relevant source; q3 and q4 are unanswerable
    curve = answers.precision_coverage(ROWS, {"q1": 0.9, "q3": 0.2, "q4": 0.6})
    points = {c["threshold"]: (c["coverage"], c["precision"]) for c in curve}
    assert list(points) == pytest.approx([t / 10 for t in range(10)])
    assert points[0.0] == (1.0, 1 / 3) and points[0.3] == (2 / 3, 0.5) and points[0.7] == (1 / 3, 1.0)
    assert answers.coverage_table(curve[2:4]) == (
        "| threshold | coverage | precision |\n|---:|---:|---:|\n"
        "| 0.2 | 1.000 | 0.333 |\n| 0.3 | 0.667 | 0.500 |"
    )


def test_a_fitted_model_is_saved_naming_its_questions_file_and_hash(tmp_path):
    questions = tmp_path / "dev.jsonl"
    questions.write_text('{"id": "q1"}\n')
    rows = [{s: 0.0 for s in abstain.SIGNALS} | {"sentence_cos": v} for v in (0.1, 0.2, 0.8, 0.9)]
    model = abstain.fit(abstain.matrix(rows), np.array([0.0, 0.0, 1.0, 1.0]), ["sentence_cos"])
    model.provenance = {"variant": "similarity only + names veto"}
    answers.save_model(model, questions, tmp_path / "abstention.json")
    loaded = abstain.AbstentionModel.load(tmp_path / "abstention.json")
    assert loaded.provenance == {
        "variant": "similarity only + names veto",
        "questions_file": "dev.jsonl",
        "questions_sha256": hashlib.sha256(b'{"id": "q1"}\n').hexdigest()[:16],
    }
    assert loaded.weights == model.weights and loaded.threshold == model.threshold


def test_the_answer_report_holds_every_row_in_json_and_the_three_tables_in_markdown(tmp_path):
    result = {
        "kind": "answers",
        "modes": {"extractive": answers.mode_summary("extractive", ROWS)},
        "abstention_variants": {
            "one": {"answer_rate": 1.0, "answer_rate_sd": 0.0, "abstain_rate": 0.5, "abstain_rate_sd": 0.0}
        },
        "precision_coverage": {
            "mode": "extractive",
            "curve": [{"threshold": 0.5, "coverage": 1.0, "precision": 0.5}],
        },
    }
    result["table"] = answers.answer_table(result)
    answers.write_answer_report(result, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "answers.json").read_text())["modes"]["extractive"]["rows"] == ROWS
    table, variants, curve = answers.summary_sections(result)
    assert (tmp_path / "out" / "answers.md").read_text() == (
        f"# Answer evaluation\n\n{table}\n\n## Abstention models (cross-validated)\n\n{variants}\n\n"
        f"## Precision and coverage of the abstention score (extractive, out of fold)\n\n{curve}\n"
    )
    slim = answers.slim_answers(result)
    assert "rows" not in slim["modes"]["extractive"] and "rows" in result["modes"]["extractive"]
    assert slim["modes"]["extractive"]["n"] == 4


def test_answer_baseline_is_written_and_a_fall_beyond_tolerance_is_reported(tmp_path):
    result = {
        "git_commit": "abc",
        "questions": 5,
        "modes": {"extractive": answers.mode_summary("extractive", ROWS)},
        "cross_validated": {"all": {"answer_rate": 0.9, "abstain_rate": 0.6}},
    }
    path = baselines.write_answers(result, tmp_path)
    assert path == tmp_path / "baseline-answers.json"
    assert baselines.check_answer_baseline(result, path) == []
    worse = copy.deepcopy(result)
    worse["modes"]["extractive"]["answer_rate"] = 0.5
    worse["cross_validated"]["all"]["abstain_rate"] = 0.59  # within the tolerance of 0.02
    assert baselines.check_answer_baseline(worse, path) == [
        "extractive answer_rate fell to 0.500 from baseline 1.000 (tolerance 0.02)"
    ]


# ------------------------------------------------------------------------------------- BEIR


def test_a_built_beir_index_in_the_cache_is_reused_without_reading_the_corpus(tmp_path):
    from rag.config import load_settings
    from rag.evaluation.beir import BeirData
    from rag.index import identity
    from rag.stores import Changes, open_store

    settings = load_settings(environ={})
    data = BeirData({}, {}, {}, "f00d")
    ident = hashlib.sha256(json.dumps(identity(settings), sort_keys=True).encode()).hexdigest()[:8]
    cached = tmp_path / f"beir-f00d-{ident}"
    store = open_store(cached, create=True)
    with store.writing():
        store.commit(Changes(), {"embedder": {"name": "test", "dimension": 4}, "index_kind": "flat"})
    store.close()
    assert beir_index(data, settings, tmp_path) == cached
    # not rebuilt: the manifest is still the one committed above
    store = open_store(cached)
    assert store.manifest()["embedder"] == {"name": "test", "dimension": 4}
    store.close()
    # a half-made cache (a folder without the store's files) is built again
    half = tmp_path / "half"
    (half / f"beir-beef-{ident}").mkdir(parents=True)
    (half / f"beir-beef-{ident}" / "stray").touch()
    path = beir_index(BeirData({}, {}, {}, "beef"), settings, half)
    store = open_store(path)
    assert store.manifest()["embedder"]["name"] == settings.embed.model
    store.close()
