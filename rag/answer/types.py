"""The records the answer path passes between its parts, and what `rag ask` returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rag.retrieve import Hit

ABSTAIN_MESSAGE = "The indexed articles do not answer this."
# What `ask` made of a question: an answer; the passages closest to it, shown as such because the
# evidence is not strong enough to call them an answer; or a refusal with its reason.
OUTCOMES = ("answered", "unsure", "abstained")

StreamFn = Callable[[str], None]
# A sentence of an answer: its text, the numbers of the sources it cites, and how well they
# support it (1.0 for a quotation).
Sentence = tuple[str, list[int], float]


@dataclass
class Source:
    """A retrieved chunk as the answer path reads it: numbered, split into sentences (those that
    read as instructions to a model withheld), one embedding per sentence."""

    n: int
    hit: Hit
    sentences: list[str]
    vectors: np.ndarray  # one row per sentence
    # What each sentence is: "text", "item" (of a list), "heading" or "code" (a line of code);
    # empty means all "text".
    kinds: list[str] = field(default_factory=list)

    def kind(self, i: int) -> str:
        return self.kinds[i] if self.kinds else "text"


@dataclass(frozen=True)
class Citation:
    n: int
    url: str
    title: str
    chunk_id: str
    text: str
    published: str | None


@dataclass
class Answer:
    question: str
    answer: str
    abstained: bool
    mode: str  # "llm", "extractive", or "metadata" (a question about the collection itself)
    citations: list[Citation]
    sentences: list[Sentence] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # model sentences removed as unsupported
    closest: list[Hit] = field(default_factory=list)
    evidence_score: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    draft: str = ""
    abstain_reason: str = ""
    confidence: float | None = None  # the abstention model's probability that this is answerable
    signals: dict[str, float] = field(default_factory=dict)
    outcome: str = "answered"  # one of OUTCOMES
    # --llm with our adapter: the model's checked line, and the quoted evidence printed under it
    # ("" when no line stood: `answer` is then the evidence alone).
    line: str = ""
    evidence: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "outcome": self.outcome,
            "abstained": self.abstained,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "abstain_reason": self.abstain_reason,
            "mode": self.mode,
            "citations": [
                {"n": c.n, "url": c.url, "title": c.title, "chunk_id": c.chunk_id, "text": c.text}
                for c in self.citations
            ],
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            # the answer line's own fields, when the model was asked for one (--llm, our adapter)
            **({"line": self.line, "evidence": self.evidence} if self.evidence else {}),
        }


def answer_json(ans: Answer, turn: Any = None) -> dict[str, Any]:
    """The answer as `rag ask --json` writes it and `rag serve` returns it: `Answer.as_dict`, plus
    the follow-up fields when `turn` (a rag.followup.Turn) leaned on an earlier question."""
    d = ans.as_dict()
    if turn is not None and turn.follows:
        d["question"] = turn.question
        d["follows"] = turn.follows  # the earlier question whose topic was added
        d["query"] = turn.query  # what was retrieved and answered
    return d
