"""Measure the answer line through llama.cpp, as rag runs it: the packaged base model alone against
the base with the adapter, on SQuAD 2.0 dev.json.

    .venv/bin/python training/llm/evaluate.py --out training/llm/work/eval.json [--retrieval 200]

Two settings:
- `sources`: the numbered-sources format the adapter was trained in (data.dev_examples: the answer's
  sentence and one or two distractors of the article; impossible questions with the sentences of
  their paragraph closest in words).
- `retrieval` (with `--retrieval N`): dev.json's articles as a corpus (`rag eval --squad`'s index,
  cached in eval/cache/), a seeded sample of N questions asked as `rag ask` asks them
  (extractive); the line is written from the evidence the answer quotes (`line.evidence_from`'s
  grouping, labelled with the cited article's title). Questions the decision abstains on have no
  evidence and are counted apart; `quote_contains` is the quoted answer's own gold containment.

Three lines each time: the base model's, the adapter's, and the adapter's never starting the
refusal ("adapter-answers": whether to answer is then left to rag's decision). Figures as
metrics.py defines them, plus the time to write a line (warm, `write_line` alone, the
model loaded once, `--threads`: 2 as rag's llm.n_threads says).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import metrics  # noqa: E402

import data as data_mod  # noqa: E402

REPO = HERE.parents[1]
SQUAD = Path(os.environ.get("RAG_SHARED", REPO.parent / "shared")) / "benchmarks" / "squad2"


def lines_for(llm, cases, allow_decline: bool = True) -> tuple[list, dict]:
    """write_line over cases (each with .question and .evidence); the lines and the timings."""
    from rag.answer.line import write_line

    out, times = [], []
    for c in cases:
        t = time.perf_counter()
        out.append(write_line(llm, c.question, list(c.evidence), allow_decline=allow_decline))
        times.append(time.perf_counter() - t)
    times.sort()
    return out, {
        "line_ms_p50": round(1000 * statistics.median(times), 1),
        "line_ms_p95": round(1000 * times[min(len(times) - 1, int(0.95 * len(times)))], 1),
    }


def cached_cases(path: Path | None, n: int, seed: int) -> tuple[list, dict]:
    """retrieval_cases, kept in `path` (JSON) so that adapters measured apart see the same evidence."""
    if path is not None and path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved["info"]["asked"] == n and saved["seed"] == seed:
            cases = [
                SimpleNamespace(**c | {"evidence": tuple(map(tuple, c["evidence"]))}) for c in saved["cases"]
            ]
            return cases, saved["info"]
    cases, info = retrieval_cases(n, seed)
    if path is not None:
        rows = [vars(c) for c in cases]
        path.write_text(json.dumps({"seed": seed, "info": info, "cases": rows}), encoding="utf-8")
    return cases, info


def retrieval_cases(n: int, seed: int) -> tuple[list, dict]:
    """Dev questions asked through rag's retrieval and extractive answer; those with evidence."""
    from rag.assembly import open_answerer, open_retriever
    from rag.config import load_settings
    from rag.evaluation import answerability as ab

    settings = load_settings()
    bench = ab.load_squad(SQUAD / "dev.json")
    index = ab.benchmark_index(bench, settings, REPO / "eval" / "cache")
    answerer = open_answerer(settings, retriever=open_retriever(settings, index, uncapped=True))
    answerer.prior = ab.BENCHMARK_PRIOR
    cases = random.Random(seed).sample(bench.cases, min(n, len(bench.cases)))
    out, abstained, ask_s = [], {"answerable": 0, "impossible": 0}, []
    for c in cases:
        t = time.perf_counter()
        ans = answerer.ask(c.question, mode="extractive")
        ask_s.append(time.perf_counter() - t)
        if ans.outcome == "abstained" or not ans.sentences:
            abstained["answerable" if c.answerable else "impossible"] += 1
            continue
        titles = {ct.n: ct.title for ct in ans.citations}
        by_n: dict[int, list[str]] = {}
        for text, cites, _ in ans.sentences:
            if cites:
                by_n.setdefault(cites[0], []).append(text)
        evidence = tuple((k, titles.get(k, ""), " ".join(v)) for k, v in by_n.items())
        quote = " ".join(t for t, _, _ in ans.sentences)
        out.append(
            SimpleNamespace(
                question=c.question,
                evidence=evidence,
                answers=tuple(c.gold) if c.answerable else (),
                outcome=ans.outcome,
                quote_contains=bool(c.answerable and data_mod.contains_gold(quote, c.gold)),
            )
        )
    info = {
        "asked": len(cases),
        "abstained": abstained,
        "with_evidence": len(out),
        "ask_ms_p50": round(1000 * statistics.median(ask_s), 1),
        "quote_contains_answerable": round(
            sum(c.quote_contains for c in out) / max(1, sum(bool(c.answers) for c in out)), 3
        ),
    }
    return out, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--adapter",
        type=Path,
        action="append",
        help="an adapter to measure (repeat to compare several; default models/llm/adapter.gguf)",
    )
    ap.add_argument("--never-decline", action="store_true", help="only the adapters never declining")
    ap.add_argument("--no-base", action="store_true", help="leave the base model out")
    ap.add_argument("--cases", type=Path, help="keep (or reuse) the retrieval cases in this JSON file")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--answerable", type=int, default=200)
    ap.add_argument("--impossible", type=int, default=100)
    ap.add_argument("--retrieval", type=int, default=0, help="also ask this many dev questions through rag")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads (rag's default: 2)")
    args = ap.parse_args()

    from rag.config import LLMSettings
    from rag.llm import load_llm, model_file

    s = LLMSettings(n_threads=args.threads)
    base = model_file(s)
    adapters = args.adapter or [REPO / "models" / "llm" / "adapter.gguf"]
    # (model, may it decline): "…-answers" is an adapter never starting the refusal line
    models = {} if args.no_base else {"base": (load_llm(base, s), True)}
    for path in adapters:
        tuned = load_llm(base, s, lora_path=path)
        name = "adapter" if len(adapters) == 1 else f"adapter:{path.parent.name}/{path.stem}"
        if not args.never_decline:
            models[name] = (tuned, True)
        models[f"{name}-answers"] = (tuned, False)
    report: dict = {
        "adapters": {str(a): data_mod.sha256(a) for a in adapters},
        "threads": s.n_threads,
    }

    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after each part, so a long run that is stopped keeps what it measured
        args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")

    dev = data_mod.dev_examples(SQUAD / "dev.json", args.seed, args.answerable, args.impossible)
    report["sources"] = {}
    for name, (llm, allow) in models.items():
        lines, timing = lines_for(llm, dev, allow)
        fig = metrics.figures(dev, [x.raw for x in lines], [x.p_decline for x in lines])
        report["sources"][name] = fig | timing
        print(name, "sources", report["sources"][name], flush=True)
        save()

    if args.retrieval:
        cases, info = cached_cases(args.cases, args.retrieval, args.seed)
        report["retrieval"] = {"info": info}
        print("retrieval", info, flush=True)
        for name, (llm, allow) in models.items():
            lines, timing = lines_for(llm, cases, allow)
            report["retrieval"][name] = (
                metrics.figures(cases, [x.raw for x in lines], [x.p_decline for x in lines]) | timing
            )
            print(name, "retrieval", report["retrieval"][name], flush=True)
            save()
            if name.startswith("adapter") and name.endswith("-answers"):
                report["retrieval"][f"examples:{name}"] = [
                    {"question": c.question, "line": x.raw, "kept": x.kept, "reason": x.reason}
                    for c, x in list(zip(cases, lines, strict=True))[:12]
                ]
    save()


if __name__ == "__main__":
    main()
