"""The reader: a small model of our own that reads a (question, passage) pair and says whether the
passage answers the question, and where.

The model is all-MiniLM-L6-v2 (the embedder's encoder) with its top layers fine-tuned on SQuAD 2.0
and two heads: an answerability logit from [CLS] and start/end logits over the passage's tokens. It
ships as one ONNX graph (int8 weights) in `models/reader/`, written by `training/reader/export.py`
from the checkpoint that `training/reader/train.py` trains; `models/reader/README.md` gives its
figures. It runs through onnxruntime with the embedder's own word-piece tokenizer (no torch).

Input is `[CLS] question [SEP] passage [SEP]`, at most MAX_TOKENS word pieces. A longer passage is
read in overlapping windows (STRIDE word pieces shared); its reading is that of its best window.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import RagError

MODEL_FILE = Path(__file__).resolve().parents[1] / "models" / "reader" / "reader.onnx"
MAX_TOKENS = 384  # what the model was trained on (training/reader/train.py --max-len)
STRIDE = 128  # word pieces two windows of a long passage share
MAX_ANSWER_TOKENS = 30  # the longest span considered, as in training
MAX_QUESTION_TOKENS = 64  # a longer question is cut, so every window keeps room for the passage


@dataclass(frozen=True)
class Reading:
    """What the reader makes of one passage.

    `score` is the probability that the passage answers the question; `start` and `end` are
    character offsets into the passage of the most likely answer span (present even when the
    score is low: it is then the best guess of an unlikely answer), and `text` is
    `passage[start:end]`.
    """

    score: float
    start: int
    end: int
    text: str


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


class Reader:
    """The ONNX reader, loaded on the first `read` (a missing file is a RagError then)."""

    def __init__(self, path: Path | None = None, threads: int = 0, max_tokens: int = MAX_TOKENS) -> None:
        self.path = Path(path or os.environ.get("RAG_READER_MODEL") or MODEL_FILE)
        self.threads = threads
        self.max_tokens = max_tokens
        self._session = None
        self._tokenizer = None
        self._plain = None  # the same tokenizer without truncation, to cut long questions

    def _load(self) -> None:
        if self._session is not None:
            return
        if not self.path.is_file():
            raise RagError(
                f"reader model not found at {self.path}: it ships in models/reader/ of rag's repository "
                "(reinstall rag from a checkout, or set RAG_READER_MODEL to the file)"
            )
        import onnxruntime as ort

        from rag.embed import read_tokenizer

        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own unexported error types
            raise RagError(
                f"{self.path}: cannot load the reader model ({e}); restore it from the repository"
            ) from None
        self._plain = read_tokenizer()
        tok = read_tokenizer()
        # Long passages become several windows; the question is never cut.
        tok.enable_truncation(self.max_tokens, stride=STRIDE, strategy="only_second")
        self._tokenizer = tok
        self._session = session

    def _windows(self, question: str, passages: Sequence[str]):
        """(passage index, encoding) for every window of every passage."""
        assert self._tokenizer is not None and self._plain is not None
        q = self._plain.encode(question, add_special_tokens=False)
        if len(q.ids) > MAX_QUESTION_TOKENS:
            question = question[: q.offsets[MAX_QUESTION_TOKENS - 1][1]]
        out = []
        for i, enc in enumerate(self._tokenizer.encode_batch([(question, p) for p in passages])):
            out.append((i, enc))
            out.extend((i, o) for o in enc.overflowing)
        return out

    def _run(self, enc) -> tuple[float, np.ndarray, np.ndarray]:
        """The answer logit and the start and end logits of one window, run alone: the int8
        graph quantises its activations with one scale per input tensor (onnxruntime's dynamic
        quantisation), so in a batch a passage's score would depend on the passages read beside
        it (0.35 to 0.42 for the same passage, measured). Batching saved 8 %."""
        assert self._session is not None
        feed = {
            "input_ids": np.asarray([enc.ids], dtype=np.int64),
            "token_type_ids": np.asarray([enc.type_ids], dtype=np.int64),
            "attention_mask": np.ones((1, len(enc.ids)), dtype=np.int64),
        }
        answer, start, end = self._session.run(["answer_logit", "start_logits", "end_logits"], feed)
        return float(np.asarray(answer)[0]), np.asarray(start)[0], np.asarray(end)[0]

    @staticmethod
    def _best_span(enc, start: np.ndarray, end: np.ndarray) -> tuple[int, int]:
        """Character offsets of the best passage span (start <= end, at most MAX_ANSWER_TOKENS)."""
        passage = [
            i
            for i, (t, s) in enumerate(zip(enc.type_ids, enc.special_tokens_mask, strict=True))
            if t == 1 and not s
        ]
        if not passage:
            return 0, 0
        p = np.asarray(passage)
        grid = start[p][:, None] + end[p][None, :]
        gap = p[None, :] - p[:, None]
        grid = np.where((gap >= 0) & (gap < MAX_ANSWER_TOKENS), grid, -np.inf)
        s, e = np.unravel_index(int(np.argmax(grid)), grid.shape)
        return enc.offsets[p[s]][0], enc.offsets[p[e]][1]

    def read(self, question: str, passages: Sequence[str]) -> list[Reading]:
        """One Reading per passage, in the order given."""
        if not passages:
            return []
        self._load()
        best: list[tuple[float, int, int] | None] = [None] * len(passages)
        for i, enc in self._windows(question, passages):
            logit, start, end = self._run(enc)
            current = best[i]
            if current is None or logit > current[0]:
                best[i] = (logit, *self._best_span(enc, start, end))
        out = []
        for passage, found in zip(passages, best, strict=True):
            assert found is not None
            logit, s, e = found
            out.append(Reading(_sigmoid(logit), s, e, passage[s:e]))
        return out
