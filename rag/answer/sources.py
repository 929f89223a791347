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
from rag.text import SENTENCE_END_RE

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


_FENCE_RE = re.compile(r"^\s*(```|~~~)")
_HEADING_LINE_RE = re.compile(r"^#{1,6}\s+\S")


# A line of code where the page lost its fences (Medium scrapes often do): a statement that
# opens a block or imports, an assignment or a bare call, or a line indented as a code block.
_CODE_LINE_RE = re.compile(
    r"^(?:import\s+[\w.]+|from\s+[\w.]+\s+import\s|def\s+\w+\(|class\s+\w+\s*[(:]|return\b|yield\b"
    r"|raise\s+\w|elif\s|else:|try:|except\b|finally:|(?:with|for|while|if)\s.*[()=_.\[<>].*:$|print\(|@\w+\b|#!"
    r"|[A-Za-z_][\w.\[\]'\"]*(?:,\s*[A-Za-z_]\w*)*\s*(?:[+\-*/%|&]?=)\s*[^\s=].*[)\]}'\"\w]$"
    r"|[A-Za-z_][\w.]*\(.*\)$)"
)


def looks_like_code(raw: str) -> bool:
    """Whether a line reads as code: indented as a markdown code block, or shaped as a
    statement (see _CODE_LINE_RE) with no sentence's full stop at its end."""
    line = raw.strip()
    if not line or line.endswith((".", "?", "!")) and not line.endswith("..."):
        return False
    if raw.startswith(("    ", "\t")) and not LIST_MARK_RE.match(line):
        return True
    return bool(_CODE_LINE_RE.match(line))


def units(text: str) -> list[tuple[str, str]]:
    """The quotable units of a chunk, in order, each with its kind: a "heading" line, a "code"
    line (each line of a fenced block, never split at a full stop), a list "item" (one line of a
    bulleted or numbered list, or of a quote), or a "text" sentence. Fence lines are dropped."""
    out: list[tuple[str, str]] = []
    in_code = False
    for raw in text.splitlines():
        line = raw.strip()
        if _FENCE_RE.match(line):
            in_code = not in_code
            continue
        if not line:
            continue
        if in_code or looks_like_code(raw):
            out.append((line, "code"))
            continue
        if _HEADING_LINE_RE.match(line):
            out.append((line, "heading"))
            continue
        mark = LIST_MARK_RE.match(line)
        kind = "item" if mark else "text"
        start = 0
        # An item's number ("1.") is no sentence of its own: splitting starts after it.
        for m in SENTENCE_END_RE.finditer(line, mark.end() if mark else 0):
            piece = line[start : m.end()].strip()
            if piece:
                out.append((piece, kind))
                kind = "text"  # an item's later sentences read as prose
            start = m.end()
        if line[start:].strip():
            out.append((line[start:].strip(), kind))
    return out


def read_sources(hits: list[Hit], embed: EmbedFn) -> list[Source]:
    """Numbered sources with their sentences (instruction-like ones withheld), the kind of each
    (see `units`) and their vectors; a hit with no sentence left is skipped."""
    out: list[Source] = []
    all_sents: list[str] = []
    for hit in hits:
        kept = [(s, k) for s, k in units(hit.chunk.text) if not is_instruction(s)]
        if not kept:
            continue
        sents = [s for s, _ in kept]
        out.append(Source(len(out) + 1, hit, sents, np.zeros((0, 0)), [k for _, k in kept]))
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
