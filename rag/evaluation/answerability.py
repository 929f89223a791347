"""Answerability on corpora nobody tuned for: is the answer decision right when the corpus is not
ours?

Two external benchmarks, each indexed as a corpus of its own and asked through the same
`Answerer.ask` as `rag ask`:

- SQuAD 2.0 as a corpus: each article (its paragraphs in order) is one indexed article; every
  question is asked of the whole index. Answerable questions should be answered and hold a gold
  answer; the ones written to be impossible should not be answered.
- A BEIR dataset by removal: a seeded half of the test queries lose every judged-relevant
  document from the index and become near-topic unanswerable; the rest stay answerable.

Each question's outcome (answered, unsure, abstained), confidence and signals are recorded, so a
decision can be fitted on one corpus and checked on the others without asking again.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import statistics
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.answer.types import OUTCOMES
from rag.errors import RagError
from rag.evaluation.tables import markdown_table
from rag.records import Article

BENCHMARK_PRIOR = 0.5
# Signals some answers lack: the model's refusal probability and its confidence in its line exist
# only where it wrote a line.
OPTIONAL_SIGNALS = ("line_decline", "line_confidence")
WH_WORDS = ("who", "when", "where", "how many", "how much", "which", "why", "how", "what")


@dataclass(frozen=True)
class Case:
    """One question of a benchmark: answerable here or not, and its gold answers (SQuAD)."""

    id: str
    question: str
    answerable: bool
    gold: tuple[str, ...] = ()
    group: str = ""  # the article (or document) it was written on: folds keep a group together


@dataclass
class Benchmark:
    name: str
    articles: list[Article]
    cases: list[Case]
    fingerprint: str


def load_squad(path: Path, limit: int | None = None, seed: int = 0) -> Benchmark:
    """A SQuAD 2.0 file as a corpus: one article per SQuAD article, every question a case
    (`limit`: a seeded sample of that many questions, impossible ones kept in proportion)."""
    try:
        raw = path.read_bytes()
        data = json.loads(raw)["data"]
    except FileNotFoundError:
        raise RagError(f"{path}: not found; give a SQuAD 2.0 JSON file") from None
    except (ValueError, KeyError, TypeError) as e:
        raise RagError(f"{path}: not a SQuAD 2.0 file ({e})") from None
    articles: list[Article] = []
    cases: list[Case] = []
    for art in data:
        title = str(art.get("title", "")).replace("_", " ")
        paragraphs = [p["context"].strip() for p in art["paragraphs"]]
        articles.append(
            Article(
                url=f"https://en.wikipedia.org/wiki/{art.get('title', '')}",
                title=title,
                publication="Wikipedia",
                published=None,
                fetched=None,
                text="\n\n".join(paragraphs),
                member_only=False,
                source_file=path.name,
                source_line=0,
            )
        )
        for p in art["paragraphs"]:
            for qa in p["qas"]:
                gold = tuple(dict.fromkeys(a["text"] for a in qa.get("answers", [])))
                impossible = bool(qa.get("is_impossible")) or not gold
                cases.append(Case(str(qa["id"]), qa["question"].strip(), not impossible, gold, title))
    if limit is not None and limit < len(cases):
        cases = random.Random(seed).sample(cases, limit)
    fingerprint = hashlib.sha256(raw).hexdigest()[:12]
    return Benchmark(f"squad2-{path.stem}", articles, cases, fingerprint)


def removal_benchmark(data: Any, share: float = 0.5, seed: int = 0) -> Benchmark:
    """A BEIR dataset (rag.evaluation.beir.BeirData) by removal: a seeded `share` of the test
    queries lose every judged-relevant document; they are the unanswerable cases."""
    from rag.evaluation.beir import beir_articles

    qids = sorted(q for q in data.queries if data.qrels.get(q))
    removed_q = set(random.Random(seed).sample(qids, round(share * len(qids))))
    gone = {d for q in removed_q for d, grade in data.qrels[q].items() if grade > 0}
    # A kept query whose judged documents all went with a removed one is unanswerable too.
    cases = [
        Case(q, data.queries[q], not ({d for d, g in data.qrels[q].items() if g > 0} <= gone), (), q)
        for q in qids
    ]
    articles = beir_articles(data, frozenset(gone))
    name = f"removal-{data.fingerprint}-{seed}-{share}"
    return Benchmark(name, articles, cases, hashlib.sha256(name.encode()).hexdigest()[:12])


def benchmark_index(
    bench: Benchmark, settings: Any, cache_root: Path, start_from: Path | None = None, progress: Any = None
) -> Path:
    """The benchmark's own index, cached by its fingerprint and the index identity. `start_from`
    (a built index of a superset of its articles) is copied first, so that only the removed
    articles are deleted and nothing is embedded again."""
    from rag.evaluation.beir import cached_index

    name = f"{bench.name}-{bench.fingerprint}"
    return cached_index(name, lambda: bench.articles, settings, cache_root, progress, start_from)


def run_benchmark(
    settings: Any,
    bench: Benchmark,
    cache_root: Path,
    start_from: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    mode: str = "extractive",
) -> dict[str, Any]:
    """Index the benchmark's corpus (cached) and ask every case in `mode` (extractive or llm); the
    record a saved run keeps."""
    from rag.assembly import open_answerer, open_retriever
    from rag.evaluation.runs import git_commit

    path = benchmark_index(bench, settings, cache_root, start_from)
    answerer = open_answerer(settings, retriever=open_retriever(settings, path, uncapped=True))
    # A benchmark's questions are not a user's of their own collection: they are judged at the
    # even odds the decision was fitted at, not at answer.costs.answerable_prior.
    answerer.prior = BENCHMARK_PRIOR
    rows = ask_cases(answerer, bench.cases, progress, mode)
    summary = summarise(rows)
    return {
        "kind": "answerability",
        "benchmark": bench.name,
        "fingerprint": bench.fingerprint,
        "git_commit": git_commit(),
        "mode": mode,
        **({"llm": llm_used(answerer)} if mode == "llm" else {}),
        "decision": decision_used(answerer),
        "summary": summary,
        "table": summary_table(bench.name, summary),
        "rows": rows,
    }


def llm_used(answerer: Any) -> dict[str, Any]:
    """The model file and the adapter (with their sha256) an LLM-mode run was asked with."""
    from rag.answer.line import file_sha256

    answerer.llm  # noqa: B018 - loads the model, which decides the adapter
    model = answerer.model
    return {
        "model": str(model.path()),
        "adapter": str(model.adapter) if model.adapter else None,
        "adapter_sha256": file_sha256(model.adapter) if model.adapter else None,
    }


def decision_used(answerer: Any) -> dict[str, Any]:
    """What decided: the fitted model's features and cut points, or the similarity threshold."""
    model = answerer.abstention
    if model is None:
        return {"threshold": answerer.settings.abstain_below, "signal": "sentence_cos"}
    return {
        "features": model.features,
        "prior": answerer.prior,
        "threshold": model.threshold,
        "unsure_threshold": model.unsure_threshold,
        "veto_missing": model.veto_missing,
    }


def normalise_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in string.punctuation)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def contains_gold(answer: str, gold: Sequence[str]) -> bool:
    said = f" {normalise_answer(answer)} "
    return any(f" {normalise_answer(g)} " in said for g in gold if normalise_answer(g))


def wh_word(question: str) -> str:
    """The kind of question by its wh-word (the first one it opens with, else the first in it)."""
    q = question.lower()
    for w in WH_WORDS:
        if q.startswith(w):
            return w
    found = [(q.find(f" {w} "), w) for w in WH_WORDS if f" {w} " in q]
    return min(found)[1] if found else "other"


def ask_cases(
    answerer: Any,
    cases: Sequence[Case],
    progress: Callable[[int, int], None] | None = None,
    mode: str = "extractive",
) -> list[dict[str, Any]]:
    """Each case asked as `rag ask` asks it (extractive, or `rag ask --llm` with mode "llm"):
    outcome, confidence, signals, answer length and gold containment; in LLM mode also the answer
    line the model wrote (when one was asked for), whether it stood, and its gold containment."""
    rows = []
    for i, c in enumerate(cases):
        t0 = time.perf_counter()
        ans = answerer.ask(c.question, mode=mode)
        secs = time.perf_counter() - t0
        text = "" if ans.outcome == "abstained" else ans.answer
        plain = _CITES_RE.sub("", text)
        row = {
            "id": c.id,
            "group": c.group,
            "answerable": c.answerable,
            "type": wh_word(c.question),
            "outcome": ans.outcome,
            "confidence": ans.confidence,
            "signals": {k: round(float(v), 5) for k, v in ans.signals.items()},
            "missing": ans.abstain_reason.startswith("no retrieved source mentions"),
            "words": len(plain.split()),
            "contains_gold": contains_gold(plain, c.gold) if c.gold and text else None,
            "seconds": round(secs, 4),
        }
        if mode == "llm":
            row |= line_fields(ans, c.gold)
        rows.append(row)
        if progress:
            progress(i + 1, len(cases))
    return rows


_CITES_RE = re.compile(r"\[\d+\]")


def line_fields(ans: Any, gold: Sequence[str]) -> dict[str, Any]:
    """The answer line of an LLM-mode answer: written (the model was asked for one), the line as
    printed ("" when it did not stand), its length, and whether it or the answer's first printed
    sentence holds a gold answer."""
    written = "line_decline" in ans.signals
    line = _CITES_RE.sub("", ans.line).strip()
    first = _CITES_RE.sub("", ans.sentences[0][0]) if ans.sentences and ans.outcome != "abstained" else ""
    return {
        "line_written": written,
        "line": line,
        "line_draft": ans.draft if written else "",
        "line_words": len(line.split()),
        "line_confidence": ans.signals.get("line_confidence"),
        # the model's line whether or not it stood, and whether that one holds a gold answer
        "draft_contains_gold": contains_gold(_CITES_RE.sub("", ans.draft), gold)
        if gold and written and ans.draft
        else None,
        "line_contains_gold": contains_gold(line, gold) if gold and line else None,
        "first_contains_gold": contains_gold(first, gold) if gold and first else None,
        "evidence_contains_gold": contains_gold(_CITES_RE.sub("", ans.evidence), gold)
        if gold and ans.evidence
        else None,
    }


def line_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The answer line's figures over the answered questions: how often it was written and stood,
    how often it holds a gold answer (of answered answerable questions with a line, and of all
    answered answerable ones), and its median length."""
    answered = [r for r in rows if r["outcome"] == "answered"]
    written = [r for r in answered if r["line_written"]]
    kept = [r for r in written if r["line"]]
    gold = [r for r in answered if r["answerable"] and r["contains_gold"] is not None]
    gold_kept = [r for r in gold if r["line"]]
    return {
        "answered": len(answered),
        "written": len(written) / len(answered) if answered else None,
        "kept_of_written": len(kept) / len(written) if written else None,
        "kept_of_answered": len(kept) / len(answered) if answered else None,
        "contains_gold": _mean([r["line_contains_gold"] for r in gold_kept]),
        "contains_gold_of_answered": _mean([bool(r["line_contains_gold"]) for r in gold]),
        "first_contains_gold": _mean([bool(r["first_contains_gold"]) for r in gold]),
        "median_words": statistics.median([r["line_words"] for r in kept]) if kept else None,
    }


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """ROC AUC: the chance that an answerable case outscores an unanswerable one (ties half)."""
    pos = sorted(s for s, y in zip(scores, labels, strict=True) if y)
    neg = sorted(s for s, y in zip(scores, labels, strict=True) if not y)
    if not pos or not neg:
        return None
    wins = 0.0
    for s in pos:
        lo = _count_below(neg, s)
        hi = _count_below(neg, s, strict=False)
        wins += lo + 0.5 * (hi - lo)
    return wins / (len(pos) * len(neg))


def signal_auc(rows: Sequence[dict[str, Any]], signal: str) -> float | None:
    """ROC AUC of one signal alone over rows (answerable or not, with their signals). Counts of
    what is missing are better the lower they are: negated, so that 0.5 means no use and above 0.5
    helps, as for the other signals."""
    sign = -1.0 if signal in ("missing", "best_missing", "kind_missing", "line_decline") else 1.0
    if signal in OPTIONAL_SIGNALS:  # only where it was computed (a line is not always written)
        rows = [r for r in rows if signal in r["signals"]]
    scores = [sign * float(r["signals"].get(signal, 0.0)) for r in rows]
    return auc(scores, [bool(r["answerable"]) for r in rows])


def _count_below(sorted_values: list[float], x: float, strict: bool = True) -> int:
    import bisect

    return bisect.bisect_left(sorted_values, x) if strict else bisect.bisect_right(sorted_values, x)


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Outcome shares for answerable and unanswerable cases, the answered answerable ones' gold
    containment and length, and the ROC AUC of the confidence and of each signal."""
    out: dict[str, Any] = {"questions": len(rows)}
    for label, want in (("answerable", True), ("unanswerable", False)):
        part = [r for r in rows if r["answerable"] == want]
        out[label] = {o: _share(part, o) for o in OUTCOMES} | {"n": len(part)}
    out["unsure_share"] = _share(rows, "unsure")
    shown = [
        r for r in rows if r["answerable"] and r["outcome"] != "abstained" and r["contains_gold"] is not None
    ]
    answered = [r for r in shown if r["outcome"] == "answered"]
    out["contains_gold"] = _mean([r["contains_gold"] for r in answered])
    out["contains_gold_shown"] = _mean([r["contains_gold"] for r in shown])
    out["median_words"] = statistics.median([r["words"] for r in answered]) if answered else None
    labels = [r["answerable"] for r in rows]
    conf = [_score(r) for r in rows]
    out["auc"] = {"confidence": auc(conf, labels)}
    for name in sorted({k for r in rows for k in r["signals"]}):
        out["auc"][name] = signal_auc(rows, name)
    out["by_type"] = {}
    for t in sorted({r["type"] for r in rows}):
        part = [r for r in rows if r["type"] == t and r["answerable"]]
        ans = [r for r in part if r["outcome"] == "answered" and r["contains_gold"] is not None]
        out["by_type"][t] = {
            "n": len(part),
            "answered": _share(part, "answered"),
            "contains_gold": _mean([r["contains_gold"] for r in ans]),
            "median_words": statistics.median([r["words"] for r in ans]) if ans else None,
        }
    out["seconds_per_question"] = _mean([r["seconds"] for r in rows])
    if any("line_written" in r for r in rows):
        out["line"] = line_summary(rows)
    return out


def _score(row: dict[str, Any]) -> float:
    """The number the decision is made on; a names-veto refusal ranks below everything."""
    if row["confidence"] is None:
        return row["signals"].get("sentence_cos", -1.0) - (10.0 if row["missing"] else 0.0)
    return float(row["confidence"]) - (10.0 if row["missing"] else 0.0)


def _share(rows: Sequence[dict[str, Any]], outcome: str) -> float:
    return sum(r["outcome"] == outcome for r in rows) / len(rows) if rows else 0.0


def _mean(values: Sequence[Any]) -> float | None:
    return sum(values) / len(values) if values else None


def summary_table(name: str, s: dict[str, Any]) -> str:
    """One benchmark's outcomes as a markdown table."""

    def pct(x: float | None) -> str:
        return "–" if x is None else f"{x:.2f}"

    rows = [
        [f"answerable ({s['answerable']['n']})", *(pct(s["answerable"][o]) for o in OUTCOMES)],
        [f"unanswerable ({s['unanswerable']['n']})", *(pct(s["unanswerable"][o]) for o in OUTCOMES)],
    ]
    table = markdown_table([name, *OUTCOMES], rows, "lrrr")
    facts = (
        f"unsure, all questions: {pct(s['unsure_share'])}; gold answer in answered answers: "
        f"{pct(s['contains_gold'])} (in answered or unsure: {pct(s['contains_gold_shown'])}); "
        f"median words answered: {s['median_words']}; "
        f"ROC AUC of the confidence: {pct(s['auc']['confidence'])}"
    )
    aucs = ", ".join(f"{k} {pct(v)}" for k, v in s["auc"].items() if k != "confidence")
    by_type = ""
    if any(t["contains_gold"] is not None for t in s["by_type"].values()):
        rows = [
            [t, str(d["n"]), pct(d["answered"]), pct(d["contains_gold"]), str(d["median_words"] or "–")]
            for t, d in s["by_type"].items()
        ]
        head = ["answerable, by wh-word", "n", "answered", "gold in answer", "median words"]
        by_type = "\n" + markdown_table(head, rows, "lrrrr") + "\n"
    line = ""
    if s.get("line"):
        li = s["line"]
        line = (
            f"\nanswer line (answered questions, {li['answered']}): written {pct(li['written'])}, "
            f"stood {pct(li['kept_of_written'])} of those written ({pct(li['kept_of_answered'])} of "
            f"answered); gold answer in the line {pct(li['contains_gold'])} of answerable ones with a "
            f"line ({pct(li['contains_gold_of_answered'])} of all answered answerable), in the first "
            f"printed sentence {pct(li['first_contains_gold'])}; median line words: {li['median_words']}\n"
        )
    return f"{table}\n\n{facts}\n\nROC AUC per signal: {aucs}\n{line}{by_type}"
