"""Retrieval metrics by name, as ranx names them, computed with trec_eval's own definitions
(pytrec_eval) from qrels and runs shaped `{query_id: {doc_id: grade or score}}`."""

from __future__ import annotations

MEASURES = {
    "ndcg@10": "ndcg_cut_10",
    "ndcg@5": "ndcg_cut_5",
    "mrr@10": "recip_rank",
    "recall@5": "recall_5",
    "recall@10": "recall_10",
    "map@10": "map_cut_10",
}
HEADLINE = "ndcg@10"


def trec_metrics(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    """Per-query metrics named as in MEASURES, computed by trec_eval (pytrec_eval).

    nDCG uses gain = grade and discount log2(rank + 1) over the top 10 (5); MRR is the
    reciprocal rank of the first relevant document within the top 10 of the run; a query in
    qrels with no run scores 0.
    """
    import pytrec_eval

    run10 = {q: dict(sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))[:10]) for q, docs in run.items()}
    full = {q: run10.get(q) or {"__none__": 0.0} for q in qrels}
    ev = pytrec_eval.RelevanceEvaluator(qrels, set(MEASURES.values()))
    res = ev.evaluate(full)
    return {q: {name: res[q][m] for name, m in MEASURES.items()} for q in res}


def mean(per_query: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each measure's mean over the queries; all zero when there are none."""
    if not per_query:
        return dict.fromkeys(MEASURES, 0.0)
    return {m: sum(v[m] for v in per_query.values()) / len(per_query) for m in MEASURES}
