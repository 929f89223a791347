"""Recognising a question about the collection itself ("who wrote the article about NDCG?",
"which articles are by Cai Parry-Jones?"), by the shape of the question alone, never by our
articles' titles. rag/answer/collection.py answers what is recognised here; its docstring lists
the shapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.text import content_words

KINDS = ("author", "date", "by_author", "about", "collection", "authors")
MAX_TOPIC_WORDS = 5  # a longer "which articles are about ..." describes a theme, not a subject


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
