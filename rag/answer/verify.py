"""Verification: every sentence the model writes is scored against the source it cites (or,
citing none, against each source shown). Unsupported sentences, sentences that turn their
source around, and citations of sources the model was not shown are removed before anyone sees
them. Grounding never relies on the model obeying its instructions.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from rag.answer.facts import facts, mentions, searchable
from rag.answer.sources import EmbedFn, is_instruction
from rag.answer.types import Sentence, Source
from rag.text import CONTENT_STOPWORDS, DETERMINERS, NEGATIONS, content_words, split_sentences

CITE_RE = re.compile(r"\[(\d{1,3})\]")
_FLIP_RE = re.compile(
    r"\b(?:instead|should(?:n't| not)? have|rather than|wrongly|incorrectly|mistakenly|falsely"
    r"|erroneously|failed to|fails to|fail to|contrary to|opposite|unlike)\b",
    re.IGNORECASE,
)


def verify(
    draft: str,
    sources: list[Source],
    embed: EmbedFn,
    min_support: float,
    backs: Callable[[str, Source], bool] | None = None,
) -> tuple[list[Sentence], list[str]]:
    """Keep the draft's sentences that their cited source supports; drop the rest."""
    checker = Verifier(sources, embed, min_support, backs)
    for sent in draft_sentences(draft):
        checker.check(sent)
    return checker.kept, checker.dropped


class Verifier:
    """Checks a draft one sentence at a time, as the model writes it, so that only sentences
    that stand are ever shown; remembers what it kept and dropped."""

    def __init__(
        self,
        sources: list[Source],
        embed: EmbedFn,
        min_support: float,
        backs: Callable[[str, Source], bool] | None = None,
    ) -> None:
        self.by_n = {s.n: s for s in sources}
        self.backs = backs  # a second check of a supported sentence against its source (the reader)
        self.embed = embed
        self.min_support = min_support
        self.titles = set().union(*(content_words(s.hit.chunk.title) for s in sources))
        self.seen: set[frozenset[str]] = set()
        self.kept: list[Sentence] = []
        self.dropped: list[str] = []

    def check(self, sent: str) -> Sentence | None:
        """The sentence (citations kept only where they support it) when it stands, else None."""
        text = " ".join(CITE_RE.sub("", sent).split())
        words = frozenset(content_words(text))
        # Fragments, repeats, echoes of a title and questions state nothing a source could
        # support.
        if len(words) < 3 or words in self.seen or words <= self.titles or text.rstrip().endswith("?"):
            self.dropped.append(sent)
            return None
        self.seen.add(words)
        vec = self.embed([text])[0]
        cited = [int(n) for n in CITE_RE.findall(sent)]
        valid = [n for n in dict.fromkeys(cited) if n in self.by_n]  # invented numbers go
        candidates = valid or list(self.by_n)
        scored = [(support(text, vec, self.by_n[n]), n) for n in candidates]
        best, n = max(scored)
        # The reader's check (`backs`) runs last: only on a sentence the cheap checks let through.
        if (
            best < self.min_support
            or is_instruction(text)
            or flips(text, self.by_n[n])
            or (self.backs is not None and not self.backs(text, self.by_n[n]))
        ):
            self.dropped.append(sent)
            return None
        keep = [m for sc, m in scored if sc >= self.min_support] if valid else [n]
        self.kept.append((text, keep, best))
        return self.kept[-1]


def draft_sentences(draft: str) -> list[str]:
    """Sentences of a model's draft, each keeping the citations written just after its full stop
    ("It is so. [2]" is one sentence citing 2)."""
    out: list[str] = []
    for piece in split_sentences(draft):
        lead = re.match(r"^((?:\s*\[\d{1,3}\])+)[\s.,;:]*", piece)
        if lead and out:
            out[-1] = f"{out[-1]} {lead.group(1).strip()}"
            piece = piece[lead.end() :]
        if CITE_RE.sub("", piece).strip(" .,;:"):
            out.append(piece.strip())
    return out


def support(text: str, vec: np.ndarray, source: Source) -> float:
    """How well `source` supports a sentence, in [0, 1].

    Zero when the sentence states a number or a name the source does not contain. Otherwise
    the mean of two signals, each at the best-matching source sentence: cosine similarity of the
    embeddings (meaning) and the share of the sentence's content words found in the source
    (wording). A sentence copied from the source scores 1.
    """
    words = content_words(text)
    if not words or source.vectors.size == 0:
        return 0.0
    whole_text = searchable(" ".join(source.sentences))
    if any(not mentions(whole_text, f) for f in facts(text)):
        return 0.0
    sims = source.vectors @ vec
    src_words = content_words(whole_text)
    whole = len(words & src_words) / len(words)
    best = 0.0
    for i, sent in enumerate(source.sentences):
        local = len(words & content_words(sent)) / len(words)
        best = max(best, 0.5 * float(sims[i]) + 0.5 * max(local, 0.8 * whole))
    return min(1.0, best)


def _negated(text: str) -> bool:
    words = re.findall(r"[a-z']+", searchable(text))
    return any(w in NEGATIONS or w.endswith("n't") for w in words)


def flips(text: str, source: Source) -> bool:
    """Whether a sentence turns its source around while sharing its words: compared with the
    source sentence it overlaps most, it adds or drops a negation, adds a reversal ("instead",
    "should have", "rather than", "wrongly", ...), or has a subject that sentence lacks."""
    words = content_words(text)
    if not source.sentences or not words:
        return False
    i = max(range(len(source.sentences)), key=lambda j: len(words & content_words(source.sentences[j])))
    near = " ".join(source.sentences[max(0, i - 1) : i + 2])
    best = source.sentences[i]
    if _negated(text) != _negated(best):
        return True
    if any(m.group(0).lower() not in near.lower() for m in _FLIP_RE.finditer(text)):
        return True
    # The subject: the first word that is not a determiner or stop word.
    lead = next(
        (
            w
            for w in re.findall(r"[a-z0-9]+", text.lower())
            if w not in CONTENT_STOPWORDS and w not in DETERMINERS
        ),
        "",
    )
    return bool(lead) and not content_words(lead) <= content_words(near)
