"""Answers on the development set: the abstention model's cross-validated study and calibration,
each answer mode scored as the user would see it, overall and by question type, and the tables
and files of `rag eval --answers`."""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.evaluation.questions import QUESTION_TYPES, Question, asked_text
from rag.evaluation.runs import git_commit
from rag.evaluation.tables import fmt, markdown_table
from rag.text import content_words


def cv_groups(questions: Sequence[Question]) -> list[str]:
    """Cross-validation groups: a follow-up goes with the question it follows."""
    by_text = {q.question: q.id for q in questions}
    ids = {q.id for q in questions}
    return [
        (q.previous if q.previous in ids else by_text.get(q.previous, q.id)) if q.previous else q.id
        for q in questions
    ]


# Candidate abstention models compared by cross-validation (name: features, names veto, l2).
# On the 207-question development set (2026-12-01) the mean similarity of the three best
# sentences beat the best one's alone out of fold, and adding the other signals did not help
# (eval/README.md), so the default is that one signal and the names veto.
_ALL = ["sentence_cos", "chunk_cos", "lexical", "agreement", "coverage"]
ABSTENTION_VARIANTS: dict[str, tuple[list[str], bool, float]] = {
    "top-3 similarity + names veto": (["sentence_cos_top3"], True, 1.0),
    "similarity and top-3 similarity + names veto, l2=10": (
        ["sentence_cos", "sentence_cos_top3"],
        True,
        10.0,
    ),
    "similarity only + names veto": (["sentence_cos"], True, 1.0),
    "all signals + names veto": (_ALL, True, 1.0),
    "all signals + names veto, l2=10": (_ALL, True, 10.0),
    "all signals, names as a feature, l2=10": ([*_ALL, "missing"], False, 10.0),
}
DEFAULT_VARIANT = "top-3 similarity + names veto"


def abstention_study(
    answerer: Any, questions: Sequence[Question], variant: str = DEFAULT_VARIANT, progress: Any = None
) -> dict[str, Any]:
    """Signals for every question (follow-ups left out: they are not asked alone), the
    cross-validated rates of each candidate model, and the chosen one fitted on all of them."""
    import numpy as np

    from rag import abstain

    qs = [q for q in questions if q.type != "followup"]
    rows = []
    for i, q in enumerate(qs):
        sig, _ = answerer.question_signals(q.question)
        rows.append(sig)
        if progress:
            progress("signals", i + 1, len(qs))
    x = abstain.matrix(rows)
    y = np.array([1.0 if q.relevant else 0.0 for q in qs])
    groups = cv_groups(qs)
    variants = {}
    for name, (features, veto, l2) in ABSTENTION_VARIANTS.items():
        cv = abstain.cross_validate(x, y, groups, features, l2=l2, veto_missing=veto)
        variants[name] = cv
    features, veto, l2 = ABSTENTION_VARIANTS[variant]
    model = abstain.fit(x, y, features, l2=l2, veto_missing=veto)
    cv = variants[variant]
    model.provenance = _provenance(model, abstain.predict(model, x), y, variant, cv)
    return {
        "ids": [q.id for q in qs],
        "signals": rows,
        "model": model,
        "variants": {n: {k: v[k] for k in _RATES} for n, v in variants.items()},
        "cv_answered": dict(zip([q.id for q in qs], cv["answered"].tolist(), strict=True)),
        "cv_probability": dict(zip([q.id for q in qs], cv["probability"].tolist(), strict=True)),
    }


_RATES = ("answer_rate", "abstain_rate", "answer_rate_sd", "abstain_rate_sd")


def _provenance(model: Any, p_in: Any, y: Any, variant: str, cv: dict[str, Any]) -> dict[str, Any]:
    """What the fitted model was fitted on, and its in-sample and cross-validated rates."""
    kept = (*_RATES, "folds", "repeats", "seed")
    return {
        "questions": len(y),
        "answerable": int(y.sum()),
        "unanswerable": int(len(y) - y.sum()),
        "variant": variant,
        "git_commit": git_commit(),
        "in_sample": {
            "answer_rate": float((p_in[y == 1] >= model.threshold).mean()),
            "abstain_rate": float((p_in[y == 0] < model.threshold).mean()),
        },
        "cross_validated": {k: round(v, 4) for k, v in cv.items() if k in kept},
    }


def run_answer_suite(
    answerer: Any, questions: Sequence[Question], modes: Sequence[str], progress: Any = None
) -> dict[str, Any]:
    """Answer every question in each mode and score what the user would see: overall (follow-ups
    left out) and by question type."""
    out: dict[str, Any] = {
        "kind": "answers",
        "questions": len(questions),
        "git_commit": git_commit(),
        "modes": {},
    }
    by_id = {q.id: q for q in questions}
    for mode in modes:
        rows = []
        for i, q in enumerate(questions):
            rows.append(answer_row(answerer, q, asked_text(q, by_id), mode))
            if progress:
                progress(mode, i + 1, len(questions))
        out["modes"][mode] = mode_summary(mode, rows)
    out["table"] = answer_table(out)
    return out


def answer_row(answerer: Any, q: Question, asked: str, mode: str) -> dict[str, Any]:
    """One question answered in one mode, scored: what was cited, how many of the printed
    sentences the cited sources support, and how many of the gold answer's words it has."""
    from rag.answer import support

    t0 = time.perf_counter()
    ans = answerer.ask(asked, mode=mode)
    secs = time.perf_counter() - t0
    relevant = {e.url for e in q.relevant}
    cited = [c.url for c in ans.citations]
    # Re-score each printed sentence against the full text it cites (embedded once).
    cited_sources = answerer.sources_from_texts([c.text for c in ans.citations])
    # The LLM's answer line was checked word by word against the source it cites (rag/answer/
    # line.py): it stands by that check; a few words have no sentence embedding to compare.
    quoted = ans.sentences[1:] if ans.line else ans.sentences
    vecs = answerer.retriever.embedder.embed([t for t, _, _ in quoted]) if quoted else []
    supported = 1 if ans.line else 0
    for (text, cites, _), vec in zip(quoted, vecs, strict=True):
        best = max((support(text, vec, cited_sources[n - 1]) for n in cites), default=0.0)
        supported += best >= answerer.settings.min_support
    gold = content_words(q.answer)
    printed = [t for t, _, _ in ans.sentences] if not ans.abstained else []
    evidence = evidence_sentences(q)
    return {
        "id": q.id,
        "type": q.type,
        "answerable": bool(q.relevant),
        "abstained": ans.abstained,
        "outcome": ans.outcome,
        "confidence": ans.confidence,
        "reason": ans.abstain_reason,
        "mode": ans.mode,
        "cited": cited,
        "cited_relevant": sum(u in relevant for u in cited),
        # An answer from the collection's metadata ("X was written by Y") is written from the
        # title, author and date it cites, not quoted from the text: support is not its measure.
        "sentences": 0 if ans.mode == "metadata" else len(ans.sentences),
        "supported": 0 if ans.mode == "metadata" else supported,
        "words": 0 if ans.abstained else len(_CITE_MARK_RE.sub("", ans.answer).split()),
        "gold_recall": len(gold & content_words(ans.answer)) / len(gold) if gold else None,
        # Where the evidence stands in what was printed: anywhere, and in the first sentence.
        "evidence_shown": any(holds(t, e) for t in printed for e in evidence) if evidence else None,
        "evidence_leads": any(holds(printed[0], e) for e in evidence) if evidence and printed else False,
        "seconds": secs,
        "first_token": ans.timings.get("first_token"),
        "answer": ans.answer,
        "dropped": len(ans.dropped),
        "line": ans.line,
        "line_written": "line_decline" in ans.signals,
        "line_decline": ans.signals.get("line_decline"),
        "line_confidence": ans.signals.get("line_confidence"),
        "draft": ans.draft if "line_decline" in ans.signals else "",
        # the first printed sentence (the answer line when one stood): how much of the gold it has
        "first_recall": len(gold & content_words(printed[0])) / len(gold) if gold and printed else None,
    }


def evidence_sentences(q: Question) -> list[str]:
    """The sentences of a question's evidence quotes: one of them shown counts as the evidence
    shown (a quote may run over several sentences, and a heading is one of its own)."""
    from rag.text import split_sentences

    out = [s for e in q.relevant for s in split_sentences(e.quote)]
    return [s for s in out if len(content_words(s)) >= 2] or out


def holds(sentence: str, evidence: str) -> bool:
    """Whether a printed sentence carries an evidence quote: at least 80% of the quote's content
    words (a quote split into two printed sentences, or quoted without its list number, still
    counts)."""
    want = content_words(evidence)
    return bool(want) and len(want & content_words(sentence)) >= 0.8 * len(want)


def mode_summary(mode: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One mode's figures: overall (follow-ups left out), by question type, and its rows; for the
    LLM, how many answers fell back to extractive and the share that survived verification."""
    overall = summarise([r for r in rows if r["type"] != "followup"])
    if mode == "llm":
        answered = [r for r in rows if r["answerable"] and _outcome(r) == "answered"]
        overall["llm_fell_back"] = sum(r["mode"] == "extractive" for r in answered)
        overall["llm_survived"] = sum(r["mode"] == "llm" for r in answered) / max(1, len(answered))
        overall["line"] = line_figures(answered)
    types = sorted({r["type"] for r in rows}, key=lambda t: QUESTION_TYPES.index(t))
    return {
        **overall,
        "by_type": {t: summarise([r for r in rows if r["type"] == t]) for t in types},
        "rows": rows,
    }


def line_figures(answered: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer line over answered answerable questions: how often the model was asked for one,
    how often it stood, the gold-word recall of the first printed sentence, and its length."""
    written = [r for r in answered if r.get("line_written")]
    kept = [r for r in written if r["line"]]
    first = [r["first_recall"] for r in answered if r.get("first_recall") is not None]
    return {
        "written": len(written) / len(answered) if answered else None,
        "kept_of_written": len(kept) / len(written) if written else None,
        "kept_of_answered": len(kept) / len(answered) if answered else None,
        "first_recall": sum(first) / len(first) if first else None,
        "median_words": statistics.median(len(_CITE_MARK_RE.sub("", r["line"]).split()) for r in kept)
        if kept
        else None,
    }


_CITE_MARK_RE = re.compile(r"\[\d{1,3}\]")
ANSWER_COLUMNS = (
    "answer_rate",
    "abstain_rate",
    "unsure_rate",
    "citation_precision",
    "supported_share",
    "gold_word_recall",
    "words_per_answer",
    "seconds_per_answer",
    "refused_rate",
    "evidence_shown",
    "evidence_leads",
    "median_words",
)


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Answer rate over answerable questions (answered, not unsure), abstention over unanswerable
    ones (not answered: unsure or abstained), the share of answerable ones refused, the share of
    all that were unsure, and the quality of the answers given (citation precision and gold-word
    recall on answered answerable ones; support over every printed sentence, unsure ones too)."""
    import numpy as np

    ansq = [r for r in rows if r["answerable"]]
    unq = [r for r in rows if not r["answerable"]]
    answered = [r for r in ansq if _outcome(r) == "answered"]
    given = [r for r in rows if not r["abstained"]]  # answered or unsure: text was printed
    n_cites = sum(len(r["cited"]) for r in answered)
    n_sent = sum(r["sentences"] for r in given)
    recalls = [r["gold_recall"] for r in answered if r["gold_recall"] is not None]
    firsts = [r["first_token"] for r in rows if r["first_token"]]
    located = [r for r in ansq if r.get("evidence_shown") is not None]
    nan = float("nan")
    return {
        "n": len(rows),
        "answerable": len(ansq),
        "answer_rate": len(answered) / len(ansq) if ansq else nan,
        "abstain_rate": sum(_outcome(r) != "answered" for r in unq) / len(unq) if unq else nan,
        "refused_rate": sum(_outcome(r) == "abstained" for r in ansq) / len(ansq) if ansq else nan,
        "unsure_rate": sum(_outcome(r) == "unsure" for r in rows) / len(rows) if rows else nan,
        "citation_precision": sum(r["cited_relevant"] for r in answered) / n_cites if n_cites else nan,
        "supported_share": sum(r["supported"] for r in given) / n_sent if n_sent else nan,
        "gold_word_recall": float(np.mean(recalls)) if recalls else nan,
        "words_per_answer": float(np.mean([r["words"] for r in given])) if given else nan,
        "median_words": float(np.median([r["words"] for r in given])) if given else nan,
        # Over answerable questions with evidence: a refusal shows none of it.
        "evidence_shown": sum(bool(r["evidence_shown"]) for r in located) / len(located) if located else nan,
        "evidence_leads": sum(bool(r["evidence_leads"]) for r in located) / len(located) if located else nan,
        "seconds_per_answer": float(np.mean([r["seconds"] for r in rows])) if rows else nan,
        "median_first_token": float(np.median(firsts)) if firsts else None,
    }


def _outcome(row: dict[str, Any]) -> str:
    """A row's outcome; runs saved before there were three outcomes have only `abstained`."""
    return str(row.get("outcome") or ("abstained" if row["abstained"] else "answered"))


def answer_table(result: dict[str, Any]) -> str:
    """Markdown: one row per mode and question type, overall first (follow-ups not in overall),
    with the cross-validated abstention figures beside the in-sample ones when present."""
    cv = result.get("cross_validated", {})
    cols = ["n", *ANSWER_COLUMNS]
    extra = ["cv answer_rate", "cv abstain_rate"] if cv else []
    rows = []
    for mode, m in result["modes"].items():
        for t, d in [("all", m), *m["by_type"].items()]:
            row = [mode, t, *(fmt(d.get(c)) for c in cols)]
            if cv:
                c = cv.get(t, {})
                row += [fmt(c.get("answer_rate")), fmt(c.get("abstain_rate"))]
            rows.append(row)
    table = markdown_table(["mode", "type", *cols, *extra], rows, "ll" + "r" * (len(cols) + len(extra)))
    if "llm" in result["modes"] and "llm_survived" in result["modes"]["llm"]:
        m = result["modes"]["llm"]
        table += (
            f"\n\nllm: the model's own text survived verification in {m['llm_survived']:.0%} of the "
            f"answered answerable questions; in {m['llm_fell_back']} every sentence it wrote was "
            "dropped and the answer quotes the sources instead."
        )
    return table


def cv_by_type(questions: Sequence[Question], cv_answered: dict[str, float]) -> dict[str, dict[str, float]]:
    """Cross-validated answer and abstention rates, overall and by question type."""
    out: dict[str, dict[str, float]] = {}
    types = ["all", *[t for t in QUESTION_TYPES if t != "followup"]]
    for t in types:
        qs = [q for q in questions if q.id in cv_answered and (t == "all" or q.type == t)]
        if not qs:
            continue
        ans = [cv_answered[q.id] for q in qs if q.relevant]
        una = [1 - cv_answered[q.id] for q in qs if not q.relevant]
        out[t] = {
            "answer_rate": sum(ans) / len(ans) if ans else float("nan"),
            "abstain_rate": sum(una) / len(una) if una else float("nan"),
        }
    return out


def precision_coverage(
    rows: Sequence[dict[str, Any]], probability: dict[str, float]
) -> list[dict[str, float]]:
    """Precision against coverage of the abstention score (out-of-fold probabilities): at
    threshold t, coverage is the share of questions answered, precision the share of those
    that are answerable and answered with every sentence supported and a relevant citation."""
    from rag.abstain import precision_coverage as curve

    use = [r for r in rows if r["id"] in probability]
    good = [
        r["answerable"]
        and r["sentences"] > 0
        and r["supported"] == r["sentences"]
        and r["cited_relevant"] > 0
        for r in use
    ]
    return curve([probability[r["id"]] for r in use], good)


def coverage_table(curve: Sequence[dict[str, float]]) -> str:
    """Markdown: the precision/coverage curve, one row per threshold."""
    rows = [[f"{c['threshold']:.1f}", f"{c['coverage']:.3f}", fmt(c["precision"])] for c in curve]
    return markdown_table(["threshold", "coverage", "precision"], rows, "rrr")


def variants_table(variants: dict[str, dict[str, float]]) -> str:
    """Markdown: each candidate abstention model's cross-validated rates, mean ± sd."""
    rows = [
        [
            n,
            f"{v['answer_rate']:.3f} ± {v['answer_rate_sd']:.3f}",
            f"{v['abstain_rate']:.3f} ± {v['abstain_rate_sd']:.3f}",
        ]
        for n, v in variants.items()
    ]
    return markdown_table(["abstention model", "cv answer rate", "cv abstention"], rows, "lrr")


# ---------------------------------------------------------------------------------------------
# `rag eval --answers`, composed


def evaluate_answers(
    answerer: Any,
    questions: Sequence[Question],
    modes: Sequence[str],
    questions_path: Path,
    abstention_path: Path,
    fit: bool = False,
) -> dict[str, Any]:
    """The answer suite with the abstention study beside it. With `fit`, the study's model is
    saved to `abstention_path` first and the answerer uses it; the precision/coverage curve is
    drawn for the last mode."""
    study = abstention_study(answerer, questions)
    if fit:
        save_model(study["model"], questions_path, abstention_path)
        answerer.abstention = study["model"]
    result = run_answer_suite(answerer, questions, modes)
    result["cross_validated"] = cv_by_type(questions, study["cv_answered"])
    result["abstention_variants"] = study["variants"]
    model = answerer.abstention
    result["abstention_model"] = {
        "path": str(abstention_path),
        "loaded": model is not None,
        "provenance": model.provenance if model else None,
    }
    result["table"] = answer_table(result)
    last = modes[-1]
    curve = precision_coverage(result["modes"][last]["rows"], study["cv_probability"])
    result["precision_coverage"] = {"mode": last, "curve": curve}
    return result


def save_model(model: Any, questions_path: Path, path: Path) -> None:
    """Save a fitted abstention model, its provenance naming the questions file and its hash."""
    model.provenance["questions_file"] = str(questions_path.name)
    model.provenance["questions_sha256"] = hashlib.sha256(questions_path.read_bytes()).hexdigest()[:16]
    model.save(path)


def summary_sections(result: dict[str, Any]) -> tuple[str, str, str]:
    """Markdown of an answer evaluation: (the answer table, the abstention models, the curve)."""
    return (
        result["table"],
        variants_table(result["abstention_variants"]),
        coverage_table(result["precision_coverage"]["curve"]),
    )


def write_answer_report(result: dict[str, Any], folder: Path) -> None:
    """answers.json (everything, rows included) and answers.md (the three tables)."""
    table, variants, curve = summary_sections(result)
    last = result["precision_coverage"]["mode"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "answers.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    (folder / "answers.md").write_text(
        f"# Answer evaluation\n\n{table}\n\n## Abstention models (cross-validated)\n\n"
        f"{variants}\n\n## Precision and coverage of the abstention score ({last}, out of fold)"
        f"\n\n{curve}\n"
    )


def slim_answers(result: dict[str, Any]) -> dict[str, Any]:
    """An answer evaluation without its per-question rows (what `--json` prints)."""
    return {
        **result,
        "modes": {m: {k: v for k, v in d.items() if k != "rows"} for m, d in result["modes"].items()},
    }
