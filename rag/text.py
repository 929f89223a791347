"""Words and sentences: the text handling that chunking, search, answers and evaluation share.

One place for each: stop words, the words of a query, content words, sentence splitting,
stemming, and the title line ("byline") that both chunk prefixes and lexical search use.
Nothing here loads a model or the cleaner, so the query path can import it for free.
"""

from __future__ import annotations

import re
from typing import Any

# Words a lexical query ignores. Search and answers weigh words differently, so there are two
# lists: this one (used to rank chunks) keeps "yes"/"no"-like words of questions out of BM25;
# CONTENT_STOPWORDS (used to compare an answer sentence with a question) also drops negations
# and contractions. Each was measured where it is used; merging them moves the dev-set numbers.
STOPWORDS = frozenset(
    """a an and are as at be but by can could did do does for from had has have how i if in into
    is it its me my of on or our shall should so than that the their them then there these they
    this those to was we were what when where which while who whom why will with would you your
    about after all also any been before being both each few more most no nor not only other out
    over own same some such too under until up very just don does doing""".split()
)

CONTENT_STOPWORDS = frozenset(
    """a an and are as at be but by can could did do does for from had has have how i if in into
    is it its of on or our so than that the their them then there these they this those to was we
    were what when where which while who why will with would you your not no yes also just about
    more most other some such only very can't don't it's i'm""".split()
)

# Function words of a conversation: what a follow-up question may hold besides pronouns and still
# name nothing of its own (rag/followup.py).
FUNCTION_WORDS = frozenset(
    """a an and are as at be been being but by can could did do does doing done for from had has
    have how i if in into is me more most my no not of on or our should so than the then to too
    was we were what when where which while who whom whose why will with would you your about
    any some very just also much many please tell explain say says said mean means really else
    exactly like way ok okay yes thanks thank other another same example examples detail details elaborate
    come go on""".split()
)
# Words that turn a statement around, and the determiners before a sentence's subject: what the
# verifier compares between a model's sentence and its source (rag/answer/verify.py).
NEGATIONS = frozenset("not no never none nothing neither nor cannot without".split())
DETERMINERS = frozenset("the a an this that these those his her its their our my one".split())

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# A sentence ends at . ! ? or … (after any closing quotes or brackets) before a capital or digit.
SENTENCE_END_RE = re.compile(r"(?<=[.!?…])[\"”’)\]]*\s+(?=[\"“‘(\[*]?[A-Z0-9])")


def query_words(text: str) -> list[str]:
    """The words of a query that lexical search should weigh: lower-case, stop words dropped
    (all of them kept when nothing else is left), each once, in order."""
    words = re.findall(r"\w+", text.lower())
    kept = [w for w in words if w not in STOPWORDS] or words
    return list(dict.fromkeys(kept))


def straight_apostrophes(text: str) -> str:
    """Text with typographic apostrophes (’) as plain ones, so "it’s" and "it's" match."""
    return text.replace("’", "'")


def is_name_word(word: str) -> bool:
    """NDCG, GPT-4, BM25, SQLite: a word that names a thing on its own (a digit, or a capital
    after its first letter), whatever its place in the sentence."""
    return any(c.isdigit() for c in word) or any(c.isupper() for c in word[1:])


def content_words(text: str) -> set[str]:
    """Lower-cased words minus stop words, with a plural 's' folded away."""
    words = _WORD_RE.findall(straight_apostrophes(text.lower()))
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in CONTENT_STOPWORDS}


def split_sentences(text: str) -> list[str]:
    """Sentences of a text: lines first (lists, code), then sentence ends within a line."""
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        start = 0
        for m in SENTENCE_END_RE.finditer(line):
            piece = line[start : m.end()].strip()
            if piece:
                out.append(piece)
            start = m.end()
        if line[start:].strip():
            out.append(line[start:].strip())
    return out


def byline(title: str, author: str | None) -> str:
    """The title with its author, as retrieval sees it: "Title (by Author)"."""
    return f"{title} (by {author})" if author else title


_STEMMER: Any = None


def stem(words: list[str]) -> list[str]:
    """Porter stems of `words`: the algorithm of SQLite FTS5's porter tokenizer (PyStemmer)."""
    global _STEMMER
    if _STEMMER is None:
        import Stemmer

        _STEMMER = Stemmer.Stemmer("porter")
    return list(_STEMMER.stemWords(words))


def analyzed(text: str) -> str:
    """Text as BM25 should see it where the engine cannot stem: lower-case Porter stems."""
    return " ".join(stem(re.findall(r"\w+", text.lower())))


def lexical_terms(text: str) -> str:
    """A query's stemmed words without stop words, each once, for an engine that keeps them."""
    return " ".join(dict.fromkeys(stem(query_words(text))))
