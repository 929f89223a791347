"""A fitted sentence scorer for extractive answers, against the hand-set one.

`rag.answer` ranks candidate sentences by similarity to the question, plus 0.2 x the share of the
question's words they hold, plus a bonus for the kind of value asked for. This fits a ridge
regression instead, over those and ten more features of a sentence (its source's rank, its
position, its length, its neighbours' similarity, how far it is below the best, whether it holds a
number or opens with a reference, its share of new words), to predict the gold-answer recall of
the passage it would bring. The fitted score replaces the hand-set one (times a scale, since the
choice of runner-ups compares scores with the best), and the rest of the answer is built as
usual. Folds are by article (a question's first relevant article), so every question is answered
by a scorer fitted on other articles' questions.

Run: python -m studies.sentence_ranker [--folds 4] [--out FILE]   (about 2 minutes)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np

from rag.answer import extractive
from rag.answer.extractive import answerable_sentence, best_first_unique, fits_kind, passage, question_kind
from rag.assembly import open_answerer
from rag.config import PROJECT_ROOT, load_settings
from rag.evaluation.questions import asked_text, load_questions
from rag.text import content_words

FEATURES = (
    "similarity overlap kind source_rank first position log_words next previous below_best number "
    "reference new_words"
).split()


def features(question: str, qvec: np.ndarray, sources: list) -> list[tuple[list[float], int, int]]:
    """(features, source number, sentence index) of every answerable sentence."""
    qwords, kind = content_words(question), question_kind(question)
    top = max(float((s.vectors @ qvec).max()) for s in sources)
    out = []
    for s in sources:
        sims = s.vectors @ qvec
        for i, sent in enumerate(s.sentences):
            if not answerable_sentence(sent):
                continue
            words = content_words(sent)
            x = [
                float(sims[i]),
                len(qwords & words) / max(1, len(qwords)),
                float(bool(kind and fits_kind(kind, sent, qwords))),
                (s.n - 1) / 3,
                float(i == 0),
                min(i, 10) / 10,
                float(np.log(len(sent.split()))),
                float(sims[i + 1]) if i + 1 < len(sims) else 0.0,
                float(sims[i - 1]) if i > 0 else 0.0,
                float(sims[i]) - top,
                float(bool(extractive._NUMBER_RE.search(sent))),
                float(bool(extractive._REFERENCE_RE.match(sent))),
                len(words - qwords) / max(1, len(words)),
            ]
            out.append((x, s.n, i))
    return out


def ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    xb = np.hstack([x, np.ones((len(x), 1))])
    return np.linalg.solve(xb.T @ xb + lam * np.eye(xb.shape[1]), xb.T @ y)


def fitted_ranking(w: np.ndarray, scale: float) -> Callable[..., list[tuple[float, int, int]]]:
    """A replacement for extractive.ranked_sentences that scores with the fitted weights."""

    def ranked(question: str, qvec: np.ndarray, sources: list) -> list[tuple[float, int, int]]:
        scored = [(scale * float(w[:-1] @ x + w[-1]), n, i) for x, n, i in features(question, qvec, sources)]
        return best_first_unique(scored, sources)

    return ranked


def recall(gold: set[str], text: str) -> float:
    return len(gold & content_words(text)) / len(gold)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "studies" / "SENTENCE_RANKER.md")
    args = ap.parse_args()
    s = load_settings(environ={})
    answerer = open_answerer(s)
    retriever = answerer.retriever
    qs = load_questions(PROJECT_ROOT / "eval" / "questions.jsonl")
    by_id = {q.id: q for q in qs}
    cases = []  # the answerable questions the extractive answer does not abstain on
    for q in qs:
        gold = content_words(q.answer)
        if not q.relevant or not gold:
            continue
        asked = asked_text(q, by_id)
        ans = answerer.ask(asked, mode="extractive")
        if ans.abstained:
            continue
        qvec = retriever.embed_query(asked)
        sources = answerer.sources(retriever.search(asked, k=s.answer.sources, query_vector=qvec))
        article = min(e.url for e in q.relevant)
        cases.append(dict(asked=asked, gold=gold, qvec=qvec, sources=sources, article=article))
        cases[-1]["shipped"] = recall(gold, ans.answer)
    articles = sorted({c["article"] for c in cases})
    fold = {c["article"]: articles.index(c["article"]) % args.folds for c in cases}
    xs, ys, fs = [], [], []
    for c in cases:
        by_n = {src.n: src for src in c["sources"]}
        for x, n, i in features(c["asked"], c["qvec"], c["sources"]):
            sents = by_n[n].sentences
            xs.append(x)
            ys.append(recall(c["gold"], " ".join(sents[j] for j in passage(sents, i) or [i])))
            fs.append(fold[c["article"]])
    x, y, f = np.array(xs), np.array(ys), np.array(fs)
    shipped = extractive.ranked_sentences
    lines = [
        "# A fitted sentence scorer for extractive answers (studies/sentence_ranker.py)",
        "",
        f"Run on {date.today()}: {len(cases)} answerable development questions the extractive answer "
        f"does not abstain on, {len(x)} candidate sentences, folds by article ({len(articles)} articles "
        f"in {args.folds} folds). Gold-word recall of the extractive answer:",
        "",
        "| sentence scorer | gold-word recall |",
        "|---|---:|",
        f"| hand-set (shipped) | {np.mean([c['shipped'] for c in cases]):.3f} |",
    ]
    for scale in (1.0, 2.0, 4.0):
        for lam in (1.0, 10.0):
            got = []
            for k in range(args.folds):
                extractive.ranked_sentences = fitted_ranking(ridge(x[f != k], y[f != k], lam), scale)
                for c in cases:
                    if fold[c["article"]] == k:
                        sel = answerer.select(c["asked"], c["qvec"], c["sources"])
                        got.append(recall(c["gold"], " ".join(t for t, _, _ in sel)))
            extractive.ranked_sentences = shipped
            lines.append(f"| fitted, scale {scale:g}, ridge {lam:g}, out of fold | {np.mean(got):.3f} |")
    weights = np.round(ridge(x, y, 1.0), 3)
    named = ", ".join(f"{n} {w:+.3f}" for n, w in zip([*FEATURES, "bias"], weights, strict=True))
    lines += ["", f"Weights fitted on all the questions (ridge 1): {named}."]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
