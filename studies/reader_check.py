"""The reader as a check of LLM sentences, against the verifier `--llm` uses today.

A statement and the passage it cites: the reader is given the statement where it was trained to
take a question, and its score is read as "the passage backs this". Test statements are made from
SQuAD 2.0 (no LLM in the loop, so the labels are exact): for each answerable question, the sentence
of its paragraph that holds the gold answer is a true statement; the same sentence with the answer
replaced by another question's gold answer from the same article (absent from the paragraph) is a
false one, worded like its source but stating a wrong fact, the failure the issue names. Both cite
the paragraph. Measured: the share of each that `rag.answer.verify.Verifier` keeps, the reader's
ROC AUC, and, at the reader threshold that keeps 95% of true statements on train.json, the false
statements the verifier keeps that the reader would drop on dev.json, and the true ones it would
drop.

Run: python -m studies.reader_check [--out FILE]   (about 5 minutes)
"""

from __future__ import annotations

import argparse
import random
from datetime import date
from pathlib import Path
from typing import Any

from rag.answer.sources import sources_from_texts
from rag.answer.verify import Verifier
from rag.config import PROJECT_ROOT, load_settings
from rag.evaluation.answerability import auc, normalise_answer
from rag.reader import Reader
from rag.text import split_sentences

SQUAD = PROJECT_ROOT.parent / "shared" / "benchmarks" / "squad2"
HERE = Path(__file__).resolve().parent


def statements(path: Path, seed: int, limit: int | None) -> list[tuple[str, str, bool]]:
    """(statement, paragraph, true) pairs: one true and one false statement per usable question."""
    import json

    rng = random.Random(seed)
    out: list[tuple[str, str, bool]] = []
    for art in json.loads(path.read_text())["data"]:
        answers = [a["text"] for p in art["paragraphs"] for qa in p["qas"] for a in qa.get("answers", [])[:1]]
        for p in art["paragraphs"]:
            context = p["context"]
            for qa in p["qas"]:
                if qa.get("is_impossible") or not qa.get("answers"):
                    continue
                gold = qa["answers"][0]["text"]
                sent = next((s for s in split_sentences(context) if gold in s), None)
                if sent is None or len(sent.split()) < 5:
                    continue
                others = [
                    a
                    for a in answers
                    if normalise_answer(a) and normalise_answer(a) not in normalise_answer(context)
                ]
                if not others:
                    continue
                out.append((sent, context, True))
                out.append((sent.replace(gold, rng.choice(others), 1), context, False))
    if limit is not None and len(out) > limit:
        keep = sorted(rng.sample(range(len(out) // 2), limit // 2))
        out = [x for i in keep for x in out[2 * i : 2 * i + 2]]
    return out


def score(rows: list[tuple[str, str, bool]], reader: Reader, embed: Any, min_support: float) -> list[dict]:
    out = []
    for n, (statement, context, true) in enumerate(rows, start=1):
        checker = Verifier(sources_from_texts([context], embed), embed, min_support)
        kept = checker.check(f"{statement} [1]") is not None
        out.append({"true": true, "kept": kept, "reader": reader.read(statement, [context])[0].score})
        print(f"{n}/{len(rows)}", end="\r", flush=True)
    print()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "READER_CHECK.md")
    args = ap.parse_args()
    from rag.assembly import open_retriever

    settings = load_settings()
    embed = open_retriever(settings).embedder.embed
    reader = Reader()
    train = score(statements(SQUAD / "train.json", 0, 600), reader, embed, settings.answer.min_support)
    dev = score(statements(SQUAD / "dev.json", 0, None), reader, embed, settings.answer.min_support)
    true_scores = sorted(r["reader"] for r in train if r["true"])
    cut = true_scores[int(0.05 * len(true_scores))]  # keeps 95% of true statements on train
    lines = [
        "# The reader as a check of LLM sentences",
        "",
        f"Run {date.today()} by `python -m studies.reader_check` (see its docstring). Reader threshold "
        f"{cut:.3f}, set on train.json (keeps 95% of its true statements). Conclusion in studies/README.md.",
        "",
        "| statements | n | verifier keeps: true | verifier keeps: false | reader AUC | "
        "reader drops: true | reader drops: false the verifier keeps |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in (("train.json sample", train), ("dev.json", dev)):
        t = [r for r in rows if r["true"]]
        f = [r for r in rows if not r["true"]]
        slipped = [r for r in f if r["kept"]]
        a = auc([r["reader"] for r in rows], [r["true"] for r in rows])
        lines.append(
            f"| {name} | {len(t)} + {len(f)} | {sum(r['kept'] for r in t) / len(t):.3f} | "
            f"{len(slipped) / len(f):.3f} | {a:.3f} | {sum(r['reader'] < cut for r in t) / len(t):.3f} | "
            f"{sum(r['reader'] < cut for r in slipped)} of {len(slipped)} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
