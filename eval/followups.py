"""Measure follow-up questions: each asked alone, and with the earlier question's topic.

    .venv/bin/python -m eval.followups QUESTIONS.jsonl [--index indexes/default]

A follow-up record has "type": "followup" and "previous": the exact text of the earlier question
(in the same file). For each one this prints whether `rag.followup.is_followup` recognises it and,
asked alone and asked as `rag chat` asks it (`resolve(question, previous)`): evidence recall@10
and nDCG@10 (trec_eval, as `rag eval`), the top article, and whether the extractive answerer
answered (answerable follow-ups) or abstained (those with no relevant article). It also counts the
other questions of the file taken for follow-ups (false positives).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.assembly import open_answerer
from rag.config import load_settings
from rag.evaluation import metrics
from rag.evaluation import questions as ev
from rag.followup import is_followup, resolve


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("questions", type=Path)
    p.add_argument("--index", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="Write per-question results here.")
    args = p.parse_args()
    settings = load_settings(environ={})
    answerer = open_answerer(settings, args.index, fitted=False)
    retriever = answerer.retriever
    store = retriever.store
    records = [
        json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    follow = [r for r in records if r.get("type") == "followup"]
    others = [r for r in records if r.get("type") != "followup"]
    texts = {a.url: store.article_text(a.article_id) or "" for a in store.articles()}

    def question(r: dict, text: str) -> ev.Question:
        rel = tuple(ev.Evidence(e["url"], int(e["grade"]), e["evidence"]) for e in r["relevant"])
        return ev.Question(r["id"], text, r.get("answer", ""), "factoid", rel)

    rows = []
    for r in follow:
        turn = resolve(r["question"], r["previous"])
        row = {
            "id": r["id"],
            "question": r["question"],
            "previous": r["previous"],
            "detected": bool(turn.follows),
        }
        for mode, text in (
            ("alone", r["question"]),
            ("context", resolve(r["question"], r["previous"]).query),
        ):
            # "context" is what chat does; when the rule misses the follow-up it equals "alone"
            hits = retriever.search(text, k=10)
            if r["relevant"]:
                (rq,) = ev.resolve([question(r, text)], texts)
                qrels, _ = ev.qrels_for([rq])
                run, _ = ev.run_for(rq, [h.chunk for h in hits])
                m = metrics.trec_metrics(qrels, {r["id"]: run}).get(r["id"], {})
                row[f"{mode}_recall@10"] = m.get("recall@10", 0.0)
                row[f"{mode}_ndcg@10"] = m.get("ndcg@10", 0.0)
            row[f"{mode}_top"] = hits[0].chunk.title if hits else None
            ans = answerer.ask(text)
            row[f"{mode}_answered"] = not ans.abstained
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)

    answerable = [x for x in rows if "alone_recall@10" in x]
    unanswerable = [x for x in rows if "alone_recall@10" not in x]

    def avg(xs: list[dict], key: str) -> float:
        return sum(float(x[key]) for x in xs) / len(xs) if xs else float("nan")

    false_pos = [r["question"] for r in others if is_followup(r["question"])]
    print(f"\nfollow-ups: {len(rows)} ({len(answerable)} answerable, {len(unanswerable)} unanswerable)")
    print(f"recognised as follow-ups: {sum(x['detected'] for x in rows)}/{len(rows)}")
    print(f"other questions taken for follow-ups: {len(false_pos)}/{len(others)} {false_pos}")
    print("| | alone | with context (as rag chat) |")
    print("|---|---:|---:|")
    for key in ("recall@10", "ndcg@10", "answered"):
        label = "answered" if key == "answered" else f"evidence {key}"
        alone, context = avg(answerable, "alone_" + key), avg(answerable, "context_" + key)
        print(f"| {label} (answerable) | {alone:.3f} | {context:.3f} |")
    if unanswerable:
        print(
            f"| abstained (unanswerable) | {1 - avg(unanswerable, 'alone_answered'):.3f} "
            f"| {1 - avg(unanswerable, 'context_answered'):.3f} |"
        )
    if args.json:
        args.json.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in rows) + "\n")


if __name__ == "__main__":
    main()
