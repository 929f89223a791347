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
from dataclasses import dataclass
from typing import Protocol

from rag.answer.types import Answer, Citation, Sentence
from rag.errors import RagError
from rag.records import ArticleInfo, Filters, StoredChunk
from rag.retrieve import Hit
from rag.text import content_words, stem

KINDS = ("author", "date", "by_author", "about", "collection", "authors")
TOPIC_HITS = 20  # hits searched for a topic's articles
MAX_LISTED = 12  # articles (or authors) a listing names; the rest are counted
MAX_FOR_ONE = 3  # articles an "the article about X" answer names when several titles match
# A subject without article words answers only when it covers this share of a title's words.
TITLE_COVERAGE = 0.6
MAX_TOPIC_WORDS = 5  # a longer "which articles are about ..." describes a theme, not a subject
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


@dataclass(frozen=True)
class CollectionQuery:
    """A question about the collection: what it asks and of which articles."""

    kind: str  # one of KINDS
    topic: str = ""  # the words that say which article(s), as the user wrote them
    author: str = ""  # an author's name, or part of it, as the user wrote it
    named: bool = True  # the question says it means an article; if not, `topic` must be a title
    plural: bool = False  # "the articles about X": every matching article, not the best one
    back: bool = False  # "who wrote it?": the article(s) the conversation is about


# ------------------------------------------------------------------------- recognition

_NOUN = (
    r"(?:blog[ -]?posts?|articles?|posts?|pieces?|stories|story|essays?|write-?ups?|"
    r"tutorials?|guides?|documents?)"
)
_PLURAL_NOUN = re.compile(r"(?:articles|posts|pieces|stories|essays|write-?ups|tutorials|guides|documents)$")
_CONTAINER = r"(?:the|this|your|our|my) (?:index|collection|corpus|database|library|knowledge base)"
# What may follow a question without changing it: "... in the index", "... on Medium", "... here".
_TAIL = re.compile(
    rf"(?:\s*,?\s+(?:in|on|from|among|inside) (?:{_CONTAINER}|medium|the indexed articles)"
    r"|\s+(?:here|so far|on medium|please|at all))+$",
    re.IGNORECASE,
)
_LEAD = re.compile(
    r"^(?:(?:please|ok|okay|so|hey|hi)[, ]+)?"
    r"(?:(?:can|could|would) you (?:please )?(?:tell me|say|let me know|check)|do you know|tell me"
    r"|i(?:'d| would) like to know|i want to know|i wonder|please tell me)[, ]+",
    re.IGNORECASE,
)
_WRITE = r"(?:write|wrote|written|author|authored|publish|published|post|posted|pen|penned)"
_PUBLISHED = (
    r"(?:first )?(?:published|written|posted|released|put online|come out|came out|appear|appeared"
    r"|get published|go online|go up|posted online)"
)
_ABOUT = r"(?:about|on|regarding|concerning|related to|covering|discussing|mentioning|explaining)"
_DISCUSS = (
    r"(?:discuss|discusses|cover|covers|mention|mentions|talk about|talks about|deal with|deals with"
    r"|explain|explains|describe|describes|address|addresses|focus on|focuses on|relate to|relates to)"
)
_ASK_HAVE = r"(?:is there|are there|do you have|have you got|do we have|did you index|have you indexed)"
_INDEXED = (
    r"(?:are (?:there|indexed|available|stored|included|searchable)|have been indexed|do you have"
    rf"|have you got|have you indexed|did you index|do we have|exist|are in {_CONTAINER}"
    rf"|does {_CONTAINER} (?:hold|have|contain|include)|can you search)"
)

_LIST = r"(?:list|show|show me|give me|find|get)"
_SOME = r"(?:(?:all|of|the|any|these|your) )*"
_NAME_AUTHOR = r"(?:(?:author|writer)(?:'s name)?)"

# (kind, pattern, named): a pattern's <s> says which article, <a> names an author, <t> a topic.
# For <s>, `named` means the subject must say it is an article ("how old is X?" rarely asks
# about one); for <a> and <t>, whether the question itself says it asks about articles.
_RULES = [
    # authorship
    ("author", r"who (?:wrote|authored|penned|has written|had written) (?:about|on) (?P<t>.+)", True),
    ("author", r"who (?:wrote|authored|penned|has written|had written) (?P<s>.+)", False),
    ("author", r"who (?:is|was|are|were) the (?:authors?|writers?) of (?P<s>.+)", False),
    ("author", rf"(?:what is|what was) the (?:name of the )?{_NAME_AUTHOR} of (?P<s>.+)", False),
    ("author", r"(?:name|give me) the (?:author|writer) of (?P<s>.+)", False),
    ("author", r"by whom (?:was|were|is|are) (?P<s>.+?) (?:written|authored|penned)", False),
    ("author", r"(?P<s>.+?) (?:was|were|is|are) (?:written|authored|penned) by whom", False),
    ("author", r"who (?:is|was|are|were) (?P<s>.+?) (?:written )?by", True),
    ("author", r"who (?:is|was) the (?:author|writer)", True),
    # dates
    ("date", rf"when (?:was|were|is|did) (?P<s>.+?) {_PUBLISHED}", False),
    ("date", rf"(?:what|which) (?:date|day|year|month) (?:was|were|is|did) (?P<s>.+?) {_PUBLISHED}", False),
    (
        "date",
        r"(?:what is |what was )?(?:the )?(?:publication|publishing|release|posting) date of (?P<s>.+)",
        False,
    ),
    ("date", r"(?:what is|what was) the date of (?P<s>.+)", True),
    ("date", r"how (?:old|recent|new) (?:is|are) (?P<s>.+)", True),
    ("date", r"when is (?P<s>.+?) (?:from|dated)", True),
    # articles by an author
    (
        "by_author",
        rf"(?:which|what) {_NOUN} (?:are|were|is|was|have been|has been) (?:{_WRITE} )?by (?P<a>.+)",
        True,
    ),
    ("by_author", rf"(?:which|what) {_NOUN} (?:did|has|have|does) (?P<a>.+?) {_WRITE}", True),
    ("by_author", rf"(?:{_LIST} )?{_SOME}{_NOUN} (?:{_WRITE} )?by (?P<a>.+)", True),
    ("by_author", rf"{_ASK_HAVE} (?:an?|any|some) {_NOUN} (?:{_WRITE} )?by (?P<a>.+)", True),
    ("by_author", rf"how many {_NOUN} (?:are|were|have been|has been) (?:{_WRITE} )?by (?P<a>.+)", True),
    ("by_author", rf"how many {_NOUN} (?:did|has|have) (?P<a>.+?) {_WRITE}", True),
    ("by_author", rf"(?:(?:what are|which are|{_LIST}) )?(?P<a>.+?)(?:'s|') {_NOUN}", True),
    ("by_author", rf"what (?:else )?(?:did|has|have) (?P<a>.+?) {_WRITE}", False),
    # articles about a topic
    ("about", rf"(?:which|what) {_NOUN} (?:are|is|were|was) {_ABOUT} (?P<t>.+)", True),
    ("about", rf"(?:which|what) {_NOUN} {_DISCUSS} (?P<t>.+)", True),
    ("about", rf"{_ASK_HAVE} (?:an?|any|some) {_NOUN} (?:that (?:{_DISCUSS}) |{_ABOUT} )(?P<t>.+)", True),
    ("about", rf"(?:{_LIST} )?{_SOME}{_NOUN} {_ABOUT} (?P<t>.+)", True),
    ("about", rf"how many {_NOUN} (?:are|were|is) {_ABOUT} (?P<t>.+)", True),
    ("about", rf"how many {_NOUN} {_DISCUSS} (?P<t>.+)", True),
    # the whole collection
    ("collection", rf"(?:which|what|how many) {_NOUN} {_INDEXED}", True),
    (
        "collection",
        rf"what (?:is|has been|was|have you) (?:indexed|in {_CONTAINER})|what did you index",
        True,
    ),
    ("collection", rf"what does {_CONTAINER} (?:contain|hold|include|cover)", True),
    ("collection", rf"(?:what are|{_LIST}) {_SOME}(?:indexed {_NOUN}|{_NOUN} in {_CONTAINER})", True),
    ("collection", rf"{_LIST} {_SOME}{_NOUN}", True),
    ("collection", r"how (?:big|large) is (?:the|this|your) (?:index|collection|corpus)", True),
    # the authors
    ("authors", rf"who (?:are|were) the (?:authors|writers)(?: of {_SOME}(?:indexed )?{_NOUN})?", True),
    ("authors", rf"(?:which|what|how many) (?:authors|writers) {_INDEXED}", True),
    (
        "authors",
        rf"(?:which|what|how many) (?:authors|writers) (?:wrote|are behind) {_SOME}(?:indexed )?{_NOUN}",
        True,
    ),
    ("authors", rf"{_LIST} {_SOME}(?:authors|writers)", True),
]
_PATTERNS = [(kind, re.compile(p, re.IGNORECASE), named) for kind, p, named in _RULES]

# Words that cannot begin an author's name: "what did the author write?" asks about the text.
_NOT_A_NAME = frozenset(
    """the a an this that these those he she they it you i we his her their its my our your one
    someone anyone somebody anybody everyone who whom author writer date year title topic length
    publication popularity relevance newest oldest""".split()
)
_QUESTION_WORDS = frozenset("what how why which who whom whose when where whether".split())
_PRONOUN_SUBJECT = re.compile(r"(?:it|this|that|these|those|they|them)", re.IGNORECASE)
_QUOTED = re.compile(r"[\"“‘'](?P<t>.+?)[\"”’']")
_DETERMINER = r"(?:the|an?|this|that|these|those|your|any|some|all the|both)"
_ARTICLE_ABOUT = re.compile(
    rf"(?:{_DETERMINER} )?(?:indexed |medium )?(?P<n>{_NOUN})(?: (?:that|which) (?:is|are|was|were))?"
    rf"(?: (?:{_ABOUT}|titled|called|named|entitled|with the title|that (?:{_DISCUSS})|which (?:{_DISCUSS}))"
    r" (?P<t>.+))?",
    re.IGNORECASE,
)
_ARTICLE_BY = re.compile(rf"(?:{_DETERMINER} )?(?P<n>{_NOUN}) (?:{_WRITE} )?by (?P<a>.+)", re.IGNORECASE)
# "the NDCG article": at most four words, none of which starts a clause of its own, so that
# "the code mentioned in the article" is not read as an article about "code mentioned in".
_TOPIC_ARTICLE = re.compile(rf"{_DETERMINER} (?P<t>(?:[\w’'-]+ ){{1,4}}?)(?P<n>{_NOUN})", re.IGNORECASE)
_CLAUSE_WORDS = frozenset(
    "in by that which who whose mentioned cited quoted referenced used the a an this its their".split()
)


@dataclass(frozen=True)
class _Subject:
    topic: str = ""
    author: str = ""
    named: bool = False
    plural: bool = False
    back: bool = False


def _forms(text: str) -> list[str]:
    """The question without its courtesies and end marks: with and without a closing "in the
    index" (which names the collection in "what is in the index" and is noise elsewhere)."""
    text = " ".join(text.split()).replace("’", "'")
    text = re.sub(r"\b(who|what)'s\b", r"\1 is", text, flags=re.IGNORECASE)
    text = _LEAD.sub("", re.sub(r"[\s?!.]+$", "", text))
    bare = _TAIL.sub("", text).strip(" ,")
    return [bare, text] if bare != text else [text]


def _subject(s: str) -> _Subject | None:
    """Which article(s) `s` ("the article about NDCG", "“Title”", "the NDCG post") means."""
    s = _TAIL.sub("", s.strip(" ,")).strip()
    if not s:
        return None
    if _PRONOUN_SUBJECT.fullmatch(s):
        return _Subject(named=True, back=True)
    quoted = _QUOTED.fullmatch(s)
    if quoted:
        return _Subject(topic=quoted["t"].strip(), named=True)
    m = _ARTICLE_BY.fullmatch(s)
    if m:
        name = _name(m["a"])
        return _Subject(author=name, named=True, plural=_is_plural(m["n"])) if name else None
    m = _ARTICLE_ABOUT.fullmatch(s)
    if m:
        topic = (m["t"] or "").strip()
        inner = _QUOTED.fullmatch(topic)
        plural = _is_plural(m["n"])
        return _Subject(
            inner["t"] if inner else topic, named=True, plural=plural, back=not topic and not plural
        )
    m = _TOPIC_ARTICLE.fullmatch(s)
    if m and not _CLAUSE_WORDS & set(m["t"].lower().split()):
        return _Subject(topic=m["t"].strip(), named=True, plural=_is_plural(m["n"]))
    return _Subject(topic=s, named=False)


def _is_topic(topic: str) -> bool:
    """Whether `topic` names a subject a listing can match ("p-hacking", "SQL indexes"), rather
    than asking more ("SQL, and in what context?") or describing a theme that only reading the
    articles can judge ("using code or AI tools to get work done faster")."""
    words = topic.split()
    return (
        bool(content_words(topic))
        and len(words) <= MAX_TOPIC_WORDS
        and not re.search(r"[,;:]", topic)
        and not _QUESTION_WORDS & {w.lower() for w in words}
    )


def _is_plural(noun: str) -> bool:
    return bool(_PLURAL_NOUN.search(noun.lower()))


def _name(text: str) -> str:
    """`text` as an author's name, or "" when it cannot be one ("the author", "him")."""
    name = _TAIL.sub("", text).strip(" ,")
    words = name.split()
    if not words or len(words) > 6 or words[0].lower() in _NOT_A_NAME:
        return ""
    return name


def collection_question(question: str) -> CollectionQuery | None:
    """What `question` asks of the collection's metadata, or None when it asks what the
    articles say (see the module docstring for the rules)."""
    forms = _forms(question)
    if not forms[-1] or len(forms[-1]) > 300:
        return None
    for kind, pattern, needs_named in _PATTERNS:
        m = next((m for m in map(pattern.fullmatch, forms) if m), None)
        if not m:
            continue
        groups = m.groupdict()
        if kind in ("collection", "authors"):
            return CollectionQuery(kind)
        if not groups:
            return CollectionQuery(kind, back=True)  # "who is the author?"
        if groups.get("a") is not None:
            name = _name(groups["a"])
            return CollectionQuery(kind, author=name, named=needs_named) if name else None
        if groups.get("t") is not None:
            topic = _TAIL.sub("", groups["t"]).strip(" ,")
            return CollectionQuery(kind, topic=topic, plural=True) if _is_topic(topic) else None
        sub = _subject(groups["s"])
        if sub is None or (needs_named and not sub.named):
            return None
        if kind == "author" and sub.author:
            return None  # "who wrote the article by X?" answers itself
        if kind == "author" and sub.named and sub.plural and not sub.topic:
            return CollectionQuery("authors")  # "who wrote the articles?"
        return CollectionQuery(kind, sub.topic, sub.author, sub.named, sub.plural, sub.back)
    return None


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
        meant = _articles_meant(query, articles, retriever, cited)
        if not meant:
            return None
        field = "author" if query.kind == "author" else "published"
        if not query.named and not all(getattr(a, field) for a, _ in meant):
            # "Who wrote To Kill a Mockingbird?" over an encyclopaedia page of that title asks
            # about the book, not the page: without the page's own author, it goes to the text.
            return None
        for a, chunk in meant:
            (_say_author if query.kind == "author" else _say_date)(out, a, chunk)
    elif query.kind == "by_author":
        found = by_author(query.author, articles)
        if not found:
            if not query.named:
                return None  # "what did Fisher write?" may be about the text
            out.say(f"No indexed article is by {query.author}.", [])
            return out.answer(question)
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
    elif query.kind == "about":
        titled, others = about(query.topic, articles, retriever)
        if not titled and not others:
            return None
        titled, others = titled[:MAX_LISTED], others[: max(0, MAX_LISTED - len(titled))]
        if titled:
            shown = [out.title(a, c) for a, c in titled]
            verb, noun = ("is", "article") if len(titled) == 1 else ("are", "articles")
            cites = [out.n(a) for a, _ in titled]
            out.say(
                f"{_count(len(titled))} indexed {noun} {verb} about {query.topic}: {_joined(shown)}.", cites
            )
        if others:
            shown = [out.title(a, c) for a, c in others]
            cites = [out.n(a) for a, _ in others]
            if titled:
                verb = "also discusses" if len(others) == 1 else "also discuss"
                out.say(f"{_joined(shown)} {verb} {query.topic}.", cites)
            else:
                verb, noun = ("discusses", "article") if len(others) == 1 else ("discuss", "articles")
                out.say(
                    f"{_count(len(others))} indexed {noun} {verb} {query.topic}: {_joined(shown)}.", cites
                )
    elif query.kind == "collection":
        if not articles:
            return None
        shown = [out.title(a) for a in articles[:MAX_LISTED]]
        cites = [out.n(a) for a in articles[:MAX_LISTED]]
        if len(articles) == 1:
            out.say(f"One article is indexed: {shown[0]}.", cites)
        elif len(articles) <= MAX_LISTED:
            out.say(f"{_count(len(articles))} articles are indexed: {_joined(shown)}.", cites)
        else:
            out.say(
                f"{len(articles):,} articles are indexed; the first {MAX_LISTED}: {_joined(shown)}.", cites
            )
    elif query.kind == "authors":
        names = {}
        for a in articles:
            if a.author:
                names.setdefault(a.author, []).append(a)
        if not names:
            return None
        listed = []
        cites = []
        for name, own in list(names.items())[:MAX_LISTED]:
            ns = [out.n(a) for a in own]
            cites += ns
            listed.append(name + " " + "".join(f"[{n}]" for n in ns))
        more = f" and {len(names) - MAX_LISTED:,} more" if len(names) > MAX_LISTED else ""
        noun = "author" if len(names) == 1 else "authors"
        out.say(
            f"The indexed articles name {_count(len(names), False)} {noun}: {_joined(listed)}{more}.", cites
        )
        unnamed = sum(1 for a in articles if not a.author)
        if unnamed:
            noun, verb = ("article", "records") if unnamed == 1 else ("articles", "record")
            out.say(f"{_count(unnamed)} {noun} {verb} no author.", [])
    else:
        return None
    return out.answer(question)
