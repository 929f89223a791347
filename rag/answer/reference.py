"""Articles named by their description: "the SQL-indexing article", "Rohit Patel's article",
"the Q&A article", "the 20-scripts article".

People name an article by what it is about, who wrote it or where it appeared. Such a question is
about that one article: its description is matched against each indexed article's title,
subtitle, author, publication and URL words, retrieval is steered to the article it names, and
the description is read as "the article", so that its words are never taken for names the
passages must mention. A description that fits no article, or two equally, steers nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rag.records import ArticleInfo
from rag.text import CONTENT_STOPWORDS

_KIND = r"(?:article|post|piece|story|guide|tutorial|blog\s+post|blog|essay|write-?up|listicle|paper)"
_VERBS = (
    r"say|says|said|explain|explains|describe|describes|mention|mentions|recommend|recommends|"
    r"claim|claims|argue|argues|suggest|suggests|cover|covers|list|lists|discuss|discusses|"
    r"do|does|did|is|are|was|were|call|calls|use|uses|show|shows|give|gives"
)
_WORD = r"(?!(?:the|this|that|of|in|on|for|a|an|from|by|about|to|with|and)\b)[\w&'’\-]+"
_REFERENCE_RES = (
    # "Rohit Patel's article", "Shaw Talebi's post"
    re.compile(rf"\b((?:[A-Z][\w\-]*\s+){{0,3}}[A-Z][\w\-]*)['’]s?\s+{_KIND}\b"),
    # "the article on SQL indexing", "the post by Shaw Talebi", "the guide about data science"
    re.compile(
        rf"\b(?:the|an?|this|that)\s+{_KIND}\s+(?:on|about|by|called|titled|named)\s+(.{{2,60}}?)"
        rf"(?=\s*(?:[,?.!;:]|$)|\s+(?:{_VERBS})\b)",
        re.IGNORECASE,
    ),
    # "the SQL-indexing article", "this 3-step guide", "the Q&A article" (the description holds
    # no article or preposition: "the subtitle of the SQL article" describes with "SQL")
    re.compile(rf"\b(?:the|this|that)\s+((?:{_WORD}\s+){{0,4}}?{_WORD})\s+{_KIND}\b", re.IGNORECASE),
)
# Words that say how an article is named, not what it is about.
_GENERIC = frozenset(
    """article post piece story guide blog essay paper tutorial listicle write writeup up medium
    one new old long short first last recent latest other same""".split()
)
# Shorthands people write for what a title spells out.
_SHORTHANDS = {"q&a": "questions answered", "qa": "questions answered", "llm": "llms", "ai": "ai"}
_SLUG_HASH_RE = re.compile(r"-[0-9a-f]{8,}$")
MIN_SHARE = 0.5  # of the description's words the article must have


@dataclass(frozen=True)
class Described:
    """An indexed article a question names by its description."""

    article: ArticleInfo
    subtitle: str
    description: str  # as the question words it ("SQL-indexing")
    question: str  # the question with the description read as "the article"


def fold(word: str) -> str:
    """A word without its plural or verb ending, so that "indexing", "indexes" and "index" meet."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def description_words(text: str) -> set[str]:
    """The folded words of a description, shorthands spelled out, naming words left out."""
    low = text.lower()
    for short, full in _SHORTHANDS.items():
        low = re.sub(rf"(?<!\w){re.escape(short)}(?!\w)", full, low)
    words = re.findall(r"[^\W_]+", low.replace("’", "'"))
    return {fold(w) for w in words if w not in CONTENT_STOPWORDS and w not in _GENERIC and w != "s"}


def article_words(article: ArticleInfo, subtitle: str) -> set[str]:
    """What an article can be called by: its title, subtitle, author, publication and URL words."""
    slug = _SLUG_HASH_RE.sub("", article.url.rstrip("/").rsplit("/", 1)[-1])
    parts = (article.title, subtitle, article.author or "", article.publication, slug.replace("-", " "))
    return description_words(" ".join(parts))


def subtitle_of(text: str | None) -> str:
    """An article's subtitle: the heading its clean text opens with, before any prose."""
    first = (text or "").lstrip().split("\n", 1)[0]
    m = re.match(r"^#{1,6}\s+(.+)$", first)
    return m.group(1).strip() if m else ""


def described_article(
    question: str, catalogue: Callable[[], list[tuple[ArticleInfo, str]]]
) -> Described | None:
    """The indexed article (from the (article, subtitle) pairs `catalogue` gives, asked for only
    when the question describes an article) the question names by description, or None: the
    article must hold at least half of the description's words, more of them than any other
    article, and more than a number alone."""
    for pattern in _REFERENCE_RES:
        for m in pattern.finditer(question):
            words = description_words(m.group(1))
            if not words:
                continue
            fits = [(words & article_words(a, sub), a, sub) for a, sub in catalogue()]
            scored = sorted(
                ((len(hit), a.article_id, hit, a, sub) for hit, a, sub in fits), key=lambda x: (-x[0], x[1])
            )
            if not scored:
                return None
            best, _, matched, article, subtitle = scored[0]
            runner_up = scored[1][0] if len(scored) > 1 else 0
            if best / len(words) < MIN_SHARE or best == runner_up or all(w.isdigit() for w in matched):
                continue
            return Described(article, subtitle, m.group(1).strip(), _without(question, m.start(), m.end()))
    return None


def _without(question: str, start: int, end: int) -> str:
    """The question with its description of the article (question[start:end]) read as "it":
    "In the Q&A article, what do data scientists do?" -> "What do data scientists do?"."""
    rest = (question[:start] + "\0" + question[end:]).strip()
    rest = re.sub(r"\b(?:the|this|that)\s+\0", "\0", rest, flags=re.IGNORECASE)
    rest = re.sub(r"^(?:in|from|of|by|according to)\s+\0\s*,?\s*", "", rest, flags=re.IGNORECASE)
    rest = rest.replace("\0", "it").strip()
    return rest[:1].upper() + rest[1:]


# What a question asks of an article as a whole: its topic, not something in it.
_OVERVIEW = frozenset(
    """article say said explain about cover covered discuss talk topic main point idea summary
    summarize summarise gist describe author write wrote written argue purpose subject key
    takeaway takeaways thing things mostly generally overall""".split()
)


_TITLE_WORDS = frozenset("subtitle title headline tagline".split())


def asks_overview(question: str) -> bool:
    """Whether a question, its description read as "the article", asks only what the article is
    about ("What does the article explain?"): answered with its title and subtitle."""
    words = {fold(w) for w in re.findall(r"[a-z]+", question.lower()) if w not in CONTENT_STOPWORDS}
    return bool(words) and (words <= {fold(w) for w in _OVERVIEW} or bool(words & _TITLE_WORDS))


_DEFINE_WORDS = frozenset("mean means meaning stand stands define definition defined called exactly".split())


def names_title(question: str, title: str) -> bool:
    """Whether a definition question asks what the article's own subject is: every word of
    its subject ("NDCG" in "What is NDCG?") is in the title."""
    subject = description_words(question) - {fold(w) for w in _DEFINE_WORDS}
    return bool(subject) and subject <= description_words(title)
