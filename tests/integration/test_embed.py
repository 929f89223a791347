"""The ONNX embedder, written from the safetensors weights without torch, must give the vectors
sentence-transformers gives: it builds the index and embeds the queries."""

import json
import struct
import subprocess
import sys

import numpy as np
import pytest

from rag.embed import OnnxEmbedder, count_tokens, model_dir
from rag.errors import RagError
from rag.evaluation.questions import load_questions
from rag.ingest import ingest
from rag.onnx_model import read_safetensors
from tests.conftest import ROOT, SEED


def _agree(a: np.ndarray, b: np.ndarray, min_cosine: float) -> None:
    assert a.dtype == np.float32 and a.shape == b.shape
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert float((a * b).sum(axis=1).min()) >= min_cosine


def test_onnx_graph_and_sentence_transformers_agree_on_questions_and_chunks(
    real_index, onnx_embedder, torch_embedder, settings
):
    from rag.index import chunk_articles
    from rag.stores import open_store

    questions = [q.question for q in load_questions(ROOT / "eval" / "questions.jsonl")]
    onnx, torch = onnx_embedder.embed(questions), torch_embedder.embed(questions)
    _agree(onnx, torch, 0.999)
    store = open_store(real_index)
    for a, b in zip(onnx, torch, strict=True):
        top_a = [c.chunk_id for c, _ in store.search_dense(a, 10)]
        top_b = [c.chunk_id for c, _ in store.search_dense(b, 10)]
        assert top_a == top_b
    texts = [c.embed_text for cs in chunk_articles(ingest(SEED).articles, settings) for c in cs]
    assert len(texts) > 100
    _agree(onnx_embedder.embed(texts), torch_embedder.embed(texts), 0.999)


def test_length_buckets_keep_the_input_order(onnx_embedder):
    texts = [
        "short",
        "a much longer sentence about statistical significance and p-values " * 5,
        "mid length one",
    ]
    together = onnx_embedder.embed(texts)
    alone = np.concatenate([onnx_embedder.embed([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_batches_stay_within_the_token_budget(onnx_embedder):
    e = OnnxEmbedder.__new__(OnnxEmbedder)
    e.batch_size, e.token_budget = 4, 100
    lengths = [50, 10, 10, 30, 10, 10, 10]
    groups = e.batches(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        assert len(g) <= 4 and len(g) * max(lengths[i] for i in g) <= 100 or len(g) == 1


def test_the_model_is_written_once_to_the_shared_cache(tmp_path):
    code = (
        "import sys; from rag.embed import onnx_embedder; e = onnx_embedder(); "
        "print(e.path); print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    env = {"XDG_CACHE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    path, imported = first.stdout.splitlines()
    assert imported == "False False"
    assert path.startswith(str(tmp_path / "rag" / "models")) and "-fp32-" in path
    mtime = (tmp_path / "rag" / "models").joinpath(path.rsplit("/", 1)[1]).stat().st_mtime_ns
    again = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert again.stdout.splitlines()[0] == path
    assert (tmp_path / "rag" / "models").joinpath(path.rsplit("/", 1)[1]).stat().st_mtime_ns == mtime
    assert [p.name for p in (tmp_path / "rag" / "models").glob("*.onnx")] == [path.rsplit("/", 1)[1]]


def test_safetensors_reader_reads_the_packaged_weights_and_refuses_garbage(tmp_path):
    w = read_safetensors(model_dir() / "model.safetensors")
    assert w["embeddings.word_embeddings.weight"].shape == (30522, 384)
    assert w["encoder.layer.5.output.dense.weight"].dtype == np.float32
    header = json.dumps({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    ok = tmp_path / "ok.safetensors"
    ok.write_bytes(struct.pack("<Q", len(header)) + header + np.array([1.5, -2], "<f4").tobytes())
    assert read_safetensors(ok)["x"].tolist() == [1.5, -2.0]
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", 5) + b"{nope")
    with pytest.raises(RagError, match="bad.safetensors"):
        read_safetensors(bad)


def test_token_count_matches_the_model_tokenizer(torch_embedder):
    text = "Statistical significance is like the drive-thru of the research world."
    ids = torch_embedder.model.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert count_tokens(text) == len(ids)


def test_int8_vectors_stay_close_to_fp32(onnx_embedder, settings):
    """The int8 option (per-channel, 7-bit weights) keeps the vectors where fp32 puts them; the
    previous recipe (one scale per tensor, 8 bits) fell to cosine 0.90 on some chunks."""
    from rag.embed import onnx_embedder as make
    from rag.index import chunk_articles, embedder_identity
    from rag.onnx_model import QUANT_VERSION

    texts = [c.embed_text for cs in chunk_articles(ingest(SEED).articles, settings) for c in cs][:40]
    int8 = make("int8")
    assert f"-int8q{QUANT_VERSION}-" in int8.path.name
    cos = (int8.embed(texts) * onnx_embedder.embed(texts)).sum(axis=1)
    assert float(cos.min()) >= 0.98 and float(cos.mean()) >= 0.99
    assert embedder_identity("int8")["quantisation"] == QUANT_VERSION
    assert "quantisation" not in embedder_identity("fp32")
