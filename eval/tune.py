"""Sweep chunking and fusion settings on the development set (and optionally a BEIR set).

    .venv/bin/python -m eval.tune            # chunk sizes x fusion weights on eval/questions.jsonl
    .venv/bin/python -m eval.tune --beir ../shared/benchmarks/scifact   # fusion on SciFact

Prints one line per setting: evidence and article nDCG@10 (trec_eval). The defaults in
config/default.toml are the best line of this sweep; eval/README.md records the numbers.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path
from typing import Any

from rag.assembly import open_index, open_retriever
from rag.config import PROJECT_ROOT, Settings, load_settings
from rag.embed import onnx_embedder
from rag.evaluation.beir import beir_index, load_beir, run_beir_suite
from rag.evaluation.dev import run_dev_suite
from rag.evaluation.questions import load_questions
from rag.index import build_index


def retrieving(s: Settings, **retrieve: Any) -> Settings:
    """`s` with the retrieve settings `retrieve` names changed."""
    return s.model_copy(update={"retrieve": s.retrieve.model_copy(update=retrieve)})


def fusion_grid():
    for dw, lw, rrf_k, cand in itertools.product((1.0, 1.5, 2.0), (1.0,), (10, 30, 60), (20, 50)):
        yield {"dense_weight": dw, "lexical_weight": lw, "rrf_k": rrf_k, "candidates": cand}


def dev(args: argparse.Namespace) -> None:
    base = load_settings(environ={})
    emb = onnx_embedder()
    qs = load_questions(PROJECT_ROOT / "eval" / "questions.jsonl")
    sizes = [tuple(int(x) for x in s.split("/")) for s in args.chunks.split(",")]
    for target, overlap in sizes:
        s = base.model_copy(
            update={
                "chunk": base.chunk.model_copy(update={"target_tokens": target, "overlap_tokens": overlap})
            }
        )
        with tempfile.TemporaryDirectory() as d:
            build_index(s, base.paths.scrapes, Path(d), embedder=emb, export_query_model=False)
            store = open_index(s, Path(d))
            for name in ("dense", "bm25"):
                r = open_retriever(s, store=store, embedder=emb)
                rep = run_dev_suite(r, qs, [name])
                m = rep["retrievers"][name]
                print(
                    f"chunk {target}/{overlap} {name:6s} ev {m['evidence']['ndcg@10']:.3f} "
                    f"art {m['article']['ndcg@10']:.3f} words {m['mean_chunk_words']}",
                    flush=True,
                )
            for fusion in fusion_grid():
                for cap in (0, 3):
                    tuned = retrieving(s, **fusion, max_per_article=cap)
                    r = open_retriever(tuned, store=store, embedder=emb)
                    rep = run_dev_suite(r, qs, ["hybrid"])
                    m = rep["retrievers"]["hybrid"]
                    print(
                        f"chunk {target}/{overlap} hybrid {fusion} cap {cap} "
                        f"ev {m['evidence']['ndcg@10']:.3f} art {m['article']['ndcg@10']:.3f}",
                        flush=True,
                    )


def beir(args: argparse.Namespace) -> None:
    s = load_settings(environ={})
    data = load_beir(Path(args.beir))
    path = beir_index(data, s, PROJECT_ROOT / "eval" / "cache")
    store = open_index(s, path)
    emb = open_retriever(s, store=store).embedder
    for name in ("dense", "bm25"):
        rep = run_beir_suite(open_retriever(s, store=store, embedder=emb), data, [name])
        print(f"{name:6s} ndcg@10 {rep['retrievers'][name]['document']['ndcg@10']:.3f}", flush=True)
    for fusion in fusion_grid():
        r = open_retriever(retrieving(s, **fusion), store=store, uncapped=True, embedder=emb)
        rep = run_beir_suite(r, data, ["hybrid"])
        print(f"hybrid {fusion} ndcg@10 {rep['retrievers']['hybrid']['document']['ndcg@10']:.3f}", flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--beir", help="BEIR folder: sweep fusion there instead")
    p.add_argument(
        "--chunks", default="96/16,128/24,160/32,200/32,240/48", help="target/overlap token pairs to try"
    )
    a = p.parse_args()
    beir(a) if a.beir else dev(a)
