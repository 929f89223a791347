"""Follow-up questions: a question that leans on the previous turn is asked with its topic.

"What is statistical significance?" then "why is it a scam?": the second question names nothing
that retrieval could find, so it is retrieved and answered together with the first. Whether a
question leans on the previous one is decided by three general rules, not by any list of
questions:

1. it opens like a continuation: "and ...", "but ...", "also ...", "what about ...", "how so",
   "why?" and the like;
2. it refers back with a pronoun (it, they, this, those, ...) and names at most two things of
   its own, so the pronoun is unlikely to point inside the question itself ("what does layer
   normalization do to its inputs?" stands alone);
3. it is too short to stand alone: no content word of its own ("why?", "how come?"), or an
   amount asked of nothing named ("how much faster?", "how many?": at most one content word).

The library stays silent; `rag chat` and `rag ask --after` print which question gave the context.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.text import FUNCTION_WORDS, is_name_word

# Words that open a continuation of the previous question.
_OPENERS = re.compile(
    r"^(?:and|but|also|so|then|or|plus|what about|how about|what else|how so|why so|why not"
    r"|in that case|same for|is that|are those|is this|are these)\b",
    re.IGNORECASE,
)
# Words that point back at something named earlier.
_BACK_REFERENCES = frozenset(
    "it its itself they them their theirs themselves this that these those he him his she her "
    "such there one ones".split()
)
_WORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-]*")
MAX_OWN_WORDS = 2  # rule 2: a question with more content words than this stands alone
_AMOUNT = re.compile(r"^(?:how (?:much|many|long|often|far|big|fast)|which one)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Turn:
    """One question of a conversation and what was asked of the index for it."""

    question: str  # as the user typed it
    query: str  # what is retrieved and answered: the question, with the earlier topic if a follow-up
    follows: str | None = None  # the earlier question whose topic was added; None if it stood alone


def _words(text: str) -> list[str]:
    return [w.strip("'’-") for w in _WORD_RE.findall(text)]


def _content(words: list[str]) -> list[str]:
    return [w for w in words if w.lower() not in FUNCTION_WORDS and w.lower() not in _BACK_REFERENCES]


def is_followup(question: str) -> bool:
    """Whether `question` leans on the previous turn (see the module docstring for the rules)."""
    q = " ".join(question.split())
    if not q:
        return False
    if _OPENERS.match(q):
        return True
    words = _words(q)
    own = _content(words)
    if any(w.lower() in _BACK_REFERENCES for w in words) and len(own) <= MAX_OWN_WORDS:
        return True
    return not own or (len(own) <= 1 and bool(_AMOUNT.match(q)))


# A previous question that asks what something is names its topic plainly: "What is X?",
# "what does X mean / do", "tell me about X". Its X may stand in for the follow-up's pronoun.
_TOPIC_FRAMES = (
    re.compile(r"^(?:what|who)(?:'s| is| are| was| were)\s+(?P<t>.+?)[?.!]*$", re.IGNORECASE),
    re.compile(r"^what (?:does|do|did) (?P<t>.+?) (?:mean|stand for|do|does)[?.!]*$", re.IGNORECASE),
    re.compile(r"^(?:tell me about|explain|describe|define)\s+(?P<t>.+?)[?.!]*$", re.IGNORECASE),
)
_ARTICLE = re.compile(r"^(?:an?|the)\s+", re.IGNORECASE)
_STAND_INS = re.compile(r"\b(?:it|this|that|they|them|these|those)\b", re.IGNORECASE)
MAX_TOPIC_WORDS = 5


def topic(question: str) -> str | None:
    """What a "what is X" question asks about (X, without its article), or None when the
    question has no such frame or X is longer than MAX_TOPIC_WORDS words."""
    q = " ".join(question.split())
    for frame in _TOPIC_FRAMES:
        m = frame.match(q)
        if m:
            t = _ARTICLE.sub("", m.group("t")).strip()
            return t if t and len(t.split()) <= MAX_TOPIC_WORDS else None
    return None


def contextualise(question: str, previous: str) -> str:
    """The follow-up, its first pronoun replaced by the previous question's topic when that
    question names one ("why is it a scam?" after "What is statistical significance?" becomes
    "why is statistical significance a scam?"), with the previous question's text after it,
    for retrieval and answering.

    The previous question's first letter is lower-cased (unless its first word is a name such as
    NDCG), so that the answerer's names rule does not take a sentence-initial "Explain" for a name
    the sources must mention.
    """
    prev = " ".join(previous.split())
    subject = topic(prev)
    first = _words(prev)[:1]
    if prev and not (first and is_name_word(first[0])):
        prev = prev[0].lower() + prev[1:]
    q = " ".join(question.split())
    if subject:
        q = _STAND_INS.sub(lambda _: subject, q, count=1)  # the topic as text, never a template
    sep = "" if q.endswith((".", "?", "!")) else "?"
    return f"{q}{sep} {prev}".strip()


def resolve(question: str, previous: Turn | str | None) -> Turn:
    """The turn for `question` after `previous` (a Turn, the earlier question's text, or None).

    A follow-up of a follow-up keeps the whole chain's topic: it is read with the previous
    turn's query, and `follows` names the previous question as the user typed it.
    """
    q = " ".join(question.split())
    if isinstance(previous, str):
        previous = Turn(previous, " ".join(previous.split())) if previous.strip() else None
    if previous is None or not is_followup(q):
        return Turn(q, q)
    return Turn(q, contextualise(q, previous.query), previous.question)
