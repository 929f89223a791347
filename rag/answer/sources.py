"""Retrieved chunks as sources: numbered, split into sentences, embedded once.

Article text is data. A sentence that reads as an instruction to a model ("ignore the previous
instructions ...") is withheld here, so it reaches neither the prompt nor an extractive answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from rag.answer.types import Source
from rag.retrieve import Hit
from rag.text import split_sentences

EmbedFn = Callable[[list[str]], np.ndarray]

_INJECTION_RE = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instructions?|prompts?|rules|directions)\b"
    r"|\b(system prompt|you are now|reply only with|respond only with|answer only with"
    r"|new instructions?)\b",
    re.IGNORECASE,
)
LIST_MARK_RE = re.compile(r"^(?:[*+-]|\d+\.|>)\s+")


def is_instruction(sentence: str) -> bool:
    """Whether a sentence reads as an instruction to a model."""
    return bool(_INJECTION_RE.search(sentence))


def sentence_key(sentence: str) -> str:
    """What makes two sentences the same one (overlapping chunks repeat sentences)."""
    return " ".join(LIST_MARK_RE.sub("", sentence).lower().split())


def read_sources(hits: list[Hit], embed: EmbedFn) -> list[Source]:
    """Numbered sources with their sentences (instruction-like ones withheld) and vectors; a
    hit with no sentence left is skipped."""
    out: list[Source] = []
    all_sents: list[str] = []
    for hit in hits:
        sents = [s for s in split_sentences(hit.chunk.text) if not is_instruction(s)]
        if not sents:
            continue
        out.append(Source(len(out) + 1, hit, sents, np.zeros((0, 0))))
        all_sents.extend(sents)
    if all_sents:
        vecs = embed(all_sents)
        pos = 0
        for s in out:
            s.vectors = vecs[pos : pos + len(s.sentences)]
            pos += len(s.sentences)
    return out


def sources_from_texts(texts: list[str], embed: EmbedFn) -> list[Source]:
    """Sources made from bare texts (evaluation re-scores printed sentences this way)."""
    from rag.stores import StoredChunk

    hits = [
        Hit(StoredChunk(str(i), "", "", "", "", None, "", t, 0, len(t), 0, False), 0.0, i + 1, "")
        for i, t in enumerate(texts)
    ]
    return read_sources(hits, embed)
