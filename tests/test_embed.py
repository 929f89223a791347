"""The ONNX query embedder must give the vectors the index was built with."""

import numpy as np

from rag.embed import OnnxEmbedder, count_tokens
from rag.evaluate import load_questions

from .conftest import ROOT


def test_onnx_and_sentence_transformers_agree_on_the_dev_questions(real_index, torch_embedder):
    questions = [q.question for q in load_questions(ROOT / "eval" / "questions.jsonl")]
    onnx = OnnxEmbedder(real_index / "query-embedder.onnx").embed(questions)
    torch = torch_embedder.embed(questions)
    assert onnx.dtype == np.float32 and onnx.shape == (len(questions), 384)
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    assert float((onnx * torch).sum(axis=1).min()) >= 0.999
    from rag.store import open_store

    store = open_store(real_index)
    for a, b in zip(onnx, torch, strict=True):
        top_a = [c.chunk_id for c, _ in store.search_dense(a, 10)]
        top_b = [c.chunk_id for c, _ in store.search_dense(b, 10)]
        assert top_a == top_b


def test_token_count_matches_the_model_tokenizer(torch_embedder):
    text = "Statistical significance is like the drive-thru of the research world."
    ids = torch_embedder.model.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert count_tokens(text) == len(ids)
