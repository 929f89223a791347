"""Sweep chunking and fusion settings on the development set (and optionally a BEIR set).

    .venv/bin/python eval/tune.py            # chunk sizes x fusion weights on eval/questions.jsonl
    .venv/bin/python eval/tune.py --beir ../shared/benchmarks/scifact   # fusion on SciFact

Prints one line per setting: evidence and article nDCG@10 (trec_eval). The defaults in
config/default.toml are the best line of this sweep; eval/README.md records the numbers.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.config import load_settings  # noqa: E402
from rag.embed import onnx_embedder  # noqa: E402
from rag.evaluation.beir import beir_index, load_beir, run_beir_suite  # noqa: E402
from rag.evaluation.dev import run_dev_suite  # noqa: E402
from rag.evaluation.questions import load_questions  # noqa: E402
from rag.index import build_index  # noqa: E402
from rag.retrieve import Retriever  # noqa: E402
from rag.stores import open_store  # noqa: E402


def fusion_grid():
    for dw, lw, rrf_k, cand in itertools.product((1.0, 1.5, 2.0), (1.0,), (10, 30, 60), (20, 50)):
        yield {"dense_weight": dw, "lexical_weight": lw, "rrf_k": rrf_k, "candidates": cand}


def dev(args: argparse.Namespace) -> None:
    base = load_settings(environ={})
    emb = onnx_embedder()
    qs = load_questions(ROOT / "eval" / "questions.jsonl")
    sizes = [tuple(int(x) for x in s.split("/")) for s in args.chunks.split(",")]
    for target, overlap in sizes:
        s = base.model_copy(
            update={
                "chunk": base.chunk.model_copy(update={"target_tokens": target, "overlap_tokens": overlap})
            }
        )
        with tempfile.TemporaryDirectory() as d:
            build_index(s, base.paths.scrapes, Path(d), embedder=emb, export_query_model=False)
            store = open_store(Path(d))
            for name in ("dense", "bm25"):
                r = Retriever(store, s.retrieve, embedder=emb)
                rep = run_dev_suite(r, qs, [name])
                m = rep["retrievers"][name]
                print(
                    f"chunk {target}/{overlap} {name:6s} ev {m['evidence']['ndcg@10']:.3f} "
                    f"art {m['article']['ndcg@10']:.3f} words {m['mean_chunk_words']}",
                    flush=True,
                )
            for fusion in fusion_grid():
                for cap in (0, 3):
                    rs = s.retrieve.model_copy(update={**fusion, "max_per_article": cap})
                    r = Retriever(store, rs, embedder=emb)
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
    path = beir_index(data, s, ROOT / "eval" / "cache")
    store = open_store(path)
    emb = Retriever(store, s.retrieve).embedder
    for name in ("dense", "bm25"):
        rep = run_beir_suite(Retriever(store, s.retrieve, embedder=emb), data, [name])
        print(f"{name:6s} ndcg@10 {rep['retrievers'][name]['document']['ndcg@10']:.3f}", flush=True)
    for fusion in fusion_grid():
        rs = s.retrieve.model_copy(update={**fusion, "max_per_article": 0})
        rep = run_beir_suite(Retriever(store, rs, embedder=emb), data, ["hybrid"])
        print(f"hybrid {fusion} ndcg@10 {rep['retrievers']['hybrid']['document']['ndcg@10']:.3f}", flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--beir", help="BEIR folder: sweep fusion there instead")
    p.add_argument(
        "--chunks", default="96/16,128/24,160/32,200/32,240/48", help="target/overlap token pairs to try"
    )
    a = p.parse_args()
    beir(a) if a.beir else dev(a)
