"""The reader's answer span as the answer text, against the sentences chosen by similarity.

For each answerable SQuAD 2.0 question (a seeded 1,000 of train.json, all of dev.json, each file
indexed as a corpus as `rag eval --squad` does), retrieval and sources as `rag ask` makes them,
then the reader reads the top three chunks. Answer texts compared: what `rag ask` quotes today
(`base`), the sentence holding the span of the passage the reader rates best (`span_sentence`),
that sentence with the context `extractive.passage` gives it (`span_context`), the span sentence
plus the sentence closest to the question when they differ (`span_plus_sim`), the span sentence of
the first retrieved chunk (`span_sentence_top1`), the span alone (`span`), the one sentence closest
to the question (`sim_sentence`) and the three chunks whole (`top3_chunks`, a ceiling). Measured:
the share of answers holding a gold answer (SQuAD normalisation) and the median length.

Run: python -m studies.reader_text [--out FILE]    (about 10 minutes on two idle cores)
"""

from __future__ import annotations

import argparse
import statistics
from datetime import date
from pathlib import Path
from typing import Any

from rag.answer import extractive
from rag.answer.sources import LIST_MARK_RE
from rag.answer.types import Source
from rag.assembly import open_answerer, open_retriever
from rag.config import PROJECT_ROOT, load_settings
from rag.evaluation import answerability as ab

SQUAD = PROJECT_ROOT.parent / "shared" / "benchmarks" / "squad2"
HERE = Path(__file__).resolve().parent


def sentence_at(source: Source, pos: int) -> int:
    """Index of the source's sentence that holds character `pos` of its chunk."""
    text, cur, best = source.hit.chunk.text, 0, 0
    for i, sent in enumerate(source.sentences):
        k = text.find(sent[:40], cur)
        k = cur if k < 0 else k
        if k <= pos:
            best = i
        cur = k + 1
    return best


def answer_texts(answerer: Any, question: str, settings: Any) -> dict[str, str]:
    """Each variant's answer text for one question."""
    qvec = answerer.retriever.embed_query(question)
    hits = answerer.retriever.search(question, k=settings.answer.sources, query_vector=qvec)
    sources = answerer.sources(hits)
    top = sources[:3]
    reads = answerer.reader.read(question, [s.hit.chunk.text for s in top])
    best = max(range(len(reads)), key=lambda i: reads[i].score)
    src = top[best]
    i = sentence_at(src, reads[best].start)
    span_sentence = src.sentences[i]
    context = extractive.passage(src.sentences, i) or [i]
    ranked = extractive.ranked_sentences(question, qvec, sources)
    by_n = {s.n: s for s in sources}
    closest = by_n[ranked[0][1]].sentences[ranked[0][2]] if ranked else ""
    texts = {
        "base": " ".join(t for t, _, _ in extractive.select(question, qvec, sources, settings.answer)),
        "span_sentence": span_sentence,
        "span_context": " ".join(src.sentences[j] for j in context),
        "span_plus_sim": span_sentence if closest == span_sentence else f"{span_sentence} {closest}",
        "span_sentence_top1": top[0].sentences[sentence_at(top[0], reads[0].start)],
        "span": reads[best].text,
        "sim_sentence": closest,
        "top3_chunks": " ".join(s.hit.chunk.text for s in top),
    }
    return {k: LIST_MARK_RE.sub("", t) for k, t in texts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "READER_TEXT.md")
    args = ap.parse_args()
    settings = load_settings()
    cache = PROJECT_ROOT / "eval" / "cache"
    lines = [
        "# The reader's span as the answer text",
        "",
        f"Run {date.today()} by `python -m studies.reader_text` (see its docstring); reader "
        f"`models/reader/reader.onnx`. Conclusion in studies/README.md.",
    ]
    for name, path, limit in (
        ("SQuAD train.json sample", SQUAD / "train.json", 1000),
        ("SQuAD dev.json", SQUAD / "dev.json", None),
    ):
        bench = ab.load_squad(path, limit=limit, seed=0)
        index = ab.benchmark_index(bench, settings, cache)
        answerer = open_answerer(settings, retriever=open_retriever(settings, index, uncapped=True))
        cases = [c for c in bench.cases if c.answerable]
        found: dict[str, list[tuple[bool, int]]] = {}
        for n, c in enumerate(cases, start=1):
            for k, text in answer_texts(answerer, c.question, settings).items():
                found.setdefault(k, []).append((ab.contains_gold(text, c.gold), len(text.split())))
            print(f"{name}: {n}/{len(cases)}", end="\r", flush=True)
        print()
        lines += ["", f"## {name}: {len(cases)} answerable questions", ""]
        lines += ["| answer text | gold answer contained | median words |", "|---|---:|---:|"]
        for k, v in found.items():
            share = sum(g for g, _ in v) / len(v)
            lines.append(f"| {k} | {share:.3f} | {statistics.median(w for _, w in v):.0f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
