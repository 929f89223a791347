"""Query likelihood with the shipped LLM (SmolLM2-135M) as a reranker: measured, not assumed.

A passage is scored by the mean log-probability of the question's tokens given the passage
(question_likelihood below; Sachan et al., 2022). Three uses are measured:

1. reranking the top 20 hybrid chunks on the development set (evidence nDCG@10), alone and
   fused with the hybrid ranking by reciprocal rank;
2. the same on a SciFact subset (document nDCG@10; first N test queries);
3. choosing the answer sentence: gold-answer word recall of the single best sentence among the
   retrieved sources' sentences, by the extractive score vs by query likelihood.

Run: python -m studies.ql [--every 1] [--scifact-queries 100] [--skip-scifact] [--out studies/QL.md]
Seconds are wall time on whatever else the machine is doing; re-run on a quiet machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from rag.answer import load_llm, model_file
from rag.assembly import open_answerer, open_retriever
from rag.config import PROJECT_ROOT, load_settings
from rag.evaluation import beir
from rag.evaluation.dev import run_dev_suite
from rag.evaluation.questions import load_questions
from rag.retrieve import Hit, Retriever, rrf_fuse
from rag.text import content_words

QL_TEMPLATE = "Passage: {passage}\nPlease write a question based on this passage.\nQuestion:"


def question_likelihood(llm: Any, passage: str, question: str) -> float:
    """How likely the model finds the question after the passage: the mean log-probability of
    the question's tokens given QL_TEMPLATE (zero-shot question generation as a relevance score,
    Sachan et al., 2022). `llm` must be loaded with logits_all=True; a long passage is cut so
    that the question fits the context window."""
    q = llm.tokenize((" " + question).encode("utf-8"), add_bos=False)
    prefix = llm.tokenize(QL_TEMPLATE.format(passage=passage).encode("utf-8"), add_bos=True)
    room = llm.n_ctx() - len(q) - 1
    if len(prefix) > room:  # keep the template's tail, cut the passage's
        tail = llm.tokenize(QL_TEMPLATE.split("{passage}")[1].encode("utf-8"), add_bos=False)
        prefix = prefix[: room - len(tail)] + tail
    llm.reset()
    llm.eval(prefix + q)
    logits = np.asarray(llm.scores[len(prefix) - 1 : len(prefix) + len(q) - 1], dtype=np.float64)
    top = logits.max(axis=1)
    logz = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    return float(np.mean(logits[np.arange(len(q)), q] - logz))


class QLRetriever:
    """Hybrid search whose top `depth` chunks are reranked by query likelihood ("hybrid+ql") or
    by that fused with the hybrid ranking ("hybrid+ql-rrf")."""

    def __init__(self, base: Retriever, llm: object, depth: int = 20) -> None:
        self.base, self.store, self.llm, self.depth = base, base.store, llm, depth
        self.seconds: list[float] = []
        self.reranked = depth  # hits reranked per query (a caller asking for more gets more)
        self._scores: dict[tuple[str, str], float] = {}  # both QL retrievers score each pair once

    def _score(self, q: str, h: Hit) -> float:
        key = (q, h.chunk.chunk_id)
        if key not in self._scores:
            self._scores[key] = question_likelihood(self.llm, f"{h.chunk.title}. {h.chunk.text}", q)
        return self._scores[key]

    def search(self, q: str, k: int = 10, retriever: str = "hybrid", **kw: object) -> list[Hit]:
        if retriever in ("dense", "bm25", "hybrid"):
            return self.base.search(q, k=k, retriever=retriever)
        hits = self.base.search(q, k=max(k, self.depth), retriever="hybrid")
        t0 = time.perf_counter()
        ql = [self._score(q, h) for h in hits]
        self.seconds.append(time.perf_counter() - t0)
        self.reranked = len(hits)
        print(f"scored {len(self._scores)} passages", file=sys.stderr, flush=True)
        by_ql = [hits[i] for i in np.argsort(-np.asarray(ql), kind="stable")]
        if retriever == "hybrid+ql-rrf":
            ids = {h.chunk.chunk_id: h for h in hits}
            fused = rrf_fuse(
                [[h.chunk.chunk_id for h in hits], [h.chunk.chunk_id for h in by_ql]], [1, 1], 10
            )
            by_ql = [ids[c] for c, _ in fused]
        return [Hit(h.chunk, 0.0, i + 1, retriever) for i, h in enumerate(by_ql[:k])]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scifact-queries", type=int, default=100)
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "studies" / "QL.md")
    ap.add_argument("--skip-scifact", action="store_true")
    ap.add_argument("--every", type=int, default=1, help="Use every n-th development question.")
    ap.add_argument("--depth", type=int, default=20, help="Hybrid hits reranked per question.")
    args = ap.parse_args()
    s = load_settings()
    base = open_retriever(s)
    a = open_answerer(s, retriever=base, fitted=False)
    llm = load_llm(model_file(s.llm), s.llm, logits_all=True, n_ctx=512)
    qs = [q for q in load_questions(PROJECT_ROOT / "eval" / "questions.jsonl") if q.type != "followup"][
        :: args.every
    ]
    names = ["hybrid", "hybrid+ql", "hybrid+ql-rrf"]
    lines = ["# Query-likelihood reranking with SmolLM2-135M (studies/ql.py)", ""]

    r = QLRetriever(base, llm, args.depth)
    dev = run_dev_suite(r, qs, names)
    lines += [
        f"## Development set ({dev['scored_questions']} answerable questions, top {args.depth} reranked)",
        "",
        dev["table"],
        "",
        f"QL seconds per question ({r.reranked} chunks): {np.mean([t for t in r.seconds if t > 0.01]):.2f}",
        "",
    ]
    print("\n".join(lines), flush=True)

    # Answer sentence choice: the single best sentence by each scorer.
    rec = {"extractive score": [], "query likelihood": [], "both (rank sum)": []}
    t_sent = []
    for q in qs:
        if not q.relevant:
            continue
        qvec = base.embed_query(q.question)
        sources = a.sources(base.search(q.question, k=s.answer.sources, query_vector=qvec))
        cands = [
            (sent, float(src.vectors[i] @ qvec))
            for src in sources
            for i, sent in enumerate(src.sentences)
            if len(sent.split()) >= 4 and not sent.startswith("#") and not sent.endswith("?")
        ]
        if not cands:
            continue
        qw = content_words(q.question)
        ext = np.array([c + 0.2 * len(qw & content_words(t)) / max(1, len(qw)) for t, c in cands])
        t0 = time.perf_counter()
        ql = np.array([question_likelihood(llm, t, q.question) for t, _ in cands])
        t_sent.append(time.perf_counter() - t0)
        both = np.argsort(np.argsort(-ext)) + np.argsort(np.argsort(-ql))
        gold = content_words(q.answer)
        for name, idx in (
            ("extractive score", int(np.argmax(ext))),
            ("query likelihood", int(np.argmax(ql))),
            ("both (rank sum)", int(np.argmin(both))),
        ):
            rec[name].append(len(gold & content_words(cands[idx][0])) / max(1, len(gold)))
    part = [
        "## Choosing the answer sentence (development set, best single sentence)",
        "",
        "| scorer | gold-word recall of the chosen sentence |",
        "|---|---:|",
    ]
    part += [f"| {k} | {np.mean(v):.3f} |" for k, v in rec.items()]
    part += ["", f"QL seconds per question (all sentences of 4 sources): {np.mean(t_sent):.2f}", ""]
    print("\n".join(part), flush=True)
    lines += part

    if not args.skip_scifact:
        data = beir.load_beir(Path("/work/shared/benchmarks/scifact"))
        keep = sorted(data.queries)[: args.scifact_queries]
        sub = beir.BeirData(
            data.corpus,
            {k: data.queries[k] for k in keep},
            {k: v for k, v in data.qrels.items() if k in keep},
            data.fingerprint,
        )
        path = beir.beir_index(data, s, PROJECT_ROOT / "eval" / "cache")
        rb = QLRetriever(open_retriever(s, path, uncapped=True), llm, args.depth)
        res = beir.run_beir_suite(rb, sub, names)
        part = [
            f"## SciFact, first {len(keep)} test queries (sorted ids), documents by best chunk",
            "",
            res["table"],
            "",
            f"QL seconds per query ({rb.reranked} chunks): "
            f"{np.mean([t for t in rb.seconds if t > 0.01]):.2f}",
            "",
        ]
        print("\n".join(part), flush=True)
        lines += part
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
