"""Choose `llm.min_line_confidence`: the model's own confidence (the geometric mean of its answer
tokens' probabilities, `rag.answer.line.Line.confidence`) below which its answer line is not shown.

Fitted on SQuAD 2.0 train.json questions that no adapter was trained on (the shuffled answerable
questions from `--skip` on, past every one train.py's runs used), in both of the adapter's formats
(numbered sentences and rag's passages), written as rag writes them (llama.cpp, never declining).
The threshold is the lowest confidence at which the lines kept and shown hold a gold answer in at
least `--precision` of cases; dev.json is never read here.

    .venv/bin/python training/llm/threshold.py --out training/llm/work/threshold.json [--n 300]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import data as data_mod  # noqa: E402

REPO = HERE.parents[1]
SQUAD = Path(os.environ.get("RAG_SHARED", REPO.parent / "shared")) / "benchmarks" / "squad2"


def held_out(path: Path, seed: int, skip: int, n: int) -> list[data_mod.Example]:
    """`n` answerable examples from the shuffled questions after the first `skip` (train.py's
    `build` takes its questions from the front of the same shuffle), alternating the formats."""
    rng = random.Random(seed)
    arts, answerable, _ = data_mod.shuffled_questions(path, rng)
    out: list[data_mod.Example] = []
    for i, (ai, pi, q) in enumerate(answerable[skip:]):
        if len(out) >= n:
            break
        ex = data_mod.positive(arts[ai], pi, q, "passage" if i % 2 else "answerable", rng)
        if ex:
            out.append(ex)
    return out


def choose(rows: list[dict], precision: float) -> dict:
    """The lowest threshold whose shown lines (kept, confidence at or above it) hold a gold answer
    in at least `precision` of cases, with what it shows and holds; each candidate's figures too."""
    kept = sorted((r for r in rows if r["kept"]), key=lambda r: -r["confidence"])
    curve, best = [], None
    hits = 0
    for i, r in enumerate(kept, 1):
        hits += r["gold"]
        curve.append({"threshold": round(r["confidence"], 4), "shown": i / len(rows), "precision": hits / i})
    for i, c in enumerate(curve, 1):  # the lowest threshold (most lines shown) still precise enough
        if c["precision"] >= precision and i >= 20:
            best = c
    return {"chosen": best, "curve": curve[::10]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--adapter", type=Path, default=REPO / "models" / "llm" / "adapter.gguf")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--skip", type=int, default=4000, help="shuffled answerable questions to pass over")
    ap.add_argument("--seed", type=int, default=13, help="train.py's seed (the same shuffle)")
    ap.add_argument("--precision", type=float, default=0.75)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from rag.answer.line import write_line
    from rag.config import LLMSettings
    from rag.llm import load_llm, model_file

    s = LLMSettings(n_threads=args.threads)
    llm = load_llm(model_file(s), s, lora_path=args.adapter)
    rows = []
    t0 = time.time()
    for ex in held_out(SQUAD / "train.json", args.seed, args.skip, args.n):
        line = write_line(llm, ex.question, list(ex.evidence), allow_decline=False)
        rows.append(
            {
                "qid": ex.qid,
                "kind": ex.kind,
                "kept": line.kept,
                "confidence": line.confidence,
                "gold": bool(line.kept and data_mod.contains_gold(line.text, ex.answers)),
            }
        )
    result = {
        "adapter_sha256": data_mod.sha256(args.adapter),
        "train_sha256": data_mod.sha256(SQUAD / "train.json"),
        "n": len(rows),
        "skip": args.skip,
        "seed": args.seed,
        "precision_wanted": args.precision,
        "kept": sum(r["kept"] for r in rows) / len(rows),
        "gold_of_kept": sum(r["gold"] for r in rows) / max(1, sum(r["kept"] for r in rows)),
        "seconds": round(time.time() - t0, 1),
        **choose(rows, args.precision),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k not in ("rows", "curve")}, indent=1))


if __name__ == "__main__":
    main()
