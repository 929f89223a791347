"""Examples for the answer line: (prompt, target) built from SQuAD 2.0 files.

The prompt is exactly what `rag.answer.line` shows the model (its `prompt`): the question and two
or three numbered sources. The target is the shortest gold answer with its citation ("France.
[2]") or the refusal line ("No answer."). Kinds:

- `answerable`: the sentence holding the answer and one or two other sentences of the same article
  (half the time of its paragraph) as distractors, shuffled; each source is labelled with the
  article's title, as rag labels a chunk.
- `passage`: rag's own format: each source a passage of two consecutive sentences (the answer's
  passage and one or two from other paragraphs), labelled "Title > Heading" half the time (SQuAD
  has no headings: "Section N" stands in for one) and "Title" otherwise.
- `impossible`: SQuAD's questions written to be unanswerable beside their paragraph, with the
  paragraph's sentences closest to them in words (two or three) → refusal.
- `removed`: an answerable question whose answer sentence is removed (no source holds a gold
  answer) → refusal.

No distractor holds a gold answer (SQuAD normalisation), so the cited number is unambiguous.
Deterministic for a seed. `dev_examples` builds the same format from dev.json, for measuring.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from rag.answer.line import REFUSAL, prompt  # noqa: E402
from rag.text import split_sentences  # noqa: E402


@dataclass(frozen=True)
class Example:
    prompt: str
    target: str  # "<answer>. [n]" or REFUSAL
    kind: str  # answerable, passage, impossible, removed
    qid: str
    question: str
    answers: tuple[str, ...]  # gold answers (empty when the target is the refusal)
    evidence: tuple[tuple[int, str, str], ...]


_PUNCT = set(string.punctuation)


@lru_cache(maxsize=200_000)
def normalize_answer(s: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def contains_gold(text: str, answers: tuple[str, ...] | list[str]) -> bool:
    t = f" {normalize_answer(text)} "
    return any(normalize_answer(a) and f" {normalize_answer(a)} " in t for a in answers)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Para:
    title: str
    sentences: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]  # char span of each sentence in the context
    qas: tuple[dict, ...]


def load(path: Path) -> list[list[Para]]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    out = []
    for art in data:
        title = art["title"].replace("_", " ")
        paras = []
        for p in art["paragraphs"]:
            ctx = p["context"]
            sents = split_sentences(ctx)
            spans, at = [], 0
            for s in sents:
                i = ctx.find(s, at)
                i = at if i < 0 else i
                spans.append((i, i + len(s)))
                at = i + len(s)
            paras.append(Para(title, tuple(sents), tuple(spans), tuple(p["qas"])))
        out.append(paras)
    return out


def sentence_of(para: Para, char: int) -> int:
    for i, (a, b) in enumerate(para.spans):
        if a <= char < b + 1:
            return i
    return len(para.spans) - 1


def _words(s: str) -> set[str]:
    return set(normalize_answer(s).split())


def target(answers: list[str], n: int) -> str:
    short = min(answers, key=len).strip().rstrip(".")
    return f"{short}. [{n}]"


def _distractors(
    art: list[Para], pi: int, si: int, answers: list[str], k: int, rng: random.Random, width: int = 1
) -> list[str]:
    """k texts of `width` consecutive sentences from the article, none holding a gold answer and
    none overlapping sentence si of paragraph pi; half the time from the same paragraph."""
    pool_same, pool_other = [], []
    for qj, p in enumerate(art):
        for j in range(0, len(p.sentences) - width + 1):
            if qj == pi and j <= si < j + width:
                continue
            text = " ".join(p.sentences[j : j + width])
            if contains_gold(text, answers) or len(text.split()) > 60 or len(text.split()) < 5:
                continue
            (pool_same if qj == pi else pool_other).append(text)
    out: list[str] = []
    for _ in range(k):
        pool = pool_same if (pool_same and (rng.random() < 0.5 or not pool_other)) else pool_other
        if not pool:
            break
        t = pool.pop(rng.randrange(len(pool)))
        out.append(t)
    return out


def _numbered(texts: list[tuple[str, str]], rng: random.Random) -> list[tuple[int, str, str]]:
    order = list(range(len(texts)))
    rng.shuffle(order)
    return [(n + 1, texts[i][0], texts[i][1]) for n, i in enumerate(order)]


def _label(title: str, kind: str, rng: random.Random) -> str:
    if kind != "passage" or rng.random() < 0.5:
        return title
    return f"{title} > Section {rng.randint(1, 9)}"


def shuffled_questions(path: Path, rng: random.Random) -> tuple[Any, list[Any], list[Any]]:
    """A SQuAD file's articles, and its answerable and impossible questions as (article index,
    paragraph index, question), each list shuffled by `rng` (answerable first)."""
    arts = load(path)
    answerable: list[Any] = []
    impossible: list[Any] = []
    for ai, art in enumerate(arts):
        for pi, p in enumerate(art):
            for q in p.qas:
                (impossible if q.get("is_impossible") else answerable).append((ai, pi, q))
    rng.shuffle(answerable)
    rng.shuffle(impossible)
    return arts, answerable, impossible


def build(
    path: Path, seed: int, n_answerable: int, n_passage: int, n_impossible: int, n_removed: int
) -> list[Example]:
    """A shuffled list with that many examples of each kind (fewer when the file runs out)."""
    rng = random.Random(seed)
    arts, answerable, impossible = shuffled_questions(path, rng)
    out: list[Example] = []
    used = 0

    def pos(kind: str, count: int) -> None:
        nonlocal used
        made = 0
        while made < count and used < len(answerable):
            ai, pi, q = answerable[used]
            used += 1
            ex = positive(arts[ai], pi, q, kind, rng)
            if ex:
                out.append(ex)
                made += 1

    pos("answerable", n_answerable)
    pos("passage", n_passage)
    made = 0
    for ai, pi, q in impossible:
        if made >= n_impossible:
            break
        out.append(negative_impossible(arts[ai][pi], q, rng))
        made += 1
    made = 0
    while made < n_removed and used < len(answerable):
        ai, pi, q = answerable[used]
        used += 1
        ex = negative_removed(arts[ai], pi, q, rng)
        if ex:
            out.append(ex)
            made += 1
    rng.shuffle(out)
    return out


def positive(art: list[Para], pi: int, q: dict, kind: str, rng: random.Random) -> Example | None:
    p = art[pi]
    answers = [a["text"] for a in q["answers"]]
    if not answers:
        return None
    si = sentence_of(p, q["answers"][0]["answer_start"])
    width = 2 if kind == "passage" else 1
    if kind == "passage":
        start = max(0, min(si - rng.randint(0, 1), len(p.sentences) - 2))
        own = " ".join(p.sentences[start : start + 2])
    else:
        own = p.sentences[si]
    if not contains_gold(own, answers) or len(own.split()) > 70:
        return None
    k = rng.choice([1, 2, 2]) if kind == "answerable" else rng.choice([1, 2])
    dis = _distractors(art, pi, si, answers, k, rng, width)
    if not dis:
        return None
    texts = [(_label(p.title, kind, rng), t) for t in [own, *dis]]
    ev = _numbered(texts, rng)
    n = next(n for n, _, t in ev if t == own)
    return Example(
        prompt(q["question"].strip(), ev),
        target(answers, n),
        kind,
        q["id"],
        q["question"].strip(),
        tuple(answers),
        tuple(ev),
    )


def _closest(p: Para, question: str, k: int, skip: set[int] = frozenset()) -> list[str]:
    qw = _words(question)
    ranked = sorted(
        (i for i in range(len(p.sentences)) if i not in skip),
        key=lambda i: (-len(qw & _words(p.sentences[i])), i),
    )
    return [p.sentences[i] for i in sorted(ranked[:k])]


def negative_impossible(p: Para, q: dict, rng: random.Random) -> Example:
    texts = [(p.title, t) for t in _closest(p, q["question"], rng.choice([2, 3]))]
    ev = _numbered(texts, rng)
    return Example(
        prompt(q["question"].strip(), ev),
        REFUSAL,
        "impossible",
        q["id"],
        q["question"].strip(),
        (),
        tuple(ev),
    )


def negative_removed(art: list[Para], pi: int, q: dict, rng: random.Random) -> Example | None:
    p = art[pi]
    answers = [a["text"] for a in q["answers"]]
    if not answers:
        return None
    # Every sentence that holds a gold answer goes, not only the one SQuAD marked.
    skip = {i for i, s in enumerate(p.sentences) if contains_gold(s, answers)}
    texts = [t for t in _closest(p, q["question"], rng.choice([2, 3]), skip)]
    if len(texts) < 2:
        texts += _distractors(art, pi, -1, answers, 2 - len(texts), rng)
    if not texts:
        return None
    ev = _numbered([(p.title, t) for t in texts], rng)
    return Example(
        prompt(q["question"].strip(), ev), REFUSAL, "removed", q["id"], q["question"].strip(), (), tuple(ev)
    )


def dev_examples(path: Path, seed: int, n_answerable: int, n_impossible: int) -> list[Example]:
    """The measuring set from dev.json: answerable (one sentence per source, as `answerable`) and
    SQuAD's impossible questions (as `impossible`), in that order."""
    rng = random.Random(seed)
    arts, ans, imp = shuffled_questions(path, rng)
    out: list[Example] = []
    for ai, pi, q in ans:
        if len(out) >= n_answerable:
            break
        ex = positive(arts[ai], pi, q, "answerable", rng)
        if ex:
            out.append(ex)
    for ai, pi, q in imp[:n_impossible]:
        ex = negative_impossible(arts[ai][pi], q, rng)
        # Measured against the gold answers of nothing; kept for the decline rate and the AUC.
        out.append(ex)
    return out


if __name__ == "__main__":
    import os

    squad = Path(os.environ.get("RAG_SHARED", REPO.parent / "shared")) / "benchmarks" / "squad2"
    exs = build(squad / "train.json", 13, 8, 4, 2, 2)
    for e in exs[:6]:
        print(e.kind, "|", e.prompt, "=>", e.target, "\n")
