"""Query likelihood as an abstention signal: does the shipped LLM tell answerable questions apart?

For every development question (follow-ups left out, as the abstention study does) the top three
hybrid chunks are scored by the mean log-probability of the question given the chunk
(studies.ql.question_likelihood), and once with an empty passage. Two signals come from that:
the best chunk's likelihood ("ql") and how much the passage raises it over no passage ("pmi",
pointwise mutual information between passage and question). Each is compared with the default
signal (the mean similarity of the three best sentences) by its ROC AUC for answerable against
unanswerable, and added to the default model in the same cross-validation as `rag eval --answers`.

Run: python -m studies.ql_abstention [--out studies/QL_ABSTENTION.md]   (about 15 minutes)
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

from rag.answer import load_llm, model_file
from rag.config import PROJECT_ROOT
from rag.evaluation.answers import cv_groups
from studies.ql import question_likelihood
from studies.signal_study import signal_tables, study_setup

NEW = {
    "ql": "mean log-probability of the question given the best of the top three chunks",
    "pmi": "that, minus the question's mean log-probability given an empty passage",
}
MODELS = {
    "top-3 similarity (default)": ["sentence_cos_top3"],
    "top-3 similarity + pmi": ["sentence_cos_top3", "pmi"],
    "top-3 similarity + ql + pmi": ["sentence_cos_top3", "ql", "pmi"],
    "pmi alone": ["pmi"],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "studies" / "QL_ABSTENTION.md")
    args = ap.parse_args()
    s, answerer, qs, y = study_setup()
    llm = load_llm(model_file(s.llm), s.llm, logits_all=True, n_ctx=1024)
    rows, t0 = [], time.perf_counter()
    for q in qs:
        sig, _ = answerer.question_signals(q.question)
        hits = answerer.retriever.search(q.question, k=3)
        best = max(question_likelihood(llm, f"{h.chunk.title}. {h.chunk.text}", q.question) for h in hits)
        null = question_likelihood(llm, "", q.question)
        rows.append({**sig, "ql": best, "pmi": best - null})
    seconds = (time.perf_counter() - t0) / len(qs)
    compared = ["sentence_cos_top3", "sentence_cos", "coverage", "ql", "pmi"]
    lines = [
        "# Query likelihood as an abstention signal (studies/ql_abstention.py)",
        "",
        f"Run on {date.today()} on this machine (2 cores, no GPU): {len(qs)} development questions "
        f"({int(y.sum())} answerable, {int(len(y) - y.sum())} unanswerable), SmolLM2-135M Q4_1, "
        f"{seconds:.1f} s a question for the four likelihoods. Not adopted: the likelihoods "
        "separate the two kinds of question less well than the sentence similarity does, and adding "
        "them to the model lowers both cross-validated rates.",
        "",
        *signal_tables(rows, y, cv_groups(qs), NEW, compared, MODELS),
    ]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
