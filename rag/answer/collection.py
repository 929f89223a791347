"""Questions about the collection itself, answered from the stored metadata.

"Who wrote the article about NDCG?", "when was the statistical significance article
published?", "which articles are by Cai Parry-Jones?", "what articles are indexed?": the answer
is in each article's title, author and date, not in its text, so retrieval and the answer
decision would refuse them. `collection_question` recognises such questions by the shape of the
question alone (never by our articles' titles); `answer_collection` finds the articles meant and
writes the answer from their metadata, cited like any other answer.

What is recognised (the whole question, after "tell me"/"do you know" and the like):

    author      who wrote / authored / is the author of <S>; by whom was <S> written; who is <S> by;
                who wrote about <topic>
    date        when was <S> published / written / posted; what date was <S> published;
                the publication date of <S>; how old is <the article ...>
    by_author   which/what articles are by <name>; which articles did <name> write; articles by
                <name>; <name>'s articles; what did <name> write
    about       which articles are about / discuss / cover / mention <topic>; articles about
                <topic>; is there an article about <topic>
    collection  what articles are indexed / do you have; what is indexed; list the articles;
                how many articles are there
    authors     who are the authors; which authors are indexed; who wrote the articles

<S> says which article: "the article about <topic>", "the <topic> article", a quoted title, or
"the article by <name>". "It", "this article" and "who is the author?" mean the article(s) the
previous answer of a conversation cited, when the caller passes them. Without article words
("who wrote Hamlet?", "when was BERT published?") the question may be about something the
articles mention, so it is answered from the metadata only when <S> is nearly a whole indexed
title; otherwise it takes the normal answer path. Questions about what the articles say ("who
invented NDCG?", "what does the author say about p-values?") are not recognised at all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from rag.answer.collection_query import KINDS, CollectionQuery, collection_question
from rag.answer.types import Answer, Citation, Sentence
from rag.errors import RagError
from rag.records import ArticleInfo, Filters, StoredChunk
from rag.retrieve import Hit
from rag.text import content_words, stem

_ARTICLE_WORD = re.compile(
    r"\b(?:article|post|piece|story|essay|write-?up|tutorial|guide|document)s?\b", re.IGNORECASE
)

__all__ = ["KINDS", "CollectionQuery", "answer_collection", "collection_question"]

TOPIC_HITS = 20  # hits searched for a topic's articles
MAX_LISTED = 12  # articles (or authors) a listing names; the rest are counted
MAX_FOR_ONE = 3  # articles an "the article about X" answer names when several titles match
# A subject without article words answers only when it covers this share of a title's words.
TITLE_COVERAGE = 0.6
MAX_CHUNK_LOOKUP = 200  # chunks searched for the first one of a cited article


class Searcher(Protocol):
    """What answering needs of a retriever (rag.retrieve.Retriever is one)."""

    def search(
        self,
        query: str,
        k: int | None = None,
        retriever: str | None = None,
        filters: Filters | None = None,
    ) -> list[Hit]: ...


# ------------------------------------------------------------------------- finding articles


def _stems(text: str) -> set[str]:
    return set(stem(sorted(content_words(text))))


def _name_words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.lower())


def by_author(name: str, articles: list[ArticleInfo]) -> list[ArticleInfo]:
    """The articles whose recorded author holds every word of `name` (any case, so a surname
    or a first name alone finds them)."""
    wanted = _name_words(name)
    if not wanted:
        return []
    return [a for a in articles if a.author and set(wanted) <= set(_name_words(a.author))]


def _title_matches(topic: str, articles: list[ArticleInfo], whole: bool) -> list[ArticleInfo]:
    """Articles whose title holds every content word of `topic`; with `whole`, the topic must
    also cover most of the title (it is then taken for the title itself)."""
    words = _stems(topic)
    if not words:
        return []
    out = []
    for a in articles:
        title = _stems(a.title)
        if words <= title and (not whole or len(words) >= TITLE_COVERAGE * len(title)):
            out.append(a)
    return out


# Articles, each with the chunk that showed it fits (None when its title did).
Found = list[tuple[ArticleInfo, StoredChunk | None]]


def _alone(articles: list[ArticleInfo]) -> Found:
    return [(a, None) for a in articles]


def about(topic: str, articles: list[ArticleInfo], retriever: Searcher) -> tuple[Found, Found]:
    """The articles about `topic`: those whose title holds its words, then those with a
    retrieved chunk that holds them all; each with its best chunk when one was retrieved."""
    words = _stems(topic)
    if not words:
        return [], []
    by_id = {a.article_id: a for a in articles}
    best: dict[str, StoredChunk] = {}
    qualified: list[str] = []
    for h in retriever.search(topic, k=TOPIC_HITS):
        c = h.chunk
        if c.article_id not in by_id or c.article_id in best:
            continue
        if words <= _stems(f"{c.title} {c.heading} {c.text}"):
            best[c.article_id] = c
            qualified.append(c.article_id)
    titled = _title_matches(topic, articles, whole=False)
    rank = {aid: i for i, aid in enumerate(qualified)}
    titled.sort(key=lambda a: rank.get(a.article_id, len(rank)))
    titled_ids = {a.article_id for a in titled}
    others: Found = [(by_id[aid], best[aid]) for aid in qualified if aid not in titled_ids]
    return [(a, best.get(a.article_id)) for a in titled], others


def _chunk_of(article: ArticleInfo, retriever: Searcher) -> StoredChunk:
    """A chunk of `article` to cite (found by its title, lexically, within its URL), or a
    stand-in with the article's metadata and no text when none is found."""
    # Every chunk carries its article's title, so the search finds them all and the first is kept.
    k = min(max(article.chunks, 1), MAX_CHUNK_LOOKUP)
    try:
        hits = retriever.search(article.title, k=k, retriever="bm25", filters=Filters(url=article.url))
    except RagError:  # a title with no words to search: a citation without text will do
        hits = []
    own = [h.chunk for h in hits if h.chunk.article_id == article.article_id]
    if own:
        return min(own, key=lambda c: c.ord)
    return StoredChunk(
        chunk_id="",
        article_id=article.article_id,
        url=article.url,
        title=article.title,
        publication=article.publication,
        published=article.published,
        heading="",
        text="",
        start=0,
        end=0,
        ord=0,
        member_only=article.member_only,
        author=article.author,
    )


# ------------------------------------------------------------------------- writing the answer

_NUMBERS = "no one two three four five six seven eight nine ten eleven twelve".split()


def _count(n: int, capital: bool = True) -> str:
    word = _NUMBERS[n] if n < len(_NUMBERS) else f"{n:,}"
    return word.capitalize() if capital else word


def _joined(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


class _Cited:
    """The articles an answer cites, numbered in order of first mention."""

    def __init__(self, retriever: Searcher) -> None:
        self.retriever = retriever
        self.numbers: dict[str, int] = {}
        self.chunks: list[StoredChunk] = []
        self.sentences: list[Sentence] = []
        self.texts: list[str] = []

    def n(self, article: ArticleInfo, chunk: StoredChunk | None = None) -> int:
        if article.article_id not in self.numbers:
            self.numbers[article.article_id] = len(self.chunks) + 1
            self.chunks.append(chunk or _chunk_of(article, self.retriever))
        return self.numbers[article.article_id]

    def title(self, article: ArticleInfo, chunk: StoredChunk | None = None) -> str:
        return f"“{article.title}” [{self.n(article, chunk)}]"

    def say(self, text: str, cites: list[int]) -> None:
        """A sentence; `text` carries its [n] marks where the reader needs them."""
        self.texts.append(text)
        self.sentences.append((re.sub(r" ?\[\d+\]", "", text), cites, 1.0))

    def answer(self, question: str) -> Answer:
        citations = [
            Citation(n=i, url=c.url, title=c.title, chunk_id=c.chunk_id, text=c.text, published=c.published)
            for i, c in enumerate(self.chunks, start=1)
        ]
        ans = Answer(question, " ".join(self.texts), False, "extractive", citations, sentences=self.sentences)
        ans.closest = [Hit(c, 1.0, i, "metadata") for i, c in enumerate(self.chunks, start=1)]
        ans.outcome = "answered"  # the metadata states it: never merely "unsure"
        return ans


def _date(published: str | None) -> str | None:
    return published[:10] if published else None


def _say_author(out: _Cited, a: ArticleInfo, chunk: StoredChunk | None = None) -> None:
    n = out.n(a, chunk)
    if a.author:
        out.say(f"“{a.title}” was written by {a.author} [{n}].", [n])
    else:
        out.say(f"The indexed article “{a.title}” [{n}] does not record its author.", [n])


def _say_date(out: _Cited, a: ArticleInfo, chunk: StoredChunk | None = None) -> None:
    n = out.n(a, chunk)
    day = _date(a.published)
    if day:
        out.say(f"“{a.title}” was published on {day} [{n}].", [n])
    else:
        out.say(f"The indexed article “{a.title}” [{n}] does not record its publication date.", [n])


def _articles_meant(
    query: CollectionQuery, articles: list[ArticleInfo], retriever: Searcher, cited: Sequence[str]
) -> Found:
    """The article(s) an author or date question asks about, best first ([] when none)."""
    if query.back and cited:
        by_url = {a.url: a for a in articles}
        urls = list(dict.fromkeys(u for u in cited if u in by_url))
        return _alone([by_url[u] for u in urls[:MAX_FOR_ONE]])
    if query.author:
        return _alone(by_author(query.author, articles)[:MAX_LISTED])
    if not query.topic:
        # "when was the article published?" means something only in a one-article collection
        return _alone(articles) if len(articles) == 1 else []
    if not query.named:
        return _alone(_title_matches(query.topic, articles, whole=True)[:MAX_FOR_ONE])
    titled, others = about(query.topic, articles, retriever)
    if query.plural:
        return [*titled, *others][:MAX_LISTED]
    return titled[:MAX_FOR_ONE] if titled else others[:1]


def answer_collection(
    query: CollectionQuery,
    question: str,
    articles: list[ArticleInfo],
    retriever: Searcher,
    cited: Sequence[str] = (),
) -> Answer | None:
    """The answer to a question about the collection, written from the articles' metadata and
    citing each article it names; None when the metadata cannot answer it (no article fits),
    so that the question takes the normal path.

    `cited`: the URLs the previous answer of a conversation cited, which "who wrote it?" and
    "when was this article published?" ask about (without them such questions get None,
    unless the collection holds a single article).
    """
    out = _Cited(retriever)
    if query.kind in ("author", "date"):
        said = _who_or_when(out, query, question, articles, retriever, cited)
    elif query.kind == "by_author":
        said = _by_author(out, query, articles)
    elif query.kind == "about":
        said = _about(out, query, articles, retriever)
    elif query.kind == "collection":
        said = _collection(out, articles)
    elif query.kind == "authors":
        said = _authors(out, articles)
    else:
        said = False
    return out.answer(question) if said else None


def _who_or_when(
    out: _Cited,
    query: CollectionQuery,
    question: str,
    articles: list[ArticleInfo],
    retriever: Searcher,
    cited: Sequence[str],
) -> bool:
    meant = _articles_meant(query, articles, retriever, cited)
    if not meant:
        return False
    field = "author" if query.kind == "author" else "published"
    if not _ARTICLE_WORD.search(question) and not any(getattr(a, field) for a, _ in meant):
        # "Who wrote To Kill a Mockingbird?" or "who wrote about Chopin's harmonies?" over
        # encyclopaedia pages that record no author ask about what the pages say: unless the
        # question says it means an article, it goes to the text.
        return False
    for a, chunk in meant:
        (_say_author if query.kind == "author" else _say_date)(out, a, chunk)
    return True


def _by_author(out: _Cited, query: CollectionQuery, articles: list[ArticleInfo]) -> bool:
    found = by_author(query.author, articles)
    if not found:
        if not query.named:
            return False  # "what did Fisher write?" may be about the text
        out.say(f"No indexed article is by {query.author}.", [])
        return True
    names: dict[str, list[ArticleInfo]] = {}
    for a in found:
        names.setdefault(a.author or "", []).append(a)
    for name, own in names.items():
        shown = [out.title(a) for a in own[:MAX_LISTED]]
        more = f" and {len(own) - MAX_LISTED:,} more" if len(own) > MAX_LISTED else ""
        verb = "is" if len(own) == 1 else "are"
        noun = "article" if len(own) == 1 else "articles"
        cites = [out.n(a) for a in own[:MAX_LISTED]]
        out.say(f"{_count(len(own))} indexed {noun} {verb} by {name}: {_joined(shown)}{more}.", cites)
    return True


def _about(out: _Cited, query: CollectionQuery, articles: list[ArticleInfo], retriever: Searcher) -> bool:
    titled, others = about(query.topic, articles, retriever)
    if not titled and not others:
        return False
    titled, others = titled[:MAX_LISTED], others[: max(0, MAX_LISTED - len(titled))]
    if titled:
        shown = [out.title(a, c) for a, c in titled]
        verb, noun = ("is", "article") if len(titled) == 1 else ("are", "articles")
        cites = [out.n(a) for a, _ in titled]
        out.say(f"{_count(len(titled))} indexed {noun} {verb} about {query.topic}: {_joined(shown)}.", cites)
    if others:
        shown = [out.title(a, c) for a, c in others]
        cites = [out.n(a) for a, _ in others]
        if titled:
            verb = "also discusses" if len(others) == 1 else "also discuss"
            out.say(f"{_joined(shown)} {verb} {query.topic}.", cites)
        else:
            verb, noun = ("discusses", "article") if len(others) == 1 else ("discuss", "articles")
            out.say(f"{_count(len(others))} indexed {noun} {verb} {query.topic}: {_joined(shown)}.", cites)
    return True


def _collection(out: _Cited, articles: list[ArticleInfo]) -> bool:
    if not articles:
        return False
    shown = [out.title(a) for a in articles[:MAX_LISTED]]
    cites = [out.n(a) for a in articles[:MAX_LISTED]]
    if len(articles) == 1:
        out.say(f"One article is indexed: {shown[0]}.", cites)
    elif len(articles) <= MAX_LISTED:
        out.say(f"{_count(len(articles))} articles are indexed: {_joined(shown)}.", cites)
    else:
        out.say(f"{len(articles):,} articles are indexed; the first {MAX_LISTED}: {_joined(shown)}.", cites)
    return True


def _authors(out: _Cited, articles: list[ArticleInfo]) -> bool:
    names: dict[str, list[ArticleInfo]] = {}
    for a in articles:
        if a.author:
            names.setdefault(a.author, []).append(a)
    if not names:
        return False
    listed = []
    cites = []
    for name, own in list(names.items())[:MAX_LISTED]:
        ns = [out.n(a) for a in own]
        cites += ns
        listed.append(name + " " + "".join(f"[{n}]" for n in ns))
    more = f" and {len(names) - MAX_LISTED:,} more" if len(names) > MAX_LISTED else ""
    noun = "author" if len(names) == 1 else "authors"
    out.say(f"The indexed articles name {_count(len(names), False)} {noun}: {_joined(listed)}{more}.", cites)
    unnamed = sum(1 for a in articles if not a.author)
    if unnamed:
        noun, verb = ("article", "records") if unnamed == 1 else ("articles", "record")
        out.say(f"{_count(unnamed)} {noun} {verb} no author.", [])
    return True
