"""rag.reader around a fake ONNX graph whose answer is exact: it "answers" wherever the passage holds
the word piece `paris` (start and end logits high on it, answer logit +2 per occurrence, -2 without)."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from rag.embed import read_tokenizer
from rag.errors import RagError
from rag.reader import MAX_TOKENS, Reader, Reading


@pytest.fixture(scope="module")
def fake_model(tmp_path_factory):
    target = read_tokenizer().token_to_id("paris")
    dims = ["batch", "tokens"]
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, dims)
        for n in ("input_ids", "token_type_ids", "attention_mask")
    ]
    outputs = [
        helper.make_tensor_value_info("answer_logit", TensorProto.FLOAT, ["batch"]),
        helper.make_tensor_value_info("start_logits", TensorProto.FLOAT, dims),
        helper.make_tensor_value_info("end_logits", TensorProto.FLOAT, dims),
    ]
    c = helper.make_tensor
    nodes = [
        helper.make_node("Constant", [], ["target"], value=c("t", TensorProto.INT64, [], [target])),
        helper.make_node("Constant", [], ["ten"], value=c("ten", TensorProto.FLOAT, [], [10.0])),
        helper.make_node("Constant", [], ["four"], value=c("four", TensorProto.FLOAT, [], [4.0])),
        helper.make_node("Constant", [], ["two"], value=c("two", TensorProto.FLOAT, [], [2.0])),
        helper.make_node("Constant", [], ["axis"], value=c("axis", TensorProto.INT64, [1], [1])),
        helper.make_node("Equal", ["input_ids", "target"], ["hit"]),
        helper.make_node("Cast", ["hit"], ["hitf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["hitf", "ten"], ["start_logits"]),
        helper.make_node("Mul", ["hitf", "ten"], ["end_logits"]),
        helper.make_node("ReduceSum", ["hitf", "axis"], ["count"], keepdims=0),
        helper.make_node("Mul", ["count", "four"], ["scaled"]),
        helper.make_node("Sub", ["scaled", "two"], ["answer_logit"]),
    ]
    graph = helper.make_graph(nodes, "fake_reader", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path_factory.mktemp("reader") / "reader.onnx"
    onnx.save(model, str(path))
    return path


def test_span_offsets_map_back_to_the_passage_text(fake_model):
    passages = ["The capital of France is Paris, on the Seine.", "PARIS, at last!", "Rome is elsewhere."]
    readings = Reader(fake_model).read("Which city is the capital?", passages)
    for p, r in zip(passages, readings, strict=True):
        assert isinstance(r, Reading)
        assert r.text == p[r.start : r.end]
    assert [r.text for r in readings[:2]] == ["Paris", "PARIS"]
    assert readings[0].start == passages[0].index("Paris")


def test_readings_come_back_in_the_order_of_the_passages(fake_model):
    # Many passages of mixed lengths, some answering.
    passages = [
        ("filler words " * (i % 7)) + ("Paris is here." if i % 3 == 0 else "Nothing here.") for i in range(17)
    ]
    readings = Reader(fake_model).read("Where?", passages)
    assert len(readings) == len(passages)
    for i, r in enumerate(readings):
        if i % 3 == 0:
            assert r.score == pytest.approx(1 / (1 + np.exp(-2.0)), abs=1e-6)
            assert r.text == "Paris"
        else:
            assert r.score == pytest.approx(1 / (1 + np.exp(2.0)), abs=1e-6)


def test_a_passage_longer_than_the_window_is_read_to_its_end(fake_model):
    passage = "word " * (MAX_TOKENS * 2) + "and finally Paris."
    (r,) = Reader(fake_model).read("Where?", [passage])
    assert r.text == "Paris" and passage[r.start : r.end] == "Paris"
    assert r.score > 0.5


def test_no_passages_read_nothing_and_load_nothing(tmp_path):
    assert Reader(tmp_path / "absent.onnx").read("anything?", []) == []


def test_a_missing_model_file_is_a_one_line_rag_error(tmp_path):
    reader = Reader(tmp_path / "absent.onnx")  # loading is lazy: constructing never fails
    with pytest.raises(RagError) as err:
        reader.read("Who?", ["A passage."])
    assert "reader model not found" in str(err.value) and "\n" not in str(err.value)


def test_a_question_longer_than_the_window_is_cut_not_refused(fake_model):
    (r,) = Reader(fake_model).read("why " * (2 * MAX_TOKENS), ["It happened in Paris."])
    assert r.text == "Paris"


def test_a_passages_reading_does_not_depend_on_the_passages_read_with_it():
    """The shipped int8 graph, read alone and beside others of other lengths: the same reading."""
    passages = [
        "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy.",
        "Filler. " * 60,
        "Rollo was the Viking leader who founded Normandy.",
    ]
    reader = Reader()
    together = reader.read("Who founded Normandy?", passages)
    alone = [reader.read("Who founded Normandy?", [p])[0] for p in passages]
    assert together == alone
