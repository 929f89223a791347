"""The reader as a torch module: all-MiniLM-L6-v2's BERT encoder, written out here so that the
lower layers can run once (cached) while the top layers train, plus two heads.

Input: [CLS] question [SEP] passage [SEP] (token type 0 for the question, 1 for the passage).
Outputs: `answer_logit` (from [CLS]: does the passage answer the question) and `start_logits`,
`end_logits` (one per token: where the answer span starts and ends).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

HIDDEN = 384
HEADS = 12
LAYERS = 6
FFN = 1536
EPS = 1e-12


class Layer(nn.Module):
    def __init__(self, dropout: float = 0.1) -> None:
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)
        self.attn_out = nn.Linear(HIDDEN, HIDDEN)
        self.ln1 = nn.LayerNorm(HIDDEN, eps=EPS)
        self.ffn_in = nn.Linear(HIDDEN, FFN)
        self.ffn_out = nn.Linear(FFN, HIDDEN)
        self.ln2 = nn.LayerNorm(HIDDEN, eps=EPS)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, _ = h.shape
        d = HIDDEN // HEADS

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, t, HEADS, d).transpose(1, 2)

        q, k, v = split(self.query(h)), split(self.key(h)), split(self.value(h))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + bias  # bias: [b, 1, 1, t], -1e4 on padding
        ctx = (self.drop(scores.softmax(-1)) @ v).transpose(1, 2).reshape(b, t, HIDDEN)
        h = self.ln1(h + self.drop(self.attn_out(ctx)))
        return self.ln2(h + self.drop(self.ffn_out(F.gelu(self.ffn_in(h)))))


class Reader(nn.Module):
    def __init__(self, dropout: float = 0.1) -> None:
        super().__init__()
        self.word = nn.Embedding(30522, HIDDEN)
        self.position = nn.Embedding(512, HIDDEN)
        self.token_type = nn.Embedding(2, HIDDEN)
        self.emb_ln = nn.LayerNorm(HIDDEN, eps=EPS)
        self.layers = nn.ModuleList(Layer(dropout) for _ in range(LAYERS))
        self.answer_head = nn.Sequential(
            nn.Linear(HIDDEN, HIDDEN), nn.Tanh(), nn.Dropout(dropout), nn.Linear(HIDDEN, 1)
        )
        self.span_head = nn.Linear(HIDDEN, 2)

    @staticmethod
    def attention_bias(mask: torch.Tensor) -> torch.Tensor:
        return (1.0 - mask[:, None, None, :].to(torch.float32)) * -10000.0

    def lower(self, ids: torch.Tensor, types: torch.Tensor, mask: torch.Tensor, n: int) -> torch.Tensor:
        """States after the embeddings and the first `n` layers."""
        pos = torch.arange(ids.shape[1], device=ids.device)[None, :]
        h = self.emb_ln(self.word(ids) + self.position(pos) + self.token_type(types))
        bias = self.attention_bias(mask)
        for layer in self.layers[:n]:
            h = layer(h, bias)
        return h

    def upper(self, h: torch.Tensor, mask: torch.Tensor, n: int):
        """Layers n..5 and the heads: (answer_logit [b], start_logits [b, t], end_logits [b, t])."""
        bias = self.attention_bias(mask)
        for layer in self.layers[n:]:
            h = layer(h, bias)
        answer = self.answer_head(h[:, 0]).squeeze(-1)
        span = self.span_head(h)
        return answer, span[..., 0], span[..., 1]

    def forward(self, ids: torch.Tensor, types: torch.Tensor, mask: torch.Tensor):
        return self.upper(self.lower(ids, types, mask, 0), mask, 0)


def load_pretrained(model_dir: Path, dropout: float = 0.1) -> Reader:
    """A Reader whose encoder holds the packaged all-MiniLM-L6-v2 weights (heads freshly initialised)."""
    from safetensors.torch import load_file

    w = load_file(str(model_dir / "model.safetensors"))
    m = Reader(dropout)
    sd = {
        "word.weight": w["embeddings.word_embeddings.weight"],
        "position.weight": w["embeddings.position_embeddings.weight"],
        "token_type.weight": w["embeddings.token_type_embeddings.weight"],
        "emb_ln.weight": w["embeddings.LayerNorm.weight"],
        "emb_ln.bias": w["embeddings.LayerNorm.bias"],
    }
    names = {
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
        "attn_out": "attention.output.dense",
        "ln1": "attention.output.LayerNorm",
        "ffn_in": "intermediate.dense",
        "ffn_out": "output.dense",
        "ln2": "output.LayerNorm",
    }
    for i in range(LAYERS):
        for ours, theirs in names.items():
            for p in ("weight", "bias"):
                sd[f"layers.{i}.{ours}.{p}"] = w[f"encoder.layer.{i}.{theirs}.{p}"]
    # The answer head starts from BERT's pooler (dense + tanh over [CLS]), as BERT classifiers do.
    sd["answer_head.0.weight"] = w["pooler.dense.weight"]
    sd["answer_head.0.bias"] = w["pooler.dense.bias"]
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    assert set(missing) == {
        "answer_head.3.weight",
        "answer_head.3.bias",
        "span_head.weight",
        "span_head.bias",
    }, missing
    return m
