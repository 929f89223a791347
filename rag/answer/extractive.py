"""Extractive answers: the one to three retrieved sentences closest to the question, each with
the context it needs to be read alone, continued by the sentences that follow it.

Sentences are scored by similarity to the question, plus the share of its content words they
hold, plus a bonus when they are the kind of sentence the question asks for (a definition for
"what is X", a number for "how many", a date for "when"). The best one is always used; a
runner-up only when it is close (and closer still from another article, which must earn its
citation).
"""

from __future__ import annotations

import re

import numpy as np

from rag.answer.sources import LIST_MARK_RE, sentence_key
from rag.answer.structure import asked_position, is_filler, plain, position_of
from rag.answer.types import Sentence, Source
from rag.config import AnswerSettings
from rag.text import content_words

KIND_BONUS = 0.08
# A heading or list item carrying the number a question asks about ("the second flaw": "Flaw 2:
# ..."), and one carrying another number; a bare heading is terse, so it must come closer than a
# sentence to be chosen.
PLACE_BONUS = 1.0
OTHER_PLACE = -0.1
HEADING_COST = 0.05
# A line of code that names what a question about code asks for ("which function ...").
CODE_BONUS = 0.2
_CODE_Q_RE = re.compile(
    r"\b(?:function|method|module|package|library|import|call|calls|command|class|code|syntax"
    r"|keyword|argument|parameter|variable|snippet|api|line)s?\b",
    re.IGNORECASE,
)
Passage = tuple[int, list[int]]  # (source number, sentence indexes in reading order)

_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*%?")
# A sentence that opens by pointing back ("This is why...", "In fact, such tests...") needs the
# one before it.
_REFERENCE_RE = re.compile(
    r"^(?:(?:in fact|however|but|and|so|also|thus|therefore|yet|still|instead|as a result)\W+)?"
    r"(?:this|these|those|such|that|it|its|they|them|their|he|she|his|her|the latter|the former"
    r"|both|neither|either)\b",
    re.IGNORECASE,
)
_DEFINE_Q_RE = re.compile(
    r"^\s*(?:what|who)(?:'s| is| are| was| were)\b"
    r"|\bwhat does .+ (?:mean|stand for)\b|\bdefin|\bmeaning of\b",
    re.IGNORECASE,
)
_COUNT_Q_RE = re.compile(
    r"\bhow (?:many|much|long|big|large|often|fast|far)\b|\bwhat (?:\w+ )?(?:threshold|percentage|"
    r"percent|rate|number|size|share|proportion|score|value|level|amount|cutoff|accuracy)\b",
    re.IGNORECASE,
)
_WHEN_Q_RE = re.compile(r"^\s*when\b|\bwhat (?:year|date|month|day|decade)\b|\bin which year\b", re.I)
_WHO_Q_RE = re.compile(
    r"^\s*(?:who|whom|whose)\b|\bby whom\b|\bwhich (?:person|people|group|king|leader)\b", re.I
)
_WHERE_Q_RE = re.compile(
    r"^\s*where\b|\b(?:in|from|to) (?:what|which) (?:country|city|region|place|state|town|area|part)\b",
    re.IGNORECASE,
)
_NAME_RE = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-zA-Z\-]+")
# Questions that ask for one fact (a date, a number, a name, a place): their answer leads with
# the sentence that holds it, without the explanation that follows.
FACTOID_KINDS = frozenset({"when", "count", "who", "where"})
_DEFINING_RE = re.compile(
    r"\b(?:is|are|was|were)\s+(?:a|an|the|when|what|how|one|simply|basically|essentially|called)\b"
    r"|\brefers? to\b|\bmeans?\b|\bis defined\b|\bstands? for\b|\bknown as\b|\bis called\b"
    r"|\bdescribes?\b|\bdenotes?\b",
    re.IGNORECASE,
)
_DATE_RE = re.compile(
    r"\b(?:1[5-9]\d\d|20\d\d)s?\b|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d",
    re.IGNORECASE,
)


def select(
    question: str, qvec: np.ndarray, sources: list[Source], settings: AnswerSettings, fill: bool = True
) -> list[Sentence]:
    """One to three passages, each a retrieved sentence with the context it needs, as
    (sentence, [source number], 1.0) in reading order. See `passage` for the context each
    sentence brings, and `fill_passages` for what follows it when `fill` is on. A question that
    asks for one fact (FACTOID_KINDS) gets `factoid_passages` passages, filled to
    `factoid_fill_words`."""
    by_n = {s.n: s for s in sources}
    unique = ranked_sentences(question, qvec, sources)
    if not unique:
        return []
    factoid = question_kind(question) in FACTOID_KINDS
    most = settings.factoid_passages if factoid else 3
    fill_words = (settings.factoid_fill_words if factoid else settings.fill_words) if fill else 0
    passages = pick_passages(unique, by_n, settings.max_answer_words, most, fill_words)
    # Reading order: by article (as first retrieved), then position in the article.
    first_seen: dict[str, int] = {}
    for s in sources:
        first_seen.setdefault(s.hit.chunk.article_id, s.n)

    def order(p: Passage) -> tuple[int, int, int]:
        ch = by_n[p[0]].hit.chunk
        return first_seen[ch.article_id], ch.start, p[1][0]

    # The passage that answers leads; the others follow in reading order.
    passages[1:] = sorted(passages[1:], key=order)
    return [(shown(by_n[n], j), [n], 1.0) for n, span in passages for j in span]


def shown(source: Source, i: int) -> str:
    """A sentence as an answer quotes it: a heading or list item without its markdown marks, a
    line of code between backticks."""
    sent, kind = source.sentences[i], source.kind(i)
    if kind == "code":
        return f"`{sent}`"
    if kind == "heading":
        return plain(sent)
    return LIST_MARK_RE.sub("", sent).replace("**", "")


def pick_passages(
    unique: list[tuple[float, int, int]],
    by_n: dict[int, Source],
    max_words: int,
    most: int = 3,
    fill_words: int = 0,
) -> list[Passage]:
    """Up to `most` passages from the ranked sentences, within the answer's word budget and
    without repeating a sentence, each continued (see `fill_passages`) while the answer is
    under `fill_words`."""
    best = unique[0][0]
    home = by_n[unique[0][1]].hit.chunk.article_id
    passages: list[Passage] = []
    used: set[str] = set()
    words = 0
    for score, n, i in unique[:6]:
        if len(passages) == most:
            break
        sents = by_n[n].sentences
        if passages:
            same = by_n[n].hit.chunk.article_id == home
            floor = (0.6 * best if same else best - 0.05) if len(passages) == 1 else best - 0.1
            if score < floor:
                continue
        span = passage(sents, i, by_n[n].kinds)
        if span is None:
            continue
        keys = [sentence_key(sents[j]) for j in span]
        if any(k in used for k in keys):
            span = [j for j, k in zip(span, keys, strict=True) if k not in used]
            if i not in span:
                continue
            keys = [sentence_key(sents[j]) for j in span]
        if all(by_n[n].kind(j) == "heading" for j in span):
            continue  # a heading whose text is quoted already says nothing more alone
        size = sum(len(sents[j].split()) for j in span)
        if passages and words + size > max_words:
            continue
        if not passages and size > max_words and len(span) > 1:
            span, keys, size = [i], [sentence_key(sents[i])], len(sents[i].split())  # the sentence alone
        passages.append((n, span))
        used.update(keys)
        words += size
    fill_passages(passages, by_n, used, words, fill_words, max_words)
    return passages


def fill_passages(
    passages: list[Passage],
    by_n: dict[int, Source],
    used: set[str],
    words: int,
    fill_words: int,
    max_words: int,
) -> None:
    """Continue each passage, in the order chosen, with the sentences that follow it in its
    source while the answer is under `fill_words`: the sentence after the one that matched
    the question is often the one that explains it. It stops at a heading, a question, a
    lead-in that needs its list, or a sentence already used; never past `max_answer_words`."""
    for n, span in passages:
        sents = by_n[n].sentences
        if by_n[n].kind(span[-1]) == "code":
            continue  # a line of code is quoted alone
        j = span[-1] + 1
        while words < fill_words and j < len(sents):
            nxt, size = sents[j], len(sents[j].split())
            if not answerable_sentence(nxt) or nxt.rstrip().endswith(":") or sentence_key(nxt) in used:
                break
            if by_n[n].kind(j) in ("code", "heading") or is_filler(nxt) or position_of(nxt) is not None:
                break  # a heading, code, a sign-off or the next numbered item starts something else
            if words + size > max_words:
                break
            span.append(j)
            used.add(sentence_key(nxt))
            words += size
            j += 1


def question_kind(question: str) -> str:
    """What a question asks for: "when" (a date), "count" (a number), "where" (a place),
    "define" (a definition: "what is X", "who was X"), "who" (a name), or ""."""
    if _WHEN_Q_RE.search(question):
        return "when"
    if _COUNT_Q_RE.search(question):
        return "count"
    if _WHERE_Q_RE.search(question):
        return "where"
    if _DEFINE_Q_RE.search(question):
        return "define"
    if _WHO_Q_RE.search(question):
        return "who"
    return ""


def fits_kind(kind: str, sentence: str, qwords: set[str]) -> bool:
    """Whether a sentence holds what a question of this kind asks for."""
    if kind == "when":
        return bool(_DATE_RE.search(sentence))
    if kind == "count":
        return bool(_NUMBER_RE.search(sentence))
    if kind in ("who", "where"):
        # A name the question does not already hold.
        return any(m.group(0).lower() not in qwords for m in _NAME_RE.finditer(sentence))
    # A definition names the question's subject and says what it is.
    return bool(_DEFINING_RE.search(sentence)) and bool(qwords & content_words(sentence))


def answerable_sentence(sentence: str) -> bool:
    """Headings, questions and fragments do not answer anything."""
    s = sentence.rstrip()
    return len(s.split()) >= 4 and not s.startswith("#") and not s.endswith("?")


def ranked_sentences(question: str, qvec: np.ndarray, sources: list[Source]) -> list[tuple[float, int, int]]:
    """(score, source number, sentence index) of every answerable sentence, best first, one
    copy of each (overlapping chunks repeat sentences: the copy with its context is kept)."""
    qwords = content_words(question)
    kind = question_kind(question)
    place = asked_position(question)
    code_q = bool(_CODE_Q_RE.search(question))
    scored: list[tuple[float, int, int]] = []
    for s in sources:
        sims = s.vectors @ qvec
        for i, sent in enumerate(s.sentences):
            unit = s.kind(i)
            if not quotable(sent, unit, qwords):
                continue
            overlap = len(qwords & content_words(sent)) / max(1, len(qwords))
            bonus = KIND_BONUS if kind and fits_kind(kind, sent, qwords) else 0.0
            if unit == "heading":
                bonus -= HEADING_COST
            elif unit == "code" and code_q:
                bonus += CODE_BONUS + (CODE_BONUS / 2 if calls(sent) & qwords else 0.0)
            if place is not None and unit in ("heading", "item"):
                number = position_of(sent)
                if number is not None:
                    bonus += PLACE_BONUS if number == place else OTHER_PLACE
            scored.append((float(sims[i]) + 0.2 * overlap + bonus, s.n, i))
    return best_first_unique(scored, sources)


_CALL_RE = re.compile(r"(?<!def )(?<!class )\b([A-Za-z_][\w.]*)\(")


def calls(line: str) -> set[str]:
    """The words of the names a line of code calls ("os.walk(folder)": os, walk), not of the
    ones it defines."""
    return {w for m in _CALL_RE.finditer(line) for w in content_words(m.group(1).replace("_", " "))}


def quotable(sentence: str, kind: str, qwords: set[str]) -> bool:
    """Whether a unit may answer: a sentence or list item that says something (not a fragment,
    a question or a lead-in), a heading of two words or more, or a line of code that names
    something the question asks about (`os.walk` for "walk through the folders")."""
    if kind == "heading":  # a heading that asks a question leads into its answer, never is one
        return len(plain(sentence).split()) >= 2 and not sentence.rstrip().endswith("?")
    if kind == "code":
        return len(sentence) >= 8 and bool(qwords & content_words(sentence))
    return answerable_sentence(sentence) and not is_filler(sentence)


def best_first_unique(
    scored: list[tuple[float, int, int]], sources: list[Source]
) -> list[tuple[float, int, int]]:
    """(score, source number, sentence index) sorted best first, keeping the first copy of each
    sentence (at equal scores, one that does not open its chunk, so it has its context)."""
    by_n = {s.n: s for s in sources}
    scored = sorted(scored, key=lambda x: (-x[0], x[2] == 0))
    unique: list[tuple[float, int, int]] = []
    seen: set[str] = set()
    for x in scored:
        key = sentence_key(by_n[x[1]].sentences[x[2]])
        if key not in seen:
            seen.add(key)
            unique.append(x)
    return unique


def _is_item(sentence: str) -> bool:
    return bool(LIST_MARK_RE.match(sentence))


def passage(sentences: list[str], i: int, kinds: list[str] | None = None) -> list[int] | None:
    """Sentence `i` with the context it needs, as indexes in reading order, or None when it
    cannot stand: a heading brings the first sentence under it; a line of code stands alone; a
    sentence that opens with a reference brings the one before it; a list item brings its
    lead-in line; a lead-in ending with a colon brings the items that follow it, and is not used
    when none do."""
    span = [i]
    sent = sentences[i]
    kind = kinds[i] if kinds else "text"
    if kind == "code":
        return span
    if kind == "heading":
        nxt = i + 1
        if nxt < len(sentences) and (not kinds or kinds[nxt] in ("text", "item")):
            span.append(nxt)
        return span
    if sent.rstrip().endswith(":"):
        items = []
        for j in range(i + 1, len(sentences)):
            if not _is_item(sentences[j]):
                break
            items.append(j)
        if not items:
            return None
        span += items[:4]
    elif _is_item(sent):
        # A short item needs the line that leads into its list; a long one says enough alone.
        lead = next((j for j in range(i - 1, -1, -1) if not _is_item(sentences[j])), None)
        if lead is not None and sentences[lead].rstrip().endswith(":") and len(sent.split()) < 8:
            if not is_filler(sentences[lead]):
                span.insert(0, lead)
    elif _REFERENCE_RE.match(LIST_MARK_RE.sub("", sent)):
        # The sentence it points back to, past list numbers split off as fragments ("2.").
        j = i - 1
        while j >= 0 and len(sentences[j].split()) < 3 and not sentences[j].startswith("#"):
            j -= 1
        if j < 0 or sentences[j].startswith("#") or is_filler(sentences[j]):
            return span  # a heading, a lead-in or nothing before it: nothing to bring
        span.insert(0, j)
        k = j - 1
        if _REFERENCE_RE.match(sentences[j]) and k >= 0 and len(sentences[k].split()) >= 3:
            if not sentences[k].startswith("#"):
                span.insert(0, k)
    return span
