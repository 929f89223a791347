"""The shipped reader model (models/reader/reader.onnx) on a hand-written passage whose answer is known."""

from rag.reader import MODEL_FILE, Reader


def test_shipped_reader_finds_the_answer_and_prefers_the_passage_that_holds_it():
    assert MODEL_FILE.is_file()
    answering = (
        "The Eiffel Tower is a wrought-iron lattice tower in Paris. It was designed by the engineering "
        "company of Gustave Eiffel and completed in 1889 as the entrance to the World's Fair."
    )
    unrelated = (
        "Bananas are a good source of potassium. They grow in tropical regions and are usually "
        "harvested while still green."
    )
    good, bad = Reader().read("In what year was the Eiffel Tower completed?", [answering, unrelated])
    assert "1889" in good.text and answering[good.start : good.end] == good.text
    assert good.score > bad.score
    assert good.score > 0.5 > bad.score
