"""What a reader checkpoint is judged on (dev pairs from data.dev_pairs):

- `auc_same_paragraph`: ROC AUC of the score, answerable vs written-to-be-unanswerable questions,
  each with its own paragraph (SQuAD 2.0's hard case);
- `auc_own_vs_other`: answerable questions with their own paragraph vs with another paragraph of the
  same article (near-topic passages);
- `auc_synthetic`: answerable vs the constructed negatives (swap, antonym, negation) made from the
  dev questions the same way as for training, to compare with the real ones;
- span `exact` and `f1` (SQuAD's normalisation, best over gold answers) on answerable pairs, and
  `sentence_contains_gold`: a gold answer lies inside the passage sentence that holds the span.
"""

from __future__ import annotations

import collections
import re
import string

import numpy as np


def roc_auc(pos: list[float], neg: list[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if not pos or not neg:
        return float("nan")
    scores = np.concatenate([np.asarray(pos, float), np.asarray(neg, float)])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    s = scores[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = len(pos), len(neg)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def normalize_answer(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1(pred: str, gold: str) -> float:
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if not p or not g:
        return float(p == g)
    if same == 0:
        return 0.0
    prec, rec = same / len(p), same / len(g)
    return 2 * prec * rec / (prec + rec)


_SENT_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def sentence_at(text: str, char: int) -> str:
    """The sentence of `text` that holds character `char`."""
    start = 0
    for m in _SENT_END.finditer(text):
        if m.end() > char:
            return text[start : m.start()]
        start = m.end()
    return text[start:]


def score(pairs, scores, spans) -> dict[str, float]:
    """pairs: data.Pair list; scores: float per pair; spans: (start_char, end_char) per pair."""
    own_pos, imp, other, syn = [], [], [], []
    by_kind = collections.defaultdict(list)
    em, fs, contains, lengths = [], [], [], []
    for p, sc, (a, b) in zip(pairs, scores, spans, strict=True):
        by_kind[p.kind].append(sc)
        if p.kind == "answerable":
            own_pos.append(sc)
            pred = p.passage[a:b]
            golds = [t for _, t in p.answers]
            em.append(max(float(normalize_answer(pred) == normalize_answer(g)) for g in golds))
            fs.append(max(f1(pred, g) for g in golds))
            sent = normalize_answer(sentence_at(p.passage, a))
            contains.append(float(any(normalize_answer(g) in sent for g in golds)))
            lengths.append(len(pred.split()))
        elif p.kind == "impossible":
            imp.append(sc)
        elif p.kind == "other_paragraph":
            other.append(sc)
        else:
            syn.append(sc)
    out = {
        "auc_same_paragraph": roc_auc(own_pos, imp),
        "auc_own_vs_other": roc_auc(own_pos, other),
        "auc_synthetic": roc_auc(own_pos, syn),
        "exact": float(np.mean(em)) if em else float("nan"),
        "f1": float(np.mean(fs)) if fs else float("nan"),
        "sentence_contains_gold": float(np.mean(contains)) if contains else float("nan"),
        "span_words_median": float(np.median(lengths)) if lengths else float("nan"),
    }
    for kind in ("swap", "antonym", "negation"):
        out[f"auc_{kind}"] = roc_auc(own_pos, by_kind.get(kind, []))
    return {k: round(v, 4) for k, v in out.items()}
