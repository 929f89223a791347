"""Retrieval evaluation that survives re-chunking.

Judgments name articles and verbatim evidence quotes, never chunk ids. At run time each quote is
located in its article's clean text and a retrieved chunk earns the quote when it covers most of
it (so a chunk boundary that splits a quote still counts). Two levels are scored with trec_eval's
own definitions (pytrec_eval):

- evidence: each quote is a relevance unit, earned by the first retrieved chunk that holds it, and
  only within the first `word_budget` words of retrieved text (about what the LLM reads), so that
  bigger chunks cannot buy coverage;
- article: each relevant URL, at its first occurrence in the ranking.

Questions with no relevant article (unanswerable) have no qrels and are left out of these metrics,
as trec_eval does; answer evaluation handles them.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import RagError
from rag.stores import StoredChunk

MEASURES = {
    "ndcg@10": "ndcg_cut_10",
    "ndcg@5": "ndcg_cut_5",
    "mrr@10": "recip_rank",
    "recall@5": "recall_5",
    "recall@10": "recall_10",
    "map@10": "map_cut_10",
}
HEADLINE = "ndcg@10"
QUESTION_TYPES = (
    "factoid",
    "paraphrase",
    "keyword",
    "explanation",
    "multi-article",
    "unanswerable",
    "user",  # typed the way users type: short, lower case, misspelled, "how do I ..."
    "followup",  # leans on `previous`, the question asked before it
)


@dataclass(frozen=True)
class Evidence:
    url: str
    grade: int
    quote: str


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answer: str
    type: str
    relevant: tuple[Evidence, ...]
    previous: str = ""  # a follow-up's earlier question: its id or its text


def load_questions(path: Path) -> list[Question]:
    """Questions from a JSONL file; a malformed line is an error naming the file and line."""
    if not path.exists():
        raise RagError(f"{path}: questions file not found")
    out: list[Question] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            rel = tuple(
                Evidence(url=r["url"], grade=int(r["grade"]), quote=r["evidence"]) for r in d["relevant"]
            )
            q = Question(d["id"], d["question"], d.get("answer", ""), d["type"], rel, d.get("previous") or "")
        except (ValueError, KeyError, TypeError) as e:
            raise RagError(f"{path}:{n}: not a question object ({e})") from None
        if q.type not in QUESTION_TYPES:
            raise RagError(f"{path}:{n}: unknown type '{q.type}'")
        out.append(q)
    return out


# ---------------------------------------------------------------------------------------------
# Locating quotes in clean text


def _normalise_with_map(text: str) -> tuple[str, list[int]]:
    """Text reduced to comparable form, and for each kept character its offset in `text`.

    Drops markdown link targets, emphasis marks and backslashes, folds quotes and dashes,
    lower-cases and collapses whitespace, so that a quote copied from the page matches the
    cleaner's output.
    """
    text = re.sub(
        r"!?\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) + " " * (len(m.group(0)) - len(m.group(1))), text
    )
    out: list[str] = []
    pos: list[int] = []
    prev_space = True
    for i, ch in enumerate(text):
        c = unicodedata.normalize("NFKC", ch).lower()
        c = c.translate(_FOLD)
        for cc in c:
            if cc in "*_\\`":
                continue
            if cc.isspace():
                if prev_space:
                    continue
                cc = " "
                prev_space = True
            else:
                prev_space = False
            out.append(cc)
            pos.append(i)
    return "".join(out), pos


_FOLD = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "\u00a0": " "})


def normalise(text: str) -> str:
    return _normalise_with_map(text)[0].strip()


def locate(quote: str, text: str) -> tuple[int, int] | None:
    """Character span of `quote` in `text`, tolerant of the cleaner's changes; None if absent."""
    norm, pos = _normalise_with_map(text)
    q = normalise(quote)
    if not q:
        return None
    i = norm.find(q)
    if i < 0:
        return None
    return pos[i], pos[i + len(q) - 1] + 1


# ---------------------------------------------------------------------------------------------
# Building qrels and runs


@dataclass
class ResolvedQuestion:
    question: Question
    spans: list[tuple[str, int, int, int]] = field(default_factory=list)  # url, start, end, grade
    missing: list[Evidence] = field(default_factory=list)


def resolve(questions: Sequence[Question], article_texts: dict[str, str]) -> list[ResolvedQuestion]:
    """Find each evidence quote in the clean text of its article (by URL)."""
    out = []
    for q in questions:
        rq = ResolvedQuestion(q)
        for ev in q.relevant:
            text = article_texts.get(ev.url)
            span = locate(ev.quote, text) if text is not None else None
            if span is None:
                rq.missing.append(ev)
            else:
                rq.spans.append((ev.url, span[0], span[1], ev.grade))
        out.append(rq)
    return out


def qrels_for(
    resolved: Sequence[ResolvedQuestion],
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Evidence-level and article-level qrels."""
    ev: dict[str, dict[str, int]] = {}
    art: dict[str, dict[str, int]] = {}
    for rq in resolved:
        if not rq.question.relevant:
            continue
        qid = rq.question.id
        ev[qid] = {f"{qid}#e{n}": g for n, (_, _, _, g) in enumerate(rq.spans)}
        for e in rq.question.relevant:
            art.setdefault(qid, {})
            art[qid][e.url] = max(art[qid].get(e.url, 0), e.grade)
        if not ev[qid]:
            del ev[qid]
    return ev, art


def _covers(chunk: StoredChunk, start: int, end: int) -> bool:
    """A chunk holds a quote when it covers at least half of the quote's characters."""
    overlap = min(chunk.end, end) - max(chunk.start, start)
    return overlap > 0 and overlap * 2 >= (end - start)


def run_for(
    rq: ResolvedQuestion, hits: Sequence[StoredChunk], word_budget: int = 1500
) -> tuple[dict[str, float], dict[str, float]]:
    """Evidence-level and article-level runs for one question's ranked chunks."""
    ev_run: dict[str, float] = {}
    art_run: dict[str, float] = {}
    earned: set[int] = set()
    words_before = 0
    score = 10_000.0
    for ch in hits:
        remaining = word_budget - words_before
        new = []
        for n, (url, s, e, _) in enumerate(rq.spans):
            if n in earned or url != ch.url or not _covers(ch, s, e):
                continue
            # where the quote starts inside this chunk, in words, decides if it is in budget
            offset_words = len(ch.text[: max(0, s - ch.start)].split())
            if offset_words < remaining:
                new.append(n)
        if new:
            for n in new:
                earned.add(n)
                ev_run[f"{rq.question.id}#e{n}"] = score
                score -= 1
        else:
            ev_run[f"chunk:{ch.chunk_id}"] = score
            score -= 1
        if ch.url not in art_run:
            art_run[ch.url] = 10_000.0 - len(art_run)
        words_before += len(ch.text.split())
    return ev_run, art_run


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
    if not per_query:
        return dict.fromkeys(MEASURES, 0.0)
    return {m: sum(v[m] for v in per_query.values()) / len(per_query) for m in MEASURES}


# ---------------------------------------------------------------------------------------------
# Evaluating a retriever on the development set

SearchFn = Callable[[str, str, int], list[StoredChunk]]  # (query, retriever, k) -> chunks


@dataclass
class RetrieverResult:
    retriever: str
    evidence: dict[str, float]
    article: dict[str, float]
    per_query: dict[str, dict[str, Any]]
    mean_chunk_words: float
    seconds_per_query: float
    runs: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # level -> TREC run
    deep_runs: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # to `depth`


def evaluate_retriever(
    resolved: Sequence[ResolvedQuestion],
    search: SearchFn,
    retriever: str,
    k: int = 10,
    word_budget: int = 1500,
    depth: int = 0,
) -> RetrieverResult:
    """Scores the top `k` chunks; with `depth` > k, also keeps runs of the top `depth` (for
    recall@k curves) without changing the scores."""
    import time

    ev_qrels, art_qrels = qrels_for(resolved)
    ev_run: dict[str, dict[str, float]] = {}
    art_run: dict[str, dict[str, float]] = {}
    retrieved: dict[str, list[StoredChunk]] = {}
    lengths: list[int] = []
    t0 = time.perf_counter()
    scored = [rq for rq in resolved if rq.question.relevant]
    deep: dict[str, dict[str, dict[str, float]]] = {"evidence": {}, "article": {}}
    for rq in scored:
        hits = search(rq.question.question, retriever, max(k, depth))
        if depth > k:
            deep["evidence"][rq.question.id], deep["article"][rq.question.id] = run_for(rq, hits, word_budget)
            hits = hits[:k]
        retrieved[rq.question.id] = hits
        lengths.extend(len(h.text.split()) for h in hits)
        ev_run[rq.question.id], art_run[rq.question.id] = run_for(rq, hits, word_budget)
    elapsed = time.perf_counter() - t0
    ev_pq = trec_metrics(ev_qrels, ev_run)
    art_pq = trec_metrics(art_qrels, art_run)
    per_query = {
        rq.question.id: {
            "question": rq.question.question,
            "type": rq.question.type,
            "evidence": ev_pq.get(rq.question.id, {}),
            "article": art_pq.get(rq.question.id, {}),
            "retrieved": [
                {"url": h.url, "title": h.title, "heading": h.heading, "text": h.text[:200]}
                for h in retrieved[rq.question.id][:3]
            ],
            "expected": [e.url for e in rq.question.relevant],
            "missing_evidence": [e.quote for e in rq.missing],
        }
        for rq in scored
    }
    return RetrieverResult(
        retriever=retriever,
        evidence=mean(ev_pq),
        article=mean(art_pq),
        per_query=per_query,
        mean_chunk_words=sum(lengths) / max(1, len(lengths)),
        seconds_per_query=elapsed / max(1, len(scored)),
        runs={"evidence": ev_run, "article": art_run},
        deep_runs=deep if depth > k else {},
    )


# ---------------------------------------------------------------------------------------------
# BEIR datasets


@dataclass
class BeirData:
    corpus: dict[str, tuple[str, str]]  # doc id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    fingerprint: str


def load_beir(path: Path, split: str = "test") -> BeirData:
    """A BEIR dataset folder; only the split's query ids are kept, graded qrels as given."""
    need = [path / "corpus.jsonl", path / "queries.jsonl", path / "qrels" / f"{split}.tsv"]
    for p in need:
        if not p.exists():
            raise RagError(
                f"{p}: missing; a BEIR folder holds corpus.jsonl, queries.jsonl, qrels/{split}.tsv"
            )
    h = hashlib.sha256()
    for p in need:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    corpus: dict[str, tuple[str, str]] = {}
    for n, line in enumerate(_lines(need[0]), start=1):
        try:
            d = json.loads(line)
            corpus[str(d["_id"])] = (d.get("title") or "", d.get("text") or "")
        except (ValueError, KeyError) as e:
            raise RagError(f"{need[0]}:{n}: bad corpus line ({e})") from None
    qrels: dict[str, dict[str, int]] = {}
    for n, line in enumerate(_lines(need[2]), start=1):
        parts = line.split("\t")
        if n == 1 and not parts[-1].strip().lstrip("-").isdigit():
            continue  # header
        if len(parts) < 3:
            raise RagError(f"{need[2]}:{n}: expected query-id, corpus-id, score")
        qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    queries: dict[str, str] = {}
    for n, line in enumerate(_lines(need[1]), start=1):
        try:
            d = json.loads(line)
        except ValueError as e:
            raise RagError(f"{need[1]}:{n}: bad query line ({e})") from None
        if str(d["_id"]) in qrels:
            queries[str(d["_id"])] = d["text"]
    return BeirData(corpus, queries, qrels, h.hexdigest()[:16])


def _lines(path: Path) -> Iterable[str]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield line.rstrip("\n")


def beir_run(hits: Sequence[StoredChunk], doc_of: Callable[[StoredChunk], str]) -> dict[str, float]:
    """Document ranking from chunk hits: each document at its best chunk's rank."""
    run: dict[str, float] = {}
    for ch in hits:
        d = doc_of(ch)
        if d not in run:
            run[d] = 10_000.0 - len(run)
    return run


# ---------------------------------------------------------------------------------------------
# Reports


def git_commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).resolve().parent,
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def index_fingerprint(manifest: dict[str, Any]) -> tuple[str, str]:
    """(index fingerprint, corpus hash): the settings that shape vectors, and the article texts."""
    ident = {k: manifest.get(k) for k in ("embedder", "chunker", "cleaner", "index_kind")}
    fp = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    corpus = manifest.get("corpus_hash")
    if corpus is None:  # an index written before the manifest carried the hash
        from rag.index import corpus_hash

        corpus = corpus_hash(a["content_hash"] for a in manifest.get("articles", {}).values())
    return fp, str(corpus)


def markdown_table(results: Sequence[RetrieverResult]) -> str:
    head = "| retriever | level | " + " | ".join(MEASURES) + " |"
    sep = "|---|---|" + "---:|" * len(MEASURES)
    rows = [head, sep]
    for r in results:
        for level, vals in (("evidence", r.evidence), ("article", r.article)):
            rows.append(
                f"| {r.retriever} | {level} | " + " | ".join(f"{vals[m]:.3f}" for m in MEASURES) + " |"
            )
    return "\n".join(rows)


def worst_questions(result: RetrieverResult, n: int = 5) -> list[dict[str, Any]]:
    items = sorted(result.per_query.items(), key=lambda kv: (kv[1]["evidence"].get(HEADLINE, 0.0), kv[0]))
    return [{"id": qid, **v} for qid, v in items[:n]]


BEIR_URL = "beir://"


def beir_index(data: BeirData, settings: Any, cache_root: Path, progress: Any = None) -> Path:
    """A throwaway index of a BEIR corpus, cached by dataset hash and index identity."""
    from rag.index import identity, index_articles
    from rag.ingest import Article

    ident = hashlib.sha256(json.dumps(identity(settings), sort_keys=True).encode()).hexdigest()[:8]
    path = cache_root / f"beir-{data.fingerprint}-{ident}"
    if (path / "manifest.json").exists():
        return path
    articles = [
        Article(
            url=f"{BEIR_URL}{doc_id}",
            title=title.strip(),
            publication="",
            published=None,
            fetched=None,
            text=text.strip() or title.strip(),
            member_only=False,
            source_file="corpus.jsonl",
            source_line=0,
        )
        for doc_id, (title, text) in data.corpus.items()
        if (text.strip() or title.strip())
    ]
    index_articles(articles, settings, path, progress=progress)
    return path


def beir_doc(chunk: StoredChunk) -> str:
    return chunk.url[len(BEIR_URL) :]


# ---------------------------------------------------------------------------------------------
# The whole suite, as `rag eval` runs it


def run_dev_suite(
    retriever: Any,
    questions: Sequence[Question],
    names: Sequence[str],
    k: int = 10,
    word_budget: int = 1500,
    depth: int = 0,
) -> dict[str, Any]:
    """Evaluate each named retriever on the development set; returns the report as a dict."""
    store = retriever.store
    texts: dict[str, str] = {}
    for a in store.articles():
        text = store.article_text(a.article_id) or ""
        for url in (a.url, *a.aliases):
            texts[url] = text
    resolved = resolve(questions, texts)
    results = [
        evaluate_retriever(
            resolved,
            lambda q, name, kk: [h.chunk for h in retriever.search(q, k=kk, retriever=name)],
            name,
            k=k,
            word_budget=word_budget,
            depth=depth,
        )
        for name in names
    ]
    manifest = store.manifest() or {}
    fp, corpus = index_fingerprint(manifest)
    ev_qrels, art_qrels = qrels_for(resolved)
    return {
        "kind": "dev",
        "questions": len(questions),
        "scored_questions": sum(1 for q in questions if q.relevant),
        "unresolved_evidence": [
            {"id": rq.question.id, "url": e.url, "evidence": e.quote} for rq in resolved for e in rq.missing
        ],
        "k": k,
        "word_budget": word_budget,
        "index_fingerprint": fp,
        "corpus_hash": corpus,
        "index_generation": manifest.get("generation"),
        "git_commit": git_commit(),
        "retrievers": {
            r.retriever: {
                "evidence": r.evidence,
                "article": r.article,
                "mean_chunk_words": round(r.mean_chunk_words, 1),
                "seconds_per_query": round(r.seconds_per_query, 4),
                "worst": worst_questions(r),
                "per_query": r.per_query,
                "run": r.runs,
                **({"deep_run": r.deep_runs} if r.deep_runs else {}),
            }
            for r in results
        },
        "qrels": {"evidence": ev_qrels, "article": art_qrels},
        "judgments": judgments(resolved),
        "table": markdown_table(results),
    }


def judgments(resolved: Sequence[ResolvedQuestion]) -> dict[str, list[dict[str, Any]]]:
    """Each question's located evidence under its qrels id (`<qid>#e<n>`), with URL, grade, quote."""
    out: dict[str, list[dict[str, Any]]] = {}
    for rq in resolved:
        found = [e for e in rq.question.relevant if not any(e is m for m in rq.missing)]
        out[rq.question.id] = [
            {"id": f"{rq.question.id}#e{n}", "url": url, "grade": g, "quote": e.quote}
            for n, (e, (url, _, _, g)) in enumerate(zip(found, rq.spans, strict=True))
        ]
    return out


def run_beir_suite(
    retriever: Any, data: BeirData, names: Sequence[str], k: int = 10, candidates: int = 20
) -> dict[str, Any]:
    """Evaluate each named retriever on a BEIR dataset at document level."""
    import time

    out: dict[str, Any] = {
        "kind": "beir",
        "queries": len(data.queries),
        "fingerprint": data.fingerprint,
        "git_commit": git_commit(),
        "retrievers": {},
    }
    for name in names:
        t0 = time.perf_counter()
        run = {
            qid: beir_run([h.chunk for h in retriever.search(q, k=candidates, retriever=name)], beir_doc)
            for qid, q in data.queries.items()
        }
        per_q = trec_metrics(data.qrels, run)
        out["retrievers"][name] = {
            "document": mean(per_q),
            "seconds_per_query": round((time.perf_counter() - t0) / max(1, len(data.queries)), 4),
            "per_query": {qid: {"document": m} for qid, m in per_q.items()},
            "run": {"document": run},
        }
    out["qrels"] = {"document": data.qrels}
    rows = ["| retriever | " + " | ".join(MEASURES) + " |", "|---|" + "---:|" * len(MEASURES)]
    for name, r in out["retrievers"].items():
        rows.append(f"| {name} | " + " | ".join(f"{r['document'][m]:.3f}" for m in MEASURES) + " |")
    out["table"] = "\n".join(rows)
    return out


def _load_baseline(path: Path, write_cmd: str) -> tuple[dict[str, Any], float]:
    """A baseline file and its tolerance; a missing one says how to write it."""
    if not path.exists():
        raise RagError(f"{path}: no baseline; write one with `{write_cmd}`")
    base = json.loads(path.read_text(encoding="utf-8"))
    return base, float(base.get("tolerance", 0.02))


def check_baseline(report: dict[str, Any], baseline_path: Path) -> list[str]:
    """Headline drops beyond the baseline's tolerance, as messages; empty when all is well."""
    base, tol = _load_baseline(baseline_path, "rag eval --write-baseline")
    problems = []
    for name, levels in base["retrievers"].items():
        got = report["retrievers"].get(name)
        if got is None:
            continue
        for level, want in levels.items():
            have = got[level][HEADLINE]
            if have < want - tol:
                problems.append(
                    f"{name} {level} {HEADLINE} fell to {have:.3f} from baseline {want:.3f} (tolerance {tol})"
                )
    return problems


def baseline_from(report: dict[str, Any], tolerance: float = 0.02) -> dict[str, Any]:
    return {
        "tolerance": tolerance,
        "metric": HEADLINE,
        "index_fingerprint": report.get("index_fingerprint"),
        "corpus_hash": report.get("corpus_hash"),
        "git_commit": report.get("git_commit"),
        "retrievers": {
            name: {lv: r[lv][HEADLINE] for lv in ("evidence", "article")}
            for name, r in report["retrievers"].items()
        },
    }


def write_report(report: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    lines = [f"# Retrieval evaluation ({report['kind']})", ""]
    for key in ("questions", "queries", "index_fingerprint", "corpus_hash", "fingerprint", "git_commit"):
        if key in report:
            lines.append(f"- {key}: {report[key]}")
    lines += ["", report["table"], ""]
    for name, r in report["retrievers"].items():
        if "worst" not in r:
            continue
        lines += [f"## Worst questions: {name} (mean chunk {r['mean_chunk_words']} words)", ""]
        for w in r["worst"]:
            lines.append(
                f"- {w['id']} ({w['type']}) {w['question']} — evidence nDCG@10 "
                f"{w['evidence'].get(HEADLINE, 0):.3f}; expected {', '.join(sorted(set(w['expected'])))}; "
                f"got {', '.join(x['title'] for x in w['retrieved'])}"
            )
        lines.append("")
    (folder / "report.md").write_text("\n".join(lines), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Answers: abstention calibration and answer quality, per mode


def _content(text: str) -> set[str]:
    from rag.answer import content_words

    return content_words(text)


def asked_text(q: Question, by_id: dict[str, Question]) -> str:
    """What is asked for a question: a follow-up is read with the question before it, as a
    chat that remembers the previous turn would read it."""
    if q.type != "followup" or not q.previous:
        return q.question
    prev = by_id.get(q.previous)
    return f"{prev.question if prev else q.previous} {q.question}"


def cv_groups(questions: Sequence[Question]) -> list[str]:
    """Cross-validation groups: a follow-up goes with the question it follows."""
    by_text = {q.question: q.id for q in questions}
    ids = {q.id for q in questions}
    return [
        (q.previous if q.previous in ids else by_text.get(q.previous, q.id)) if q.previous else q.id
        for q in questions
    ]


# Candidate abstention models compared by cross-validation (name: features, names veto, l2).
# On the 207-question development set (2026-12-01) none of the extra signals beat similarity
# alone out of fold (eval/README.md), so the default is the simplest model.
_ALL = ["sentence_cos", "chunk_cos", "lexical", "agreement", "coverage"]
ABSTENTION_VARIANTS: dict[str, tuple[list[str], bool, float]] = {
    "similarity only + names veto": (["sentence_cos"], True, 1.0),
    "all signals + names veto": (_ALL, True, 1.0),
    "all signals + names veto, l2=10": (_ALL, True, 10.0),
    "all signals, names as a feature, l2=10": ([*_ALL, "missing"], False, 10.0),
}
DEFAULT_VARIANT = "similarity only + names veto"


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
    p_in = abstain.predict(model, x)
    cv = variants[variant]
    model.provenance = {
        "questions": len(qs),
        "answerable": int(y.sum()),
        "unanswerable": int(len(y) - y.sum()),
        "variant": variant,
        "git_commit": git_commit(),
        "in_sample": {
            "answer_rate": float((p_in[y == 1] >= model.threshold).mean()),
            "abstain_rate": float((p_in[y == 0] < model.threshold).mean()),
        },
        "cross_validated": {
            k: round(v, 4)
            for k, v in cv.items()
            if k
            in (
                "answer_rate",
                "abstain_rate",
                "answer_rate_sd",
                "abstain_rate_sd",
                "folds",
                "repeats",
                "seed",
            )
        },
    }
    return {
        "ids": [q.id for q in qs],
        "signals": rows,
        "model": model,
        "variants": {
            n: {
                "answer_rate": v["answer_rate"],
                "abstain_rate": v["abstain_rate"],
                "answer_rate_sd": v["answer_rate_sd"],
                "abstain_rate_sd": v["abstain_rate_sd"],
            }
            for n, v in variants.items()
        },
        "cv_answered": dict(zip([q.id for q in qs], cv["answered"].tolist(), strict=True)),
        "cv_probability": dict(zip([q.id for q in qs], cv["probability"].tolist(), strict=True)),
    }


def run_answer_suite(
    answerer: Any, questions: Sequence[Question], modes: Sequence[str], progress: Any = None
) -> dict[str, Any]:
    """Answer every question in each mode and score what the user would see: overall (follow-ups
    left out) and by question type."""
    import time

    from rag.answer import support

    out: dict[str, Any] = {
        "kind": "answers",
        "questions": len(questions),
        "git_commit": git_commit(),
        "modes": {},
    }
    by_id = {q.id: q for q in questions}
    threshold = answerer.settings.min_support
    for mode in modes:
        rows = []
        for i, q in enumerate(questions):
            t0 = time.perf_counter()
            ans = answerer.ask(asked_text(q, by_id), mode=mode)
            secs = time.perf_counter() - t0
            relevant = {e.url for e in q.relevant}
            cited = [c.url for c in ans.citations]
            # Re-score each printed sentence against the full text it cites (embedded once).
            cited_sources = answerer._sources_from_texts([c.text for c in ans.citations])
            vecs = answerer.retriever.embedder.embed([t for t, _, _ in ans.sentences])
            supported = 0
            for (text, cites, _), vec in zip(ans.sentences, vecs, strict=True):
                best = max((support(text, vec, cited_sources[n - 1]) for n in cites), default=0.0)
                supported += best >= threshold
            gold = _content(q.answer)
            rows.append(
                {
                    "id": q.id,
                    "type": q.type,
                    "answerable": bool(q.relevant),
                    "abstained": ans.abstained,
                    "confidence": ans.confidence,
                    "reason": ans.abstain_reason,
                    "mode": ans.mode,
                    "cited": cited,
                    "cited_relevant": sum(u in relevant for u in cited),
                    "sentences": len(ans.sentences),
                    "supported": supported,
                    "words": 0 if ans.abstained else len(_CITE_MARK_RE.sub("", ans.answer).split()),
                    "gold_recall": len(gold & _content(ans.answer)) / len(gold) if gold else None,
                    "seconds": secs,
                    "first_token": ans.timings.get("first_token"),
                    "answer": ans.answer,
                    "dropped": len(ans.dropped),
                }
            )
            if progress:
                progress(mode, i + 1, len(questions))
        overall = summarise([r for r in rows if r["type"] != "followup"])
        if mode == "llm":
            answered = [r for r in rows if r["answerable"] and not r["abstained"]]
            overall["llm_fell_back"] = sum(r["mode"] == "extractive" for r in answered)
            overall["llm_survived"] = sum(r["mode"] == "llm" for r in answered) / max(1, len(answered))
        types = sorted({r["type"] for r in rows}, key=lambda t: QUESTION_TYPES.index(t))
        out["modes"][mode] = {
            **overall,
            "by_type": {t: summarise([r for r in rows if r["type"] == t]) for t in types},
            "rows": rows,
        }
    out["table"] = answer_table(out)
    return out


_CITE_MARK_RE = re.compile(r"\[\d{1,3}\]")
ANSWER_COLUMNS = (
    "answer_rate",
    "abstain_rate",
    "citation_precision",
    "supported_share",
    "gold_word_recall",
    "words_per_answer",
    "seconds_per_answer",
)


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Answer rate over answerable questions, abstention over unanswerable ones, and the quality
    of the answers given (citation precision, support and gold-word recall on answerable ones)."""
    import numpy as np

    ansq = [r for r in rows if r["answerable"]]
    unq = [r for r in rows if not r["answerable"]]
    answered = [r for r in ansq if not r["abstained"]]
    given = [r for r in rows if not r["abstained"]]
    n_cites = sum(len(r["cited"]) for r in answered)
    n_sent = sum(r["sentences"] for r in given)
    recalls = [r["gold_recall"] for r in answered if r["gold_recall"] is not None]
    firsts = [r["first_token"] for r in rows if r["first_token"]]
    nan = float("nan")
    return {
        "n": len(rows),
        "answerable": len(ansq),
        "answer_rate": len(answered) / len(ansq) if ansq else nan,
        "abstain_rate": sum(r["abstained"] for r in unq) / len(unq) if unq else nan,
        "citation_precision": sum(r["cited_relevant"] for r in answered) / n_cites if n_cites else nan,
        "supported_share": sum(r["supported"] for r in given) / n_sent if n_sent else nan,
        "gold_word_recall": float(np.mean(recalls)) if recalls else nan,
        "words_per_answer": float(np.mean([r["words"] for r in given])) if given else nan,
        "seconds_per_answer": float(np.mean([r["seconds"] for r in rows])) if rows else nan,
        "median_first_token": float(np.median(firsts)) if firsts else None,
    }


def _fmt(v: Any) -> str:
    return "–" if v is None or v != v else f"{v:.3f}" if isinstance(v, float) else str(v)


def answer_table(result: dict[str, Any]) -> str:
    """Markdown: one row per mode and question type, overall first (follow-ups not in overall),
    with the cross-validated abstention figures beside the in-sample ones when present."""
    cv = result.get("cross_validated", {})
    cols = ["n", *ANSWER_COLUMNS]
    head = "| mode | type | " + " | ".join(cols) + (" | cv answer_rate | cv abstain_rate |" if cv else " |")
    lines = [head, "|---|---|" + "---:|" * (len(cols) + (2 if cv else 0))]
    for mode, m in result["modes"].items():
        for t, d in [("all", m), *m["by_type"].items()]:
            row = f"| {mode} | {t} | " + " | ".join(_fmt(d[c]) for c in cols)
            if cv:
                c = cv.get(t, {})
                row += f" | {_fmt(c.get('answer_rate'))} | {_fmt(c.get('abstain_rate'))}"
            lines.append(row + " |")
    return "\n".join(lines)


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


def coverage_table(
    rows: Sequence[dict[str, Any]], probability: dict[str, float]
) -> tuple[list[dict[str, float]], str]:
    """Precision against coverage of the abstention score (out-of-fold probabilities): at
    threshold t, coverage is the share of questions answered, precision the share of those
    that are answerable and answered with every sentence supported and a relevant citation."""
    from rag.abstain import precision_coverage

    use = [r for r in rows if r["id"] in probability]
    good = [
        r["answerable"]
        and r["sentences"] > 0
        and r["supported"] == r["sentences"]
        and r["cited_relevant"] > 0
        for r in use
    ]
    curve = precision_coverage([probability[r["id"]] for r in use], good)
    lines = ["| threshold | coverage | precision |", "|---:|---:|---:|"]
    lines += [f"| {c['threshold']:.1f} | {c['coverage']:.3f} | {_fmt(c['precision'])} |" for c in curve]
    return curve, "\n".join(lines)


ANSWER_GUARDS = ("answer_rate", "abstain_rate", "citation_precision", "supported_share", "gold_word_recall")


def answer_baseline_from(result: dict[str, Any], tolerance: float = 0.02) -> dict[str, Any]:
    return {
        "tolerance": tolerance,
        "git_commit": result.get("git_commit"),
        "questions": result.get("questions"),
        "modes": {m: {k: d[k] for k in ANSWER_GUARDS} for m, d in result["modes"].items()},
        "cross_validated": {k: result["cross_validated"]["all"][k] for k in ("answer_rate", "abstain_rate")}
        if result.get("cross_validated")
        else {},
    }


def check_answer_baseline(result: dict[str, Any], baseline_path: Path) -> list[str]:
    """Answer figures that fell beyond the baseline's tolerance, as messages."""
    base, tol = _load_baseline(baseline_path, "rag eval --answers --write-baseline")
    problems = []
    checks = [
        (f"{m} {k}", result["modes"].get(m, {}).get(k), v)
        for m, d in base["modes"].items()
        for k, v in d.items()
    ]
    checks += [
        (f"cross-validated {k}", result.get("cross_validated", {}).get("all", {}).get(k), v)
        for k, v in base.get("cross_validated", {}).items()
    ]
    for name, have, want in checks:
        if have is None or want is None or want != want:
            continue
        if have < want - tol:
            problems.append(f"{name} fell to {have:.3f} from baseline {want:.3f} (tolerance {tol})")
    return problems
