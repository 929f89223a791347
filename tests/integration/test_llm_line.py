"""The answer line with the real model: the packaged base, the shipped adapter over it (llama.cpp),
a hand-written passage whose answer is known."""

from __future__ import annotations

import pytest

from rag.answer.line import adapter_for, write_line
from rag.llm import load_llm, model_file

EVIDENCE = [
    (
        1,
        "Gustave Eiffel > Career",
        "Gustave Eiffel's company built bridges and railway viaducts across Europe.",
    ),
    (
        2,
        "Eiffel Tower > History",
        "The Eiffel Tower was completed in 1889 as the entrance arch of the World's Fair in Paris.",
    ),
]


@pytest.fixture(scope="module")
def tuned(settings, llm_works):
    path = model_file(settings.llm)
    adapter = adapter_for(path)
    if adapter is None:
        pytest.skip("models/llm/adapter.gguf is missing or was trained on another base file")
    return load_llm(path, settings.llm, lora_path=adapter)


def test_adapter_is_tied_to_the_packaged_base(settings, tmp_path):
    assert adapter_for(model_file(settings.llm)) is not None
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF" + bytes(64))
    assert adapter_for(other) is None


def test_the_line_answers_in_a_few_words_and_cites_its_source(tuned):
    line = write_line(tuned, "When was the Eiffel Tower completed?", EVIDENCE)
    assert line.kept, line
    assert line.cite == 2 and "1889" in line.text
    assert len(line.text.split()) <= 6
    assert not line.declined and line.p_decline < 0.5


def test_the_model_declines_what_the_sources_do_not_say(tuned):
    line = write_line(tuned, "Who won the 2018 World Cup?", EVIDENCE)
    assert not line.kept
    assert line.declined, line


def test_sources_are_shown_from_one_and_the_citation_mapped_back(tuned):
    # rag's evidence keeps its sources' own numbers (here 3 and 5); the model sees [1] and [2]
    evidence = [(3, *EVIDENCE[0][1:]), (5, *EVIDENCE[1][1:])]
    line = write_line(tuned, "When was the Eiffel Tower completed?", evidence, allow_decline=False)
    assert line.kept, line
    assert line.cite == 5 and "1889" in line.text
    assert 0.5 < line.confidence <= 1.0
