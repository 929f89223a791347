"""Fit the answer decision on some corpora, check it on the others, and (with --write) ship it.

    python -m eval.fit_decision                 # collect signals (cached), compare the candidates
    python -m eval.fit_decision --write NAME    # and save candidate NAME to config/abstention.json

Corpora: the development questions on the shipped index (eval/questions.jsonl, follow-ups left
out), a seeded sample of SQuAD 2.0 train.json indexed as a corpus (fitting data), the SQuAD 2.0
dev articles and SciFact by removal (checks only: nothing is fitted on them). See
rag/evaluation/transfer.py for how a candidate is fitted and judged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from rag.config import load_settings
from rag.evaluation import answerability as ab
from rag.evaluation import transfer
from rag.evaluation.runs import git_commit

EVAL = Path(__file__).resolve().parent
SHARED = EVAL.parent.parent / "shared" / "benchmarks"
FIT = ("dev", "squad-train")
CHECK = ("squad-dev", "scifact-removal")
SQUAD_TRAIN_SAMPLE = 1000


def dev_cases(settings: Any) -> list[ab.Case]:
    from rag.evaluation.answers import cv_groups
    from rag.evaluation.questions import load_questions

    qs = [q for q in load_questions(EVAL / "questions.jsonl") if q.type != "followup"]
    return [
        ab.Case(q.id, q.question, bool(q.relevant), (), g) for q, g in zip(qs, cv_groups(qs), strict=True)
    ]


def collect(settings: Any, name: str, fresh: bool) -> tuple[list[dict[str, Any]], str]:
    """The corpus's rows (asked once, cached in eval/cache) and its fingerprint."""
    from rag.assembly import open_answerer, open_retriever

    cache = EVAL / "cache"
    data = None  # SciFact, when the corpus is SciFact by removal
    if name == "dev":
        bench = None
        fingerprint = hashlib.sha256((EVAL / "questions.jsonl").read_bytes()).hexdigest()[:12]
    elif name == "squad-train":
        bench = ab.load_squad(SHARED / "squad2" / "train.json", limit=SQUAD_TRAIN_SAMPLE, seed=0)
        fingerprint = bench.fingerprint
    elif name == "squad-dev":
        bench = ab.load_squad(SHARED / "squad2" / "dev.json")
        fingerprint = bench.fingerprint
    else:
        from rag.evaluation.beir import load_beir

        data = load_beir(SHARED / "scifact")
        bench = ab.removal_benchmark(data)
        fingerprint = bench.fingerprint
    tag = "-reader" if settings.answer.reader else ""
    path = cache / f"decision-signals-{name}-{fingerprint}{tag}.json"
    if path.exists() and not fresh:
        return json.loads(path.read_text()), fingerprint
    if bench is None:
        answerer = open_answerer(settings)
        cases = dev_cases(settings)
    else:
        start = None
        if data is not None:
            from rag.evaluation.beir import beir_index

            start = beir_index(data, settings, cache)  # copied, less the removed documents
        index = ab.benchmark_index(bench, settings, cache, start_from=start)
        answerer = open_answerer(settings, retriever=open_retriever(settings, index, uncapped=True))
        cases = bench.cases
    rows = ab.ask_cases(answerer, cases, lambda d, t: print(f"{name}: {d}/{t}", end="\r", flush=True))
    print()
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows))
    return rows, fingerprint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fresh", action="store_true", help="ask every corpus again (signals changed)")
    ap.add_argument("--write", metavar="NAME", help="save this candidate to config/abstention.json")
    ap.add_argument("--reader", action="store_true", help="with the reader's signal (answer.reader on)")
    ap.add_argument("--out", type=Path, default=EVAL / "DECISION.md", help="the report to write")
    args = ap.parse_args()
    settings = load_settings(None, {"answer": {"reader": True}} if args.reader else None, environ={})
    corpora: dict[str, list[dict[str, Any]]] = {}
    prints: dict[str, str] = {}
    skipped: dict[str, int] = {}
    for name in (*FIT, *CHECK):
        rows, prints[name] = collect(settings, name, args.fresh)
        # Questions about the collection are answered from metadata: no decision is made on them.
        corpora[name] = [r for r in rows if r["signals"]]
        skipped[name] = len(rows) - len(corpora[name])
    results = {}
    candidates = transfer.CANDIDATES | (transfer.READER_CANDIDATES if args.reader else {})
    for cand, (features, l2) in candidates.items():
        results[cand] = transfer.cross_fitted(corpora, FIT, features, l2, settings.costs)
        print(f"fitted {cand}", flush=True)
    names = [*FIT, *CHECK]
    report = (
        "# The answer decision across corpora\n\n"
        f"Written by `python -m eval.fit_decision` at commit {git_commit()}. "
        f"Fitted on {', '.join(FIT)} "
        "(the development questions out of fold, by question group); "
        f"checked unrefitted on {', '.join(CHECK)}. "
        f"Costs: {settings.costs.model_dump()}.\n\n"
        f"Questions: {', '.join(f'{n} {len(corpora[n])}' for n in names)} (answered from the "
        f"collection's metadata, so not decided, and left out: {skipped}).\n\n"
        "## Outcomes per candidate and corpus\n\n"
        f"{transfer.transfer_table(results, names)}\n\n"
        "## ROC AUC of each signal alone\n\n"
        f"{transfer.aucs_table(transfer.signal_aucs(corpora))}\n"
    )
    args.out.write_text(report)
    print(report)
    if args.write:
        chosen = results[args.write]
        report += f"\n## {args.write}: each corpus as `rag eval --squad` / `--removal` reports it\n\n"
        for n in names:
            report += ab.summary_table(n, ab.summarise(chosen[n]["_rows"])) + "\n"
        args.out.write_text(report)
        model = chosen["_model"]["model"]
        model.provenance = {
            "variant": args.write,
            "git_commit": git_commit(),
            "fitted_on": {n: {"questions": len(corpora[n]), "fingerprint": prints[n]} for n in FIT},
            "checked_on": {n: {"questions": len(corpora[n]), "fingerprint": prints[n]} for n in CHECK},
            "costs": settings.costs.model_dump(),
            "figures": {n: {k: v for k, v in chosen[n].items() if k != "_rows"} for n in names},
            "squad_train_sample": SQUAD_TRAIN_SAMPLE,
        }
        model.save(settings.paths.abstention)
        print(f"decision written to {settings.paths.abstention}")


if __name__ == "__main__":
    main()
