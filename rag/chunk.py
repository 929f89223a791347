"""Split clean articles into heading-aware chunks that the embedder reads whole.

A chunk is a contiguous span of the article's clean text (so `article.text[start:end]` is its
body), never crosses a heading, and fits the embedder's window together with its prefix
("Title (by Author) > Heading > Subheading"): the bound is counted with the embedder's own
tokenizer, so nothing is silently truncated. The author rides in the prefix, not the body, so that
a question naming the author finds the article (densely and lexically) while the body stays an
exact span. Consecutive chunks of a section overlap by a few sentences.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rag.records import Article, Chunk, prefix
from rag.text import SENTENCE_END_RE, byline

CHUNKER_VERSION = "2"
SPECIAL_TOKENS = 2  # [CLS] and [SEP] take two places in the window

TokenCounter = Callable[[str], int]


def chunk_id(url: str, embed_text: str) -> str:
    return hashlib.sha1(f"{url}\x00{embed_text}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int


_HEADING_RE = re.compile(r"^(#{1,6})\s+(.+?)\s*$")


def _sections(text: str) -> Iterator[tuple[str, int, int]]:
    """(heading path, start, end) for each section: its heading lines and the text under them.

    The heading line is part of the section's text, so a heading is searched, embedded and
    quoted like any sentence ("Flaw 2: It doesn't mean what people think it means"), and a run
    of headings with no text between them (a subtitle followed at once by a heading) stays with
    the text that follows it instead of vanishing."""
    stack: list[tuple[int, str]] = []
    pos = 0
    start = 0  # where the section's span begins: its first heading line
    body = 0  # where the text under its last heading begins
    path = ""
    for line in text.splitlines(keepends=True):
        m = _HEADING_RE.match(line.rstrip("\n"))
        if m:
            if text[body:pos].strip():
                yield path, start, pos
                start = pos
            level = len(m.group(1))
            stack = [(lv, h) for lv, h in stack if lv < level] + [(level, m.group(2))]
            path = " > ".join(h for _, h in stack)
            body = pos + len(line)
        pos += len(line)
    if text[start:].strip():
        yield path, start, len(text)


def _units(text: str, start: int, end: int, count: TokenCounter, limit: int) -> list[_Unit]:
    """Sentences and lines of text[start:end], each within `limit` tokens."""
    units: list[_Unit] = []
    pos = start
    for line in text[start:end].splitlines(keepends=True):
        line_start, line_end = pos, pos + len(line.rstrip())
        pos += len(line)
        if line_end <= line_start or not text[line_start:line_end].strip():
            continue
        s = line_start
        pieces = [m.end() for m in SENTENCE_END_RE.finditer(text, line_start, line_end)]
        for cut in [*pieces, line_end]:
            seg_end = cut
            # trim the whitespace the sentence split left at the end
            while seg_end > s and text[seg_end - 1].isspace():
                seg_end -= 1
            if seg_end > s:
                units.extend(_fit(text, s, seg_end, count, limit))
            s = cut
    return units


def _fit(text: str, s: int, e: int, count: TokenCounter, limit: int) -> list[_Unit]:
    """One unit, or several word-aligned pieces when a single sentence is over the limit."""
    n = count(text[s:e])
    if n <= limit:
        return [_Unit(s, e, n)]
    out: list[_Unit] = []
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text[s:e])]
    i = 0
    while i < len(words):
        j = i + 1
        best = j
        # grow the piece word by word while it fits (halving would be faster; sentences this
        # long are rare and short enough that linear growth costs nothing noticeable)
        while j <= len(words) and count(text[s + words[i][0] : s + words[j - 1][1]]) <= limit:
            best = j
            j += 1
        ps, pe = s + words[i][0], s + words[best - 1][1]
        out.append(_Unit(ps, pe, count(text[ps:pe])))
        i = best
    return out


def chunk_article(
    article: Article,
    count: TokenCounter,
    max_tokens: int = 256,
    target_tokens: int = 160,
    overlap_tokens: int = 32,
) -> list[Chunk]:
    """Chunks of one article; the same article and settings always give the same chunks."""
    text = article.text
    chunks: list[Chunk] = []
    for heading, s_start, s_end in _sections(text):
        head_tokens = count(prefix(article.title, heading, article.author)) + SPECIAL_TOKENS + 1
        budget = max_tokens - head_tokens
        if budget < 16:  # an absurdly long heading path: keep only the title and author
            heading = ""
            budget = max_tokens - count(byline(article.title, article.author)) - SPECIAL_TOKENS - 1
        target = min(target_tokens, budget)
        units = _units(text, s_start, s_end, count, budget)
        i = 0
        while i < len(units):
            j, total = i, 0
            while j < len(units) and (total + units[j].tokens <= target or j == i):
                total += units[j].tokens
                j += 1
            # The sum of unit counts can differ from the count of the joined text by a token or
            # two; check the real count and shrink until it fits the hard bound.
            while j - i > 1 and count(text[units[i].start : units[j - 1].end]) > budget:
                j -= 1
            start, end = units[i].start, units[j - 1].end
            body = text[start:end]
            embed_text = f"{prefix(article.title, heading, article.author)}\n{body}"
            chunks.append(
                Chunk(
                    id=chunk_id(article.url, embed_text),
                    article_id=article.id,
                    url=article.url,
                    title=article.title,
                    heading=heading,
                    start=start,
                    end=end,
                    text=body,
                    ord=len(chunks),
                    author=article.author,
                )
            )
            if j >= len(units):
                break
            # Start the next chunk a few sentences back, but always move forward.
            back, k = 0, j
            while k - 1 > i and back + units[k - 1].tokens <= overlap_tokens:
                k -= 1
                back += units[k].tokens
            i = k
    return chunks
