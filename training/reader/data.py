"""(question, passage) pairs for the reader, built from SQuAD 2.0 files.

Every pair has a label (1: the passage answers the question) and, when answerable, the answer's
character span in the passage. Besides SQuAD's own pairs (answerable, and the questions written to
be unanswerable beside their paragraph), negatives are made the way SQuAD 2.0's writers made
theirs, from answerable questions:

- `other_paragraph`: the question with another paragraph of the same article that does not
  contain its answer (near-topic, the case rag's users hit most);
- `other_article`: the question with a paragraph of another article (easy; a few, so the score
  also means "on topic at all");
- `swap`: a name, number or year of the question that the paragraph holds is replaced by one of
  the same kind from elsewhere in the article, or from elsewhere in the same paragraph, so the
  paragraph no longer answers it;
- `antonym`: a word of the question replaced by its opposite (first/last, largest/smallest, ...);
- `negation`: "not" (or "never") put after the question's auxiliary verb.

All of it is deterministic for a given seed.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pair:
    question: str
    passage: str
    label: int  # 1: the passage answers the question
    kind: str  # answerable, impossible, other_paragraph, other_article, swap, antonym, negation
    answers: tuple[tuple[int, str], ...] = ()  # (char start, text) of each gold answer, when answerable
    qid: str = ""
    article: int = 0
    paragraph: int = 0


@dataclass(frozen=True)
class Question:
    qid: str
    question: str
    impossible: bool
    answers: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Paragraph:
    article: int
    index: int
    context: str
    questions: tuple[Question, ...]


def load_squad(path: Path) -> list[list[Paragraph]]:
    """Articles as lists of paragraphs, in file order."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    out = []
    for a, art in enumerate(data):
        paras = []
        for p, para in enumerate(art["paragraphs"]):
            qs = tuple(
                Question(
                    q["id"],
                    q["question"].strip(),
                    bool(q.get("is_impossible", False)),
                    tuple((ans["answer_start"], ans["text"]) for ans in q.get("answers", [])),
                )
                for q in para["qas"]
            )
            paras.append(Paragraph(a, p, para["context"], qs))
        out.append(paras)
    return out


# Names: runs of capitalised words (with "of", "the", "de" inside); numbers and years.
_NAME = re.compile(r"\b[A-Z][\w'’\-]*(?:\s+(?:of|the|de|von|van|and)?\s*[A-Z][\w'’\-]*)*")
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b")
_NUMBER = re.compile(r"\b\d[\d,]*(?:\.\d+)?\b")
_QWORDS = {
    "What",
    "Which",
    "Who",
    "Whom",
    "Whose",
    "When",
    "Where",
    "Why",
    "How",
    "In",
    "On",
    "At",
    "The",
    "A",
    "An",
    "Is",
    "Was",
    "Are",
    "Were",
    "Did",
    "Does",
    "Do",
    "For",
    "From",
    "To",
    "By",
    "Of",
    "During",
    "After",
    "Before",
    "According",
    "Along",
    "Since",
    "With",
    "As",
    "If",
}

ANTONYMS = {
    "first": "last",
    "last": "first",
    "largest": "smallest",
    "smallest": "largest",
    "biggest": "smallest",
    "highest": "lowest",
    "lowest": "highest",
    "most": "least",
    "least": "most",
    "earliest": "latest",
    "latest": "earliest",
    "before": "after",
    "after": "before",
    "increase": "decrease",
    "decrease": "increase",
    "increased": "decreased",
    "decreased": "increased",
    "won": "lost",
    "lost": "won",
    "win": "lose",
    "lose": "win",
    "best": "worst",
    "worst": "best",
    "longest": "shortest",
    "shortest": "longest",
    "older": "younger",
    "younger": "older",
    "oldest": "youngest",
    "youngest": "oldest",
    "more": "fewer",
    "fewer": "more",
    "early": "late",
    "late": "early",
    "north": "south",
    "south": "north",
    "east": "west",
    "west": "east",
    "northern": "southern",
    "southern": "northern",
    "eastern": "western",
    "western": "eastern",
    "positive": "negative",
    "negative": "positive",
    "success": "failure",
    "successful": "unsuccessful",
    "major": "minor",
    "minor": "major",
    "start": "end",
    "began": "ended",
    "begin": "end",
    "started": "ended",
    "ended": "started",
    "high": "low",
    "low": "high",
    "large": "small",
    "small": "large",
    "rich": "poor",
    "poor": "rich",
    "public": "private",
    "private": "public",
    "male": "female",
    "female": "male",
    "top": "bottom",
    "above": "below",
    "below": "above",
    "inside": "outside",
    "outside": "inside",
    "maximum": "minimum",
    "minimum": "maximum",
    "new": "old",
    "old": "new",
    "accepted": "rejected",
    "rejected": "accepted",
    "allowed": "banned",
    "banned": "allowed",
    "support": "oppose",
    "supported": "opposed",
    "opposed": "supported",
    "gain": "loss",
    "loss": "gain",
}
# An auxiliary followed by a lower-case word that is not a determiner or pronoun ("was born", "were
# buried"), so "not" lands before the verb rather than before the subject ("did not Beyoncé ...").
_AUX = re.compile(
    r"\b(is|was|are|were|does|did|do|can|could|has|had|have|will|would|should)\s+"
    r"(?!(?:not|never|the|a|an|his|her|its|their|he|she|they|it|this|that|these|those|there)\b)(?=[a-z])"
)


def mentions(text: str) -> dict[str, set[str]]:
    """Names, years and other numbers in `text`, by kind."""
    years = set(m.group(0) for m in _YEAR.finditer(text))
    numbers = set(m.group(0) for m in _NUMBER.finditer(text)) - years
    names = set()
    for m in _NAME.finditer(text):
        s = m.group(0).strip()
        words = s.split()
        while words and words[0] in _QWORDS:
            words = words[1:]
        if words and len(" ".join(words)) > 2:
            names.add(" ".join(words))
    return {"name": names, "year": years, "number": numbers}


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def _distinct(a: str, b: str) -> bool:
    """Neither is a spelling or a part of the other (Beyonce / Beyoncé, Chopin / Frédéric Chopin)."""
    fa, fb = _fold(a), _fold(b)
    return fa not in fb and fb not in fa


def _replace_once(text: str, old: str, new: str) -> str:
    return re.sub(r"(?<![\w])" + re.escape(old) + r"(?![\w])", new, text, count=1)


def swap_question(
    q: str, context: str, article_mentions: dict[str, set[str]], rng: random.Random
) -> str | None:
    """The question with one of its names/years/numbers that the paragraph holds replaced by another
    of the same kind: from elsewhere in the article (absent from this paragraph) or, half the time,
    from elsewhere in this paragraph."""
    qm = mentions(q)
    cm = mentions(context)
    cands = [(kind, m) for kind, ms in qm.items() for m in sorted(ms) if m in context]
    if not cands:
        return None
    kind, old = rng.choice(cands)
    inside = sorted(x for x in cm[kind] if _distinct(x, old) and x not in q)
    outside = sorted(
        x for x in article_mentions[kind] if x not in context and _distinct(x, old) and x not in q
    )
    pools = [p for p in ((inside if rng.random() < 0.5 else outside), inside, outside) if p]
    if not pools:
        return None
    new = rng.choice(pools[0])
    out = _replace_once(q, old, new)
    return out if out != q else None


def antonym_question(q: str, rng: random.Random) -> str | None:
    words = [w for w in re.findall(r"[A-Za-z]+", q) if w.lower() in ANTONYMS]
    if not words:
        return None
    w = rng.choice(sorted(set(words)))
    new = ANTONYMS[w.lower()]
    if w[0].isupper():
        new = new.capitalize()
    out = _replace_once(q, w, new)
    return out if out != q else None


def negate_question(q: str, rng: random.Random) -> str | None:
    m = _AUX.search(q)
    if not m:
        return None
    word = "never" if rng.random() < 0.3 else "not"
    return q[: m.end()] + word + " " + q[m.end() :]


def base_pairs(articles: list[list[Paragraph]]) -> list[Pair]:
    """SQuAD's own pairs: each question with its own paragraph."""
    out = []
    for paras in articles:
        for p in paras:
            for q in p.questions:
                out.append(
                    Pair(
                        q.question,
                        p.context,
                        0 if q.impossible else 1,
                        "impossible" if q.impossible else "answerable",
                        q.answers,
                        q.qid,
                        p.article,
                        p.index,
                    )
                )
    return out


def other_paragraph_pairs(
    articles: list[list[Paragraph]], rng: random.Random, per_question: int = 1
) -> list[Pair]:
    """Answerable questions with other paragraphs of their article that do not hold any gold answer."""
    out = []
    for paras in articles:
        for p in paras:
            for q in p.questions:
                if q.impossible:
                    continue
                golds = [t.lower() for _, t in q.answers]
                others = [
                    o for o in paras if o.index != p.index and not any(g in o.context.lower() for g in golds)
                ]
                for o in rng.sample(others, min(per_question, len(others))):
                    out.append(
                        Pair(q.question, o.context, 0, "other_paragraph", (), q.qid, o.article, o.index)
                    )
    return out


def synthetic_pairs(articles: list[list[Paragraph]], seed: int, other_article: int = 800) -> list[Pair]:
    """Every constructed negative (module docstring), seeded."""
    rng = random.Random(seed)
    out = other_paragraph_pairs(articles, rng)
    for paras in articles:
        art_m: dict[str, set[str]] = {"name": set(), "year": set(), "number": set()}
        for p in paras:
            for k, v in mentions(p.context).items():
                art_m[k] |= v
        for p in paras:
            for q in p.questions:
                if q.impossible:
                    continue
                made = {
                    "swap": swap_question(q.question, p.context, art_m, rng),
                    "antonym": antonym_question(q.question, rng),
                    "negation": negate_question(q.question, rng) if rng.random() < 0.3 else None,
                }
                for kind, text in made.items():
                    if text:
                        out.append(Pair(text, p.context, 0, kind, (), q.qid, p.article, p.index))
    if len(articles) > 1:
        answerable = [(p, q) for paras in articles for p in paras for q in p.questions if not q.impossible]
        for p, q in rng.sample(answerable, min(other_article, len(answerable))):
            others = [a for a in range(len(articles)) if a != p.article]
            o = rng.choice(articles[rng.choice(others)])
            out.append(Pair(q.question, o.context, 0, "other_article", (), q.qid, o.article, o.index))
    return out


def training_pairs(path: Path, seed: int) -> list[Pair]:
    articles = load_squad(path)
    pairs = base_pairs(articles) + synthetic_pairs(articles, seed)
    random.Random(seed).shuffle(pairs)
    return pairs


def dev_pairs(path: Path, seed: int, synthetic_cap: int = 300) -> list[Pair]:
    """Measuring pairs: every question with its own paragraph, each answerable one with one other
    paragraph of its article, and a sample of constructed negatives (to compare with the real ones)."""
    articles = load_squad(path)
    rng = random.Random(seed)
    pairs = base_pairs(articles) + other_paragraph_pairs(articles, rng)
    syn = [
        p
        for p in synthetic_pairs(articles, seed, other_article=0)
        if p.kind in ("swap", "antonym", "negation")
    ]
    pairs += rng.sample(syn, min(synthetic_cap, len(syn)))
    return pairs


if __name__ == "__main__":
    import collections
    import sys

    ps = training_pairs(Path(sys.argv[1]), 13)
    print(len(ps), collections.Counter(p.kind for p in ps))
    for kind in ("swap", "antonym", "negation"):
        ex = [p for p in ps if p.kind == kind][:4]
        for p in ex:
            print(kind, "|", p.question)
