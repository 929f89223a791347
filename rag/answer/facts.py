"""Names and numbers: what a source must mention for a question to be answerable from it, and
for a sentence to stand on it.

"Who won the 2018 World Cup?" asked of articles that never say "2018" or "World Cup" cannot be
answered from them, however close their sentences come; and a model's sentence that names a
number its source lacks is not supported by it.
"""

from __future__ import annotations

import re

from rag.retrieve import Hit
from rag.text import CONTENT_STOPWORDS, is_name_word, straight_apostrophes

# A compound that describes rather than names: a number or a word, then a plain lower-case word
# ("3-step", "Python-scripts", "SQL-indexing"); "GPT-4", "COVID-19" and "B-trees" stay names.
_DESCRIPTIVE_RE = re.compile(r"^(?:\d+|[A-Za-z]{2,}[A-Za-z0-9]*)(?:-[A-Za-z0-9]+)*-[a-z]{2,}$")


def facts(text: str) -> set[str]:
    """Numbers and names in a sentence: what a source must mention for the sentence to stand.

    Names are capitalised words other than the sentence's first word, words with inner capitals
    or digits (NDCG, GPT-4, y2b), and plain numbers; possessives and quotes are stripped.
    """
    out: set[str] = set()
    tokens = re.findall(r"[A-Za-z0-9][A-Za-z0-9'’.\-]*", text)
    for i, tok in enumerate(tokens):
        w = re.sub(r"(?:['’]s|['’.\-])+$", "", tok)
        if not w or (len(w) == 1 and not w.isdigit()):
            continue  # a lone letter ("Q&A", "plan B") names nothing on its own
        if _DESCRIPTIVE_RE.match(w):
            continue
        low = straight_apostrophes(w.lower())
        capitalised = w[0].isupper() and i > 0 and low not in CONTENT_STOPWORDS
        if is_name_word(w) or capitalised:
            out.add(low)
    return out


def mentions(text: str, term: str) -> bool:
    """Whether `text` (lower-cased) mentions `term` as a whole word (a plural counts)."""
    return re.search(rf"(?<![a-z0-9]){re.escape(term)}(?:s|es|'s)?(?![a-z0-9])", text) is not None


def searchable(text: str) -> str:
    """Text as `mentions` reads it: lower-cased, with plain apostrophes."""
    return straight_apostrophes(text.lower())


def missing_facts(question: str, hits: list[Hit]) -> list[str]:
    """Names and numbers of the question that no retrieved chunk (or its title or author) mentions."""
    text = searchable(
        " ".join(f"{h.chunk.title} {h.chunk.author or ''} {h.chunk.heading} {h.chunk.text}" for h in hits)
    )
    return sorted(f for f in facts(question) if not mentions(text, f))


def veto_reason(missing: list[str], collection: bool = False) -> str:
    """Why a question whose names or numbers no source (`collection`: no indexed article)
    mentions is not answered."""
    where = "no indexed article" if collection else "no retrieved source"
    return f"{where} mentions {', '.join(missing)}"
