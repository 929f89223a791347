"""The development set and its judgments: questions, evidence located in the clean text, and the
qrels and runs that the metrics score.

Judgments name articles and verbatim evidence quotes, never chunk ids. At run time each quote is
located in its article's clean text and a retrieved chunk earns the quote when it covers most of
it (so a chunk boundary that splits a quote still counts). Two levels are scored:

- evidence: each quote is a relevance unit, earned by the first retrieved chunk that holds it, and
  only within the first `word_budget` words of retrieved text (about what the LLM reads), so that
  bigger chunks cannot buy coverage;
- article: each relevant URL, at its first occurrence in the ranking.

Questions with no relevant article (unanswerable) have no qrels and are left out of these metrics,
as trec_eval does; answer evaluation handles them.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import RagError
from rag.stores import StoredChunk

QUESTION_TYPES = (
    "factoid",
    "paraphrase",
    "keyword",
    "explanation",
    "multi-article",
    "unanswerable",
    "user",  # typed the way users type: short, lower case, misspelled, "how do I ..."
    "followup",  # leans on `previous`, the question asked before it
    # Round 4: what Medium articles carry outside flat paragraphs (answerable or not)
    "structure",  # a subtitle, heading, list item or quote holds the answer
    "position",  # a place in a sequence: "the second flaw", "number one", "how many"
    "code",  # a line of code or an identifier in it
    "description",  # the article named by a description: "the SQL-indexing article"
    "definition",  # "What is X?" of an article about X
)


@dataclass(frozen=True)
class Evidence:
    """A verbatim quote from the article at `url` that answers the question, graded 1-3."""

    url: str
    grade: int
    quote: str


@dataclass(frozen=True)
class Question:
    """One development question: its gold answer, type and evidence (none if unanswerable)."""

    id: str
    question: str
    answer: str
    type: str
    relevant: tuple[Evidence, ...]
    previous: str = ""  # a follow-up's earlier question: its id or its text


def load_questions(path: Path) -> list[Question]:
    """Questions from a JSONL file; a malformed line is an error naming the file and line."""
    if not path.exists():
        raise RagError(f"{path}: questions file not found")
    out: list[Question] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            rel = tuple(
                Evidence(url=r["url"], grade=int(r["grade"]), quote=r["evidence"]) for r in d["relevant"]
            )
            q = Question(d["id"], d["question"], d.get("answer", ""), d["type"], rel, d.get("previous") or "")
        except (ValueError, KeyError, TypeError) as e:
            raise RagError(f"{path}:{n}: not a question object ({e})") from None
        if q.type not in QUESTION_TYPES:
            raise RagError(f"{path}:{n}: unknown type '{q.type}'")
        out.append(q)
    return out


# ---------------------------------------------------------------------------------------------
# Locating quotes in clean text


def _normalise_with_map(text: str) -> tuple[str, list[int]]:
    """Text reduced to comparable form, and for each kept character its offset in `text`.

    Drops markdown link targets, emphasis marks and backslashes, folds quotes and dashes,
    lower-cases and collapses whitespace, so that a quote copied from the page matches the
    cleaner's output.
    """
    text = re.sub(
        r"!?\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) + " " * (len(m.group(0)) - len(m.group(1))), text
    )
    out: list[str] = []
    pos: list[int] = []
    prev_space = True
    for i, ch in enumerate(text):
        c = unicodedata.normalize("NFKC", ch).lower()
        c = c.translate(_FOLD)
        for cc in c:
            if cc in "*_\\`":
                continue
            if cc.isspace():
                if prev_space:
                    continue
                cc = " "
                prev_space = True
            else:
                prev_space = False
            out.append(cc)
            pos.append(i)
    return "".join(out), pos


_FOLD = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "\u00a0": " "})


def normalise(text: str) -> str:
    """Text in the comparable form `locate` matches quotes in."""
    return _normalise_with_map(text)[0].strip()


def locate(quote: str, text: str) -> tuple[int, int] | None:
    """Character span of `quote` in `text`, tolerant of the cleaner's changes; None if absent."""
    norm, pos = _normalise_with_map(text)
    q = normalise(quote)
    if not q:
        return None
    i = norm.find(q)
    if i < 0:
        return None
    return pos[i], pos[i + len(q) - 1] + 1


# Building qrels and runs


@dataclass
class ResolvedQuestion:
    """A question with its evidence located: (url, start, end, grade) spans, and quotes not found."""

    question: Question
    spans: list[tuple[str, int, int, int]] = field(default_factory=list)  # url, start, end, grade
    missing: list[Evidence] = field(default_factory=list)


def resolve(questions: Sequence[Question], article_texts: dict[str, str]) -> list[ResolvedQuestion]:
    """Find each evidence quote in the clean text of its article (by URL)."""
    out = []
    for q in questions:
        rq = ResolvedQuestion(q)
        for ev in q.relevant:
            text = article_texts.get(ev.url)
            span = locate(ev.quote, text) if text is not None else None
            if span is None:
                rq.missing.append(ev)
            else:
                rq.spans.append((ev.url, span[0], span[1], ev.grade))
        out.append(rq)
    return out


def qrels_for(
    resolved: Sequence[ResolvedQuestion],
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Evidence-level and article-level qrels."""
    ev: dict[str, dict[str, int]] = {}
    art: dict[str, dict[str, int]] = {}
    for rq in resolved:
        if not rq.question.relevant:
            continue
        qid = rq.question.id
        ev[qid] = {f"{qid}#e{n}": g for n, (_, _, _, g) in enumerate(rq.spans)}
        for e in rq.question.relevant:
            art.setdefault(qid, {})
            art[qid][e.url] = max(art[qid].get(e.url, 0), e.grade)
        if not ev[qid]:
            del ev[qid]
    return ev, art


def _covers(chunk: StoredChunk, start: int, end: int) -> bool:
    """A chunk holds a quote when it covers at least half of the quote's characters."""
    overlap = min(chunk.end, end) - max(chunk.start, start)
    return overlap > 0 and overlap * 2 >= (end - start)


def run_for(
    rq: ResolvedQuestion, hits: Sequence[StoredChunk], word_budget: int = 1500
) -> tuple[dict[str, float], dict[str, float]]:
    """Evidence-level and article-level runs for one question's ranked chunks."""
    ev_run: dict[str, float] = {}
    art_run: dict[str, float] = {}
    earned: set[int] = set()
    words_before = 0
    score = 10_000.0
    for ch in hits:
        remaining = word_budget - words_before
        new = []
        for n, (url, s, e, _) in enumerate(rq.spans):
            if n in earned or url != ch.url or not _covers(ch, s, e):
                continue
            # where the quote starts inside this chunk, in words, decides if it is in budget
            offset_words = len(ch.text[: max(0, s - ch.start)].split())
            if offset_words < remaining:
                new.append(n)
        if new:
            for n in new:
                earned.add(n)
                ev_run[f"{rq.question.id}#e{n}"] = score
                score -= 1
        else:
            ev_run[f"chunk:{ch.chunk_id}"] = score
            score -= 1
        if ch.url not in art_run:
            art_run[ch.url] = 10_000.0 - len(art_run)
        words_before += len(ch.text.split())
    return ev_run, art_run


def judgments(resolved: Sequence[ResolvedQuestion]) -> dict[str, list[dict[str, Any]]]:
    """Each question's located evidence under its qrels id (`<qid>#e<n>`), with URL, grade, quote."""
    out: dict[str, list[dict[str, Any]]] = {}
    for rq in resolved:
        found = [e for e in rq.question.relevant if not any(e is m for m in rq.missing)]
        out[rq.question.id] = [
            {"id": f"{rq.question.id}#e{n}", "url": url, "grade": g, "quote": e.quote}
            for n, (e, (url, _, _, g)) in enumerate(zip(found, rq.spans, strict=True))
        ]
    return out


def asked_text(q: Question, by_id: dict[str, Question]) -> str:
    """What is asked for a question: a follow-up is read after the question before it exactly as
    `rag chat` and `rag ask --after` read it (rag.followup.resolve), so what is measured is what
    ships; one the follow-up rules do not recognise is asked alone, as it would be."""
    from rag.followup import resolve

    if q.type != "followup" or not q.previous:
        return q.question
    prev = by_id.get(q.previous)
    return resolve(q.question, prev.question if prev else q.previous).query
